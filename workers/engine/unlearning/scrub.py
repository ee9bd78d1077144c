"""SCRUB: a student that stays close to its teacher on retain and moves away on forget.

Kurmanji et al. start the student as a copy of the original (the teacher) and alternate
"max" epochs, which push the student's outputs on the forget set away from the
teacher's (maximise KL), with "min" epochs that pull them together on the retain set
(minimise KL plus cross-entropy). Max steps stop after ``max_epochs`` so the last epochs
repair whatever they broke on retain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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
class Scrub(UnlearningMethod):
    """Teacher-student max/min steps: diverge on forget, agree on retain (SCRUB)."""

    spec = specs.SCRUB

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

        from workers.engine.unlearning import common as C

        device = C.resolve_device(params.device)
        C.seed_all(params.seed)
        student = C.load_network(arch, state_dict, device)
        teacher = C.frozen_copy(student)
        forget = C.loader(data.forget, arch, params.batch_size, params.seed)
        retain = C.loader(data.retain, arch, params.batch_size, params.seed + 1)
        max_epochs = min(params.max_epochs, params.epochs)
        total = max_epochs * len(forget) + params.epochs * len(retain)
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
        for epoch in range(params.epochs):
            if epoch < max_epochs:
                for x, y in forget.batches(epoch):
                    guard.before()
                    x, y = x.to(device), y.to(device)
                    logits = student(x)
                    with torch.no_grad():
                        target = teacher(x)
                        difficulty = F.cross_entropy(logits, y, reduction="none")
                    kl = C.kl_to_teacher(logits, target, t)
                    loss = -params.forget_weight * loreun_mean(kl, difficulty, params)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    guard.after(loss, "max_loss")
            for x, y in retain.batches(epoch):
                guard.before()
                x, y = x.to(device), y.to(device)
                logits = student(x)
                with torch.no_grad():
                    target = teacher(x)
                kl = C.kl_to_teacher(logits, target, t).mean()
                loss = params.kl_weight * kl + params.ce_weight * F.cross_entropy(logits, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                guard.after(loss, "min_loss")
            kind = "max+min" if epoch < max_epochs else "min"
            guard.note(f"{self.name}: epoch {epoch + 1}/{params.epochs} ({kind}) done")
        metrics = C.summary_metrics(student, arch, data, device, guard)
        return UnlearnResult(C.cpu_state_dict(student), metrics, guard.log)
