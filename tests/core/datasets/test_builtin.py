"""Built-in offline sources: shapes, stable ids, subjects and splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from core.datasets import builtin
from core.datasets.builtin import (
    BUILTIN_SOURCES,
    FASHION_MNIST_LABELS,
    balanced_subset,
    list_builtin,
    load_builtin,
    writer_assignment,
)
from core.datasets.errors import DatasetImportError
from core.datasets.records import DatasetImport


def _ids(data: DatasetImport, split: str) -> list[str]:
    return [r.sample_id for r in data.records if r.split == split]


def test_registry_and_listing() -> None:
    listed = {entry["name"]: entry for entry in list_builtin()}
    assert (
        set(listed)
        == {
            "mnist",
            "fashion_mnist",
            "fashion_styles",
            "orl_faces",
            "digits",
            "fictitious-people",
        }
        == set(BUILTIN_SOURCES)
    )
    for entry in listed.values():
        assert set(entry) == {"name", "description", "modality", "available", "reason"}
        assert entry["modality"] == ("text" if entry["name"] == "fictitious-people" else "images")
        assert entry["description"]
        assert entry["available"] is (entry["reason"] is None)
    assert listed["mnist"]["available"]
    assert listed["orl_faces"]["available"]
    assert listed["fictitious-people"]["available"]  # generated: nothing to install


def test_unknown_source_and_bad_limit() -> None:
    with pytest.raises(DatasetImportError, match="unknown built-in dataset 'cifar'"):
        load_builtin("cifar")
    with pytest.raises(DatasetImportError, match="limit"):
        load_builtin("digits", limit=0)


def test_writer_assignment_gives_every_writer_100_samples() -> None:
    writers = writer_assignment(60_000)
    counts = np.bincount(writers)
    assert len(counts) == 600
    assert (counts == 100).all()
    assert np.array_equal(writers, writer_assignment(60_000))  # fixed seed: stable
    assert not np.array_equal(writers[:100], np.zeros(100))  # shuffled, not blocks


def test_balanced_subset_is_round_robin_in_file_order() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2, 0, 2])
    assert balanced_subset(labels, 3).tolist() == [0, 3, 5]
    assert balanced_subset(labels, 5).tolist() == [0, 1, 3, 4, 5]
    assert balanced_subset(labels, 100).tolist() == list(range(8))


@pytest.fixture(scope="module")
def mnist_small() -> DatasetImport:
    return load_builtin("mnist", limit=600)


def test_mnist_limit(mnist_small: DatasetImport) -> None:
    data = mnist_small
    assert data.images.dtype == np.uint8
    assert data.images.shape == (700, 28, 28, 1)
    train, test = data.split_indices("train"), data.split_indices("test")
    assert (len(train), len(test)) == (600, 100)  # test = limit // 6
    assert data.label_names == [str(d) for d in range(10)]
    train_labels = Counter(data.records[i].label for i in train)
    assert set(train_labels.values()) == {60}  # class-balanced
    first = data.records[0]
    assert first.sample_id == "mnist-train-00000"
    assert first.caption == f"a handwritten digit {first.label}"
    assert first.subject_id is not None and first.subject_id.startswith("writer-")
    assert all(data.records[i].subject_id is None for i in test)
    assert all(data.records[i].sample_id.startswith("mnist-test-") for i in test)
    assert data.images.max() == 255 and data.images.min() == 0
    assert data.source == "builtin:mnist"


def test_mnist_ids_and_subjects_are_stable(mnist_small: DatasetImport) -> None:
    again = load_builtin("mnist", limit=600)
    assert [r.sample_id for r in again.records] == [r.sample_id for r in mnist_small.records]
    assert [r.subject_id for r in again.records] == [r.subject_id for r in mnist_small.records]
    assert np.array_equal(again.images, mnist_small.images)
    # A smaller limit is a prefix of the same round-robin: same ids, same subjects.
    smaller = load_builtin("mnist", limit=60)
    by_id = {r.sample_id: r for r in mnist_small.records}
    for record in smaller.records:
        assert by_id[record.sample_id] == record
    # Subjects follow the full-load assignment, whatever the limit.
    writers = writer_assignment(60_000)
    for record in smaller.records:
        if record.split == "train":
            index = int(record.sample_id.rsplit("-", 1)[1])
            assert record.subject_id == f"writer-{writers[index]:04d}"


def test_fashion_mnist() -> None:
    listed = {entry["name"]: entry for entry in list_builtin()}
    if not listed["fashion_mnist"]["available"]:
        assert "dataset-fashion-mnist" in listed["fashion_mnist"]["reason"]
        pytest.skip(listed["fashion_mnist"]["reason"])
    data = load_builtin("fashion_mnist", limit=60)
    assert data.images.shape == (70, 28, 28, 1)
    assert data.label_names == FASHION_MNIST_LABELS
    assert data.records[0].sample_id == "fashion-mnist-train-00000"
    captions = {r.caption for r in data.records}
    assert "a photo of a sneaker" in captions
    assert "a photo of an ankle boot" in captions
    assert all(
        (r.subject_id or "").startswith("writer-") == (r.split == "train") for r in data.records
    )


def test_fashion_mnist_unavailable_names_the_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", builtin.Path("/nonexistent/fashion"))
    entry = {e["name"]: e for e in list_builtin()}["fashion_mnist"]
    assert entry["available"] is False
    assert "dataset-fashion-mnist" in entry["reason"]
    with pytest.raises(DatasetImportError, match="dataset-fashion-mnist"):
        load_builtin("fashion_mnist")


def test_orl_faces_full() -> None:
    data = load_builtin("orl_faces")
    assert data.images.shape == (400, 112, 92, 1)
    assert data.images.dtype == np.uint8
    subjects = data.subjects()
    assert len(subjects) == 40
    assert all(len(ids) == 10 for ids in subjects.values())
    assert data.label_names == [f"person-{p:02d}" for p in range(1, 41)]
    assert len(data.split_indices("train")) == 320
    assert len(data.split_indices("test")) == 80
    record = data.records[data.position("orl-person-03-09")]
    assert (record.split, record.label, record.subject_id) == ("test", 2, "person-03")
    assert record.caption == "a photo of person-03"
    assert data.records[data.position("orl-person-40-08")].split == "train"


def test_orl_faces_limit_keeps_ids() -> None:
    full = load_builtin("orl_faces")
    part = load_builtin("orl_faces", limit=40)
    assert len(part.split_indices("train")) == 40
    assert len(part.split_indices("test")) == 10
    assert len({r.subject_id for r in part.records if r.split == "train"}) == 40
    for position, record in enumerate(part.records):
        full_position = full.position(record.sample_id)
        assert full.records[full_position] == record
        assert np.array_equal(full.images[full_position], part.images[position])


def test_digits_split_is_seeded_and_stratified() -> None:
    data = load_builtin("digits")
    assert data.images.shape == (1797, 8, 8, 1)
    assert data.images.max() == 255
    test = data.split_indices("test")
    assert 340 <= len(test) <= 380
    test_labels = Counter(data.records[i].label for i in test)
    assert min(test_labels.values()) >= 34
    same = load_builtin("digits", seed=0)
    other = load_builtin("digits", seed=1)
    assert _ids(same, "test") == _ids(data, "test")
    assert set(_ids(other, "test")) != set(_ids(data, "test"))
    # Ids name the image, not its split: the same id has the same pixels under any seed.
    position = other.position("digits-0007")
    assert np.array_equal(other.images[position], data.images[data.position("digits-0007")])
    small = load_builtin("digits", limit=50)
    assert (len(small.split_indices("train")), len(small.split_indices("test"))) == (50, 12)
