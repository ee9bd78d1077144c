"""In-memory image datasets and the batch iterator the training loops use.

Datasets here are small (at most tens of thousands of small images), so instead of a
``torch.utils.data.DataLoader`` with per-sample ``__getitem__`` calls we convert whole
batches with one vectorised op, and precompute the converted tensor once when it fits a
memory budget.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from contracts.classifier import ArchitectureConfig
from workers.engine.errors import EngineError

# Above this many bytes of float32 input the iterator converts batch by batch instead.
PRECOMPUTE_BUDGET_BYTES = 512 * 1024 * 1024


@dataclass
class ImageArrays:
    """Images (uint8, N x H x W x C), integer labels and the stable id of every sample."""

    images: np.ndarray
    labels: np.ndarray
    sample_ids: list[str]

    def __post_init__(self) -> None:
        if not isinstance(self.images, np.ndarray) or self.images.dtype != np.uint8:
            raise ValueError("images must be a uint8 numpy array")
        if self.images.ndim != 4:
            raise ValueError(
                f"images must be N x H x W x C, got shape {self.images.shape} "
                "(add a channel axis for grayscale: images[..., None])"
            )
        labels = np.asarray(self.labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}"
            )
        self.labels = labels.astype(np.int64, copy=False)
        self.sample_ids = list(self.sample_ids)
        n = self.images.shape[0]
        if len(self.labels) != n or len(self.sample_ids) != n:
            raise ValueError(
                f"{n} images but {len(self.labels)} labels and {len(self.sample_ids)} sample ids"
            )

    @classmethod
    def from_arrays(
        cls, images: np.ndarray, labels: np.ndarray, sample_ids: Sequence[str] | None = None
    ) -> ImageArrays:
        """Build from arrays, numbering the samples ``"0".."N-1"`` when no ids are given."""
        ids = [str(i) for i in range(len(images))] if sample_ids is None else list(sample_ids)
        return cls(images=images, labels=labels, sample_ids=ids)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageArrays:
        """Select samples by position (or boolean mask), keeping ids aligned with images."""
        idx = np.asarray(indices)
        if idx.dtype == np.bool_:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64, copy=False)
        return ImageArrays(
            images=self.images[idx],
            labels=self.labels[idx],
            sample_ids=[self.sample_ids[i] for i in idx.tolist()],
        )


def _convert_channels(x: torch.Tensor, target: int) -> torch.Tensor:
    """Map NCHW images to ``target`` channels (gray <-> RGB, dropping alpha)."""
    source = x.shape[1]
    if source == target:
        return x
    if source == 1:
        return x.expand(-1, target, -1, -1).contiguous()
    if target == 1:
        # Average the colour channels; a trailing alpha (2 or 4 channels) is not colour.
        colour = x[:, :3] if source >= 3 else x[:, :1]
        return colour.mean(dim=1, keepdim=True)
    if source == 4 and target == 3:
        return x[:, :3].contiguous()
    raise EngineError(f"cannot convert {source}-channel images to {target} channels")


def to_tensor(images: np.ndarray, arch: ArchitectureConfig) -> torch.Tensor:
    """uint8 NHWC -> float32 NCHW in [0, 1], resized and channel-matched to ``arch``.

    Normalisation is left to the network so that the same weights work on raw [0, 1]
    inputs everywhere (training, evaluation, metrics, the API's previews).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be N x H x W x C, got shape {images.shape}")
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    x = _convert_channels(x, arch.in_channels)
    size = tuple(arch.input_size)
    if tuple(x.shape[-2:]) != size and x.shape[0] > 0:
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.contiguous()


class BatchIterator:
    """Seeded, re-iterable (images, labels) batches over an ``ImageArrays``.

    Each pass draws its order from ``(seed, epoch)`` alone, so a resumed run can rebuild
    the exact order of any epoch without carrying generator state around.
    """

    def __init__(
        self,
        arrays: ImageArrays,
        arch: ArchitectureConfig,
        batch_size: int,
        shuffle: bool,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.arrays = arrays
        self.arch = arch
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0
        self._labels = torch.from_numpy(arrays.labels)
        c, (h, w) = arch.in_channels, arch.input_size
        self._cache: torch.Tensor | None = None
        if len(arrays) * c * h * w * 4 <= PRECOMPUTE_BUDGET_BYTES:
            self._cache = to_tensor(arrays.images, arch)

    @property
    def num_samples(self) -> int:
        return len(self.arrays)

    def __len__(self) -> int:
        n, b = len(self.arrays), self.batch_size
        return n // b if self.drop_last else (n + b - 1) // b

    def set_epoch(self, epoch: int) -> None:
        """Choose which epoch's order the next plain iteration uses."""
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """Sample positions in the order epoch ``epoch`` visits them."""
        n = len(self.arrays)
        if not self.shuffle:
            return torch.arange(n)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=generator)

    def batches(
        self, epoch: int, start_batch: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield the batches of ``epoch``, skipping the first ``start_batch`` (resume)."""
        order = self.order(epoch)
        for b in range(start_batch, len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if self._cache is not None:
                x = self._cache[idx]
            else:
                x = to_tensor(self.arrays.images[idx.numpy()], self.arch)
            yield x, self._labels[idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # Advance the epoch on every pass so that plain ``for x, y in loader`` loops see a
        # fresh order each time, like a DataLoader with a shuffling sampler.
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)


def make_loader(
    arrays: ImageArrays,
    arch: ArchitectureConfig,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    drop_last: bool = False,
) -> BatchIterator:
    """The batch iterator every engine loop uses; same seed, same order."""
    return BatchIterator(arrays, arch, batch_size, shuffle, seed=seed, drop_last=drop_last)
