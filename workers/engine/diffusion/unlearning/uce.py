"""UCE: Unified Concept Editing (Gandikota et al., WACV 2024, arXiv:2308.14761).

A closed-form edit of every cross-attention key and value projection W (the only
layers that read the text). For erased concepts c_i with anchors c*_i and preserved
concepts c_j, the new W minimises

    sum_i ||W c_i - W_old c*_i||^2  (erase: the concept's keys/values become the anchor's)
  + s_p sum_j ||W c_j - W_old c_j||^2  (preserve)
  + lambda ||W - W_old||_F^2          (stay close to the old weights)

whose solution is W = (lambda W_old + s_e sum_i W_old c*_i c_i^T + s_p sum_j W_old c_j c_j^T)
(lambda I + s_e sum_i c_i c_i^T + s_p sum_j c_j c_j^T)^-1. Several concepts at once are
just more columns. Here each prompt contributes every token position the UNet sees (the
prompt padded to the model's length), position by position against its anchor, so the
cross-attention keys and values of the erased prompt become the anchor's wherever the
solve can make them so. No training, no images; the text encoder stays frozen, which is
what makes K/V the whole pathway from text to image.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from contracts.methods import diffusion as specs
from workers.engine.diffusion.unlearning.base import (
    ConceptUnlearnData,
    DiffusionUnlearnData,
    DiffusionUnlearningMethod,
    DiffusionUnlearnResult,
    register_diffusion_method,
)
from workers.engine.errors import EngineError

if TYPE_CHECKING:
    from collections.abc import Mapping

    import torch

    from contracts.ddpm import DiffusionArchitecture, DiffusionTrainParams
    from workers.engine.training import Callbacks


@register_diffusion_method
class UCE(DiffusionUnlearningMethod):
    """Closed-form edit of the cross-attention key/value projections: erased prompts
    map to the anchor's keys and values, preserved prompts keep theirs."""

    spec = specs.UCE

    def unlearn(
        self,
        arch: DiffusionArchitecture,
        state_dict: Mapping[str, torch.Tensor],
        data: DiffusionUnlearnData,
        params: Any,
        callbacks: Callbacks,
        train_params: DiffusionTrainParams | None,
    ) -> DiffusionUnlearnResult:
        raise EngineError("uce needs a prompt-conditioned model")

    def unlearn_concepts(
        self, model: Any, data: ConceptUnlearnData, params: Any, callbacks: Callbacks
    ) -> DiffusionUnlearnResult:
        import time

        import torch

        bad = sorted(set(params.projections) - {"to_k", "to_v"})
        if bad:
            raise EngineError(f"uce edits to_k and/or to_v, not {bad}")
        started = time.perf_counter()
        callbacks.on_progress(0, 1)
        anchors = [data.anchor] * len(data.prompts)
        with torch.no_grad():
            dim = model.encode([""]).shape[-1]
            c_erase = model.encode(data.prompts).reshape(-1, dim).double().cpu()
            c_anchor = model.encode(anchors).reshape(-1, dim).double().cpu()
            c_keep = (
                model.encode(data.preserve).reshape(-1, dim).double().cpu()
                if data.preserve
                else torch.zeros(0, dim, dtype=torch.float64)
            )
        eye = torch.eye(dim, dtype=torch.float64)
        # The right-hand matrix is the same for every projection: factor it once.
        gram = (
            params.lam * eye
            + params.erase_scale * c_erase.T @ c_erase
            + params.preserve_scale * c_keep.T @ c_keep
        )
        new = {k: v.detach().to("cpu", copy=True) for k, v in model.unet.state_dict().items()}
        edited: list[str] = []
        erase_res: list[float] = []
        keep_drift: list[float] = []
        suffixes = tuple(f"attn2.{p}.weight" for p in params.projections)
        for key in sorted(new):
            if not key.endswith(suffixes):
                continue
            w_old = new[key].double()
            if w_old.shape[1] != dim:
                raise EngineError(
                    f"{key} reads {w_old.shape[1]}-dim context but the text encoder gives {dim}"
                )
            rhs = (
                params.lam * w_old
                + params.erase_scale * (w_old @ c_anchor.T) @ c_erase
                + params.preserve_scale * (w_old @ c_keep.T) @ c_keep
            )
            w_new = torch.linalg.solve(gram, rhs.T).T  # gram is symmetric
            if not torch.isfinite(w_new).all():
                raise EngineError(f"uce's solve gave non-finite weights for {key}; raise lam")
            new[key] = w_new.to(new[key].dtype)
            edited.append(key)
            target = w_old @ c_anchor.T
            before = (w_old @ c_erase.T - target).norm()
            erase_res.append(float((w_new @ c_erase.T - target).norm() / before.clamp_min(1e-12)))
            if len(c_keep):
                ref = w_old @ c_keep.T
                keep_drift.append(float((w_new @ c_keep.T - ref).norm() / ref.norm()))
        if not edited:
            raise EngineError("uce needs a prompt-conditioned model: no cross-attention found")
        callbacks.on_progress(1, 1)
        seconds = time.perf_counter() - started
        log = [
            f"uce: edited {len(edited)} projections for {len(data.prompts)} prompt(s) -> "
            f"{data.anchor!r}, {len(data.preserve)} preserved, lambda={params.lam}"
        ]
        callbacks.on_log(log[0])
        metrics = {
            "edited_tensors": float(len(edited)),
            "erase_residual": sum(erase_res) / len(erase_res),
            "preserve_drift": sum(keep_drift) / len(keep_drift) if keep_drift else 0.0,
            "seconds": seconds,
        }
        return DiffusionUnlearnResult(state_dict=new, trained_keys=edited, metrics=metrics, log=log)
