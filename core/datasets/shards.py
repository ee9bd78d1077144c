"""The shard format: how samples' pixels live in object storage.

A dataset version's images are cut into immutable shards of ``SHARD_SIZE`` samples,
each a compressed ``.npz`` holding one uint8 array. Immutable shards make versions
content-addressable and make purging a subject a matter of rewriting the few shards
that held their samples. Shards are read with ``allow_pickle=False``: a shard is data,
never code, even if someone tampers with the bucket.
"""

from __future__ import annotations

import io
import zipfile

import numpy as np
from PIL import Image

from core.datasets.errors import ShardError

__all__ = ["SHARD_SIZE", "decode_shard", "encode_png", "encode_shard", "shard_slices"]

SHARD_SIZE = 4096
_ARRAY_NAME = "images"


def _check_images(images: np.ndarray) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
        shape = getattr(images, "shape", None)
        dtype = getattr(images, "dtype", None)
        raise ValueError(f"a shard holds uint8 N×H×W×C images, got {dtype} {shape}")


def encode_shard(images: np.ndarray) -> bytes:
    """Serialise a uint8 N×H×W×C array as a compressed ``.npz``."""
    _check_images(images)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{_ARRAY_NAME: np.ascontiguousarray(images)})
    return buffer.getvalue()


def decode_shard(data: bytes) -> np.ndarray:
    """Inverse of ``encode_shard``; anything that is not a valid shard raises ShardError."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if _ARRAY_NAME not in archive.files:
                raise ShardError(f"shard has no {_ARRAY_NAME!r} array (found {archive.files})")
            images = archive[_ARRAY_NAME]
    except ShardError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        # np.load raises ValueError/OSError for non-npz bytes, BadZipFile/EOFError for
        # truncated ones, and ValueError when a pickled object array is refused.
        raise ShardError(f"corrupt shard: {exc}") from exc
    except Exception as exc:  # zlib.error and friends from a damaged member
        raise ShardError(f"corrupt shard: {type(exc).__name__}: {exc}") from exc
    try:
        _check_images(images)
    except ValueError as exc:
        raise ShardError(str(exc)) from exc
    return images


def shard_slices(n: int, shard_size: int = SHARD_SIZE) -> list[slice]:
    """Consecutive slices of at most ``shard_size`` rows covering ``range(n)``."""
    if n < 0:
        raise ValueError("n must be non-negative")
    if shard_size <= 0:
        raise ValueError("shard_size must be positive")
    return [slice(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]


def encode_png(image: np.ndarray) -> bytes:
    """One H×W×C (C = 1 or 3) or H×W uint8 image as PNG bytes, for thumbnails."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("encode_png needs a uint8 array")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"encode_png needs H×W, H×W×1 or H×W×3, got {image.shape}")
    pil = Image.fromarray(np.ascontiguousarray(image))
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
