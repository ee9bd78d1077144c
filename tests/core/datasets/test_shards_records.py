"""The shard format and DatasetImport validation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.datasets.errors import DatasetImportError, ShardError
from core.datasets.records import DatasetImport, SampleRecord
from core.datasets.shards import (
    SHARD_SIZE,
    decode_shard,
    encode_png,
    encode_shard,
    shard_slices,
)


def _images(n: int = 5, h: int = 6, w: int = 4, c: int = 1) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


def test_shard_round_trip() -> None:
    images = _images(7, c=3)
    data = encode_shard(images)
    assert data[:2] == b"PK"  # an .npz is a zip
    decoded = decode_shard(data)
    assert decoded.dtype == np.uint8
    assert np.array_equal(decoded, images)


def test_encode_shard_requires_uint8_nhwc() -> None:
    with pytest.raises(ValueError):
        encode_shard(np.zeros((2, 3, 3, 1), dtype=np.float32))
    with pytest.raises(ValueError):
        encode_shard(np.zeros((3, 3), dtype=np.uint8))


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda good: good[: len(good) // 2],  # truncated
        lambda good: b"not a shard at all",
        lambda good: b"",
        lambda good: good[:40] + bytes(200) + good[240:],  # damaged member data
    ],
)
def test_corrupt_shard_raises_shard_error(corrupt: object) -> None:
    good = encode_shard(_images(50, 16, 16))
    with pytest.raises(ShardError):
        decode_shard(corrupt(good))  # type: ignore[operator]


def test_shard_with_pickled_objects_is_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, images=np.array([{"evil": 1}], dtype=object))
    with pytest.raises(ShardError):
        decode_shard(buffer.getvalue())


def test_shard_with_wrong_array_is_refused() -> None:
    buffer = io.BytesIO()
    np.savez(buffer, other=np.zeros((1, 2, 2, 1), dtype=np.uint8))
    with pytest.raises(ShardError, match="images"):
        decode_shard(buffer.getvalue())
    buffer = io.BytesIO()
    np.savez(buffer, images=np.zeros((1, 2, 2, 1), dtype=np.float64))
    with pytest.raises(ShardError):
        decode_shard(buffer.getvalue())


def test_shard_slices() -> None:
    assert SHARD_SIZE == 4096
    assert shard_slices(0) == []
    assert shard_slices(1) == [slice(0, 1)]
    assert shard_slices(4096) == [slice(0, 4096)]
    slices = shard_slices(10_000)
    assert slices == [slice(0, 4096), slice(4096, 8192), slice(8192, 10_000)]
    assert sum(s.stop - s.start for s in slices) == 10_000


def test_encode_png() -> None:
    grey = _images(1, 5, 7, 1)[0]
    with Image.open(io.BytesIO(encode_png(grey))) as image:
        assert (image.mode, image.size) == ("L", (7, 5))
        assert np.array_equal(np.asarray(image), grey[:, :, 0])
    rgb = _images(1, 5, 7, 3)[0]
    with Image.open(io.BytesIO(encode_png(rgb))) as image:
        assert image.mode == "RGB"
        assert np.array_equal(np.asarray(image), rgb)
    with pytest.raises(ValueError):
        encode_png(np.zeros((4, 4, 2), dtype=np.uint8))


def _record(sample_id: str, label: int | None = 0, split: str = "train") -> SampleRecord:
    return SampleRecord(sample_id, label, None, None, split)  # type: ignore[arg-type]


def test_dataset_import_validation() -> None:
    images = _images(2)
    ok = DatasetImport("d", images, [_record("a"), _record("b", 1)], ["x", "y"], "test", "")
    assert ok.num_samples == 2 and ok.image_shape == (6, 4, 1)
    assert ok.position("b") == 1
    bad_cases = [
        ([_record("a")], ["x"], "records for 2 images"),
        ([_record("a"), _record("a")], ["x"], "appears twice"),
        ([_record("a"), _record("b", 2)], ["x", "y"], "outside 0..1"),
        ([_record("a"), _record("b", -1)], ["x", "y"], "outside"),
        ([_record("a"), _record("b", split="val")], ["x"], "split"),
        ([_record("a"), _record("")], ["x"], "sample_id"),
        ([_record("a"), _record("b")], ["x", "x"], "unique"),
    ]
    for records, names, message in bad_cases:
        with pytest.raises(DatasetImportError, match=message):
            DatasetImport("d", images, records, names, "test", "")
    with pytest.raises(DatasetImportError, match="uint8"):
        DatasetImport("d", images.astype(np.float32), [_record("a"), _record("b")], ["x"], "t")
    with pytest.raises(DatasetImportError, match="N×H×W×C"):
        DatasetImport("d", images[..., 0], [_record("a"), _record("b")], ["x"], "t")
    unlabeled = DatasetImport("d", images, [_record("a", None), _record("b", None)], [], "t")
    assert unlabeled.label_names == []
