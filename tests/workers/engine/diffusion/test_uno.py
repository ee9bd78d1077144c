"""UNO's projection: the forget gradient loses exactly its component along the retain
gradient, over all tensors as one vector."""

from __future__ import annotations

import pytest
import torch

from workers.engine.diffusion.unlearning.uno import project_out


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return sum(float((x * y).sum()) for x, y in zip(a, b, strict=True))


def test_the_projection_is_orthogonal_to_the_retain_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    forget = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    retain = [torch.randn(3, 4, generator=g), torch.randn(5, generator=g)]
    projected, cosine = project_out(forget, retain)
    assert _dot(projected, retain) == pytest.approx(0.0, abs=1e-5)
    assert -1.0 <= cosine <= 1.0
    assert cosine == pytest.approx(
        _dot(forget, retain) / (_dot(forget, forget) * _dot(retain, retain)) ** 0.5
    )
    # What was removed is parallel to the retain gradient.
    removed = [f - p for f, p in zip(forget, projected, strict=True)]
    ratio = removed[0].flatten()[0] / retain[0].flatten()[0]
    for r, b in zip(removed, retain, strict=True):
        assert torch.allclose(r, ratio * b, atol=1e-5)


def test_orthogonal_or_zero_retain_gradients_leave_the_forget_gradient_alone() -> None:
    forget = [torch.tensor([1.0, 0.0]), torch.tensor([2.0])]
    orthogonal = [torch.tensor([0.0, 3.0]), torch.tensor([0.0])]
    projected, cosine = project_out(forget, orthogonal)
    assert cosine == 0.0 and all(torch.equal(a, b) for a, b in zip(projected, forget, strict=True))
    zero = [torch.zeros(2), torch.zeros(1)]
    projected, cosine = project_out(forget, zero)
    assert cosine == 0.0 and all(torch.equal(a, b) for a, b in zip(projected, forget, strict=True))
