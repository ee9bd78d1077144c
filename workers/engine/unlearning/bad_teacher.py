"""Bad Teacher: distil from a competent teacher on retain and an incompetent one on forget.

Chundawat et al. train a copy of the original model (the student) to match the
original's outputs on retain samples and a randomly initialised network's outputs on
forget samples, in mixed batches. With ``stochastic_teacher`` it runs the two-phase
schedule of Zhang et al. instead: first erase (forget set only, random teacher), then
reconstruct (retain subset only, original teacher).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from contracts.methods import classifier as specs
from workers.engine.unlearning.base import (
    UnlearnData,
    UnlearningMethod,
    UnlearnResult,
    loreun_mean,
    register,
)

if TYPE_CHECKING:
    import torch

    from contracts.classifier import ArchitectureConfig, TrainParams
    from workers.engine.training import Callbacks


@register
class BadTeacher(UnlearningMethod):
    """Competent/incompetent teacher distillation (Bad Teacher), optionally two-phase."""

    spec = specs.BAD_TEACHER

    def unlearn(
        self,
        arch: ArchitectureConfig,
        state_dict: Mapping[str, torch.Tensor],
        data: UnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: TrainParams | None,
    ) -> UnlearnResult:
        import torch
        import torch.nn.functional as F

        from workers.engine.data import ImageArrays
        from workers.engine.nets import build_network
        from workers.engine.unlearning import common as C

        device = C.resolve_device(params.device)
        C.seed_all(params.seed)
        student = C.load_network(arch, state_dict, device)
        good = C.frozen_copy(student)
        # The incompetent teacher: same architecture, seeded random initialisation.
        bad = C.frozen_copy(build_network(arch).to(device))
        n_retain = max(1, int(round(params.retain_fraction * len(data.retain))))
        retain_part = C.probe(data.retain, n_retain, params.seed)
        k = arch.num_classes
        # (phase, samples, all forget / all retain / None: mixed, told apart by label >= k)
        phases: list[tuple[str, ImageArrays, bool | None]]
        if params.stochastic_teacher:
            phases = [
                ("erase", data.forget, True),
                ("reconstruct", retain_part, False),
            ]
        else:
            # One shuffled set; labels carry "is forget" as y + k so batches stay mixed.
            mixed = ImageArrays(
                images=np.concatenate([data.forget.images, retain_part.images]),
                labels=np.concatenate([data.forget.labels + k, retain_part.labels]),
                sample_ids=data.forget.sample_ids + retain_part.sample_ids,
            )
            phases = [("mixed", mixed, None)]
        loaders = [
            (label, C.loader(arrays, arch, params.batch_size, params.seed + i), is_forget)
            for i, (label, arrays, is_forget) in enumerate(phases)
        ]
        total = params.epochs * sum(len(batches) for _, batches, _ in loaders)
        guard = C.StepGuard(student, arch, data, params, callbacks, device, total, self.name)
        opt = C.make_optimizer(
            student.parameters(),
            params.optimizer,
            params.lr,
            params.momentum,
            params.weight_decay,
        )
        t = params.temperature
        student.train()
        for label, batches, is_forget in loaders:
            for epoch in range(params.epochs):
                for x, y in batches.batches(epoch):
                    guard.before()
                    x, y = x.to(device), y.to(device)
                    if is_forget is None:
                        forget_mask = y >= k
                        y = torch.where(forget_mask, y - k, y)
                    else:
                        forget_mask = torch.full_like(y, is_forget, dtype=torch.bool)
                    logits = student(x)
                    with torch.no_grad():
                        target = torch.where(forget_mask[:, None], bad(x), good(x))
                        difficulty = F.cross_entropy(logits, y, reduction="none")
                    kl = C.kl_to_teacher(logits, target, t)
                    # LoReUn reweights forget samples only; retain samples keep weight 1.
                    if bool(forget_mask.any()) and bool((~forget_mask).any()):
                        loss = (
                            loreun_mean(kl[forget_mask], difficulty[forget_mask], params)
                            * forget_mask.float().mean()
                            + kl[~forget_mask].mean() * (~forget_mask).float().mean()
                        )
                    elif bool(forget_mask.any()):
                        loss = loreun_mean(kl, difficulty, params)
                    else:
                        loss = kl.mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    guard.after(loss)
                guard.note(f"{self.name}: {label} epoch {epoch + 1}/{params.epochs} done")
        metrics = C.summary_metrics(student, arch, data, device, guard)
        return UnlearnResult(C.cpu_state_dict(student), metrics, guard.log)
