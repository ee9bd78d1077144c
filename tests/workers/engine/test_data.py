from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from contracts.classifier import ArchitectureConfig
from workers.engine import data
from workers.engine.data import ImageArrays, make_loader, to_tensor


def test_image_arrays_validates_shapes() -> None:
    images = np.zeros((4, 8, 8, 1), dtype=np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ImageArrays(images.astype(np.float32), np.zeros(4, dtype=np.int64), list("abcd"))
    with pytest.raises(ValueError, match="N x H x W x C"):
        ImageArrays(images[..., 0], np.zeros(4, dtype=np.int64), list("abcd"))
    with pytest.raises(ValueError, match="labels"):
        ImageArrays(images, np.zeros(3, dtype=np.int64), list("abcd"))
    with pytest.raises(ValueError, match="sample ids"):
        ImageArrays(images, np.zeros(4, dtype=np.int64), list("abc"))
    with pytest.raises(ValueError, match="integer"):
        ImageArrays(images, np.zeros(4, dtype=np.float32), list("abcd"))


def test_labels_are_int64_and_subset_keeps_alignment() -> None:
    images = np.arange(5, dtype=np.uint8).reshape(5, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    arrays = ImageArrays(images, np.array([0, 1, 2, 3, 4], dtype=np.int32), list("abcde"))
    assert arrays.labels.dtype == np.int64 and len(arrays) == 5
    sub = arrays.subset([4, 1])
    assert sub.sample_ids == ["e", "b"]
    assert sub.labels.tolist() == [4, 1]
    assert sub.images[:, 0, 0, 0].tolist() == [4, 1]
    masked = arrays.subset(arrays.labels % 2 == 0)
    assert masked.sample_ids == ["a", "c", "e"]


def test_to_tensor_scales_to_unit_range_in_nchw() -> None:
    images = np.array([[[[0], [255]], [[128], [64]]]], dtype=np.uint8).repeat(2, 1).repeat(2, 2)
    arch = ArchitectureConfig(name="mlp", num_classes=2, input_size=(4, 4))
    x = to_tensor(images, arch)
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 1, 4, 4)
    assert x.min().item() == 0.0 and x.max().item() == 1.0


def test_to_tensor_resizes_and_converts_channels() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, size=(3, 28, 28, 1), dtype=np.uint8)
    rgb_arch = ArchitectureConfig(
        name="small_cnn", num_classes=2, in_channels=3, input_size=(32, 16)
    )
    x = to_tensor(gray, rgb_arch)
    assert tuple(x.shape) == (3, 3, 32, 16)
    assert torch.equal(x[:, 0], x[:, 2])
    assert x.min().item() >= 0.0 and x.max().item() <= 1.0

    rgb = rng.integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    gray_arch = ArchitectureConfig(name="mlp", num_classes=2, input_size=(8, 8))
    y = to_tensor(rgb, gray_arch)
    expected = torch.from_numpy(rgb.astype(np.float32) / 255).mean(dim=3)
    assert torch.allclose(y[:, 0], expected, atol=1e-6)

    rgba = rng.integers(0, 256, size=(2, 8, 8, 4), dtype=np.uint8)
    z = to_tensor(rgba, rgb_arch.model_copy(update={"input_size": (8, 8)}))
    assert torch.allclose(z, torch.from_numpy(rgba[..., :3] / 255).permute(0, 3, 1, 2).float())


def test_loader_is_seeded_and_covers_every_sample(
    make_arrays: Callable[..., ImageArrays],
) -> None:
    arrays = make_arrays(n=50)
    arch = ArchitectureConfig(name="mlp", num_classes=3, input_size=(8, 8))

    def labels_in_order(seed: int) -> list[list[int]]:
        loader = make_loader(arrays, arch, batch_size=16, shuffle=True, seed=seed)
        return [[int(v) for v in y] for _, y in loader]

    first = labels_in_order(1)
    assert first == labels_in_order(1)
    assert [len(b) for b in first] == [16, 16, 16, 2]
    loader = make_loader(arrays, arch, batch_size=16, shuffle=True, seed=1)
    orders = [loader.order(0), loader.order(1), make_loader(arrays, arch, 16, True, 2).order(0)]
    assert not torch.equal(orders[0], orders[1]) and not torch.equal(orders[0], orders[2])
    assert sorted(orders[0].tolist()) == list(range(50))


def test_loader_epochs_advance_and_resume_mid_epoch(
    make_arrays: Callable[..., ImageArrays],
) -> None:
    arrays = make_arrays(n=40)
    arch = ArchitectureConfig(name="mlp", num_classes=3, input_size=(8, 8))
    loader = make_loader(arrays, arch, batch_size=8, shuffle=True, seed=0)
    epoch0 = [y for _, y in loader]
    epoch1 = [y for _, y in loader]
    assert not all(torch.equal(a, b) for a, b in zip(epoch0, epoch1, strict=True))
    tail = [y for _, y in loader.batches(1, start_batch=3)]
    assert len(tail) == 2 and all(torch.equal(a, b) for a, b in zip(tail, epoch1[3:], strict=True))


def test_unshuffled_loader_keeps_order_and_drop_last(
    make_arrays: Callable[..., ImageArrays],
) -> None:
    arrays = make_arrays(n=10)
    arch = ArchitectureConfig(name="mlp", num_classes=3, input_size=(8, 8))
    loader = make_loader(arrays, arch, batch_size=4, shuffle=False)
    assert torch.cat([y for _, y in loader]).tolist() == arrays.labels.tolist()
    assert len(make_loader(arrays, arch, 4, False, drop_last=True)) == 2


def test_per_batch_conversion_matches_precomputed(
    make_arrays: Callable[..., ImageArrays], monkeypatch: pytest.MonkeyPatch
) -> None:
    arrays = make_arrays(n=20, size=12, channels=1)
    arch = ArchitectureConfig(name="small_cnn", num_classes=3, in_channels=3, input_size=(16, 16))
    cached = list(make_loader(arrays, arch, 6, shuffle=True, seed=3))
    monkeypatch.setattr(data, "PRECOMPUTE_BUDGET_BYTES", 0)
    streamed_loader = make_loader(arrays, arch, 6, shuffle=True, seed=3)
    assert streamed_loader._cache is None
    streamed = list(streamed_loader)
    for (xa, ya), (xb, yb) in zip(cached, streamed, strict=True):
        assert torch.equal(ya, yb)
        assert torch.allclose(xa, xb, atol=1e-6)
