"""Archive and manifest uploads: the happy paths and every attack we refuse."""

from __future__ import annotations

import csv
import io
import os
import stat
import tarfile
import tempfile
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.datasets.errors import DatasetImportError
from core.datasets.uploads import import_archive, import_manifest


def image_bytes(
    size: tuple[int, int] = (6, 8), mode: str = "L", value: int = 128, fmt: str = "PNG"
) -> bytes:
    """An encoded image; ``size`` is (height, width)."""
    height, width = size
    colour: int | tuple[int, int, int] = value if mode == "L" else (value, 255 - value, 7)
    image = Image.new(mode, (width, height), colour)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _tar_add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:  # type: ignore[call-overload]
        for name, data in members.items():
            _tar_add(archive, name, data)
    return path


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Temp files go to ``tmp_path/tmp`` and the cwd is ``tmp_path/cwd``.

    After the test both are checked: the temp folder must be empty again (cleaned up) and
    nothing may appear in the cwd, next to tmp_path, or at an absolute path an attack
    named.
    """
    temp = tmp_path / "tmp"
    cwd = tmp_path / "cwd"
    temp.mkdir()
    cwd.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.chdir(cwd)
    siblings = set(tmp_path.parent.iterdir())
    yield tmp_path
    assert list(temp.iterdir()) == [], "the import left temporary files behind"
    assert list(cwd.iterdir()) == [], "the import wrote into the working directory"
    assert set(tmp_path.parent.iterdir()) == siblings, "the import wrote next to tmp_path"


# ---------------------------------------------------------------------- happy paths


def test_zip_with_split_folders(sandbox: Path) -> None:
    members = {
        "train/cat/1.png": image_bytes(value=10),
        "train/cat/2.png": image_bytes(value=20),
        "train/dog/1.png": image_bytes(value=30),
        "train/dog/big.png": image_bytes(size=(12, 12), value=40),
        "test/cat/3.png": image_bytes(value=50),
        "test/dog/4.bmp": image_bytes(value=60, fmt="BMP"),
        "test/dog/5.pgm": image_bytes(value=70, fmt="PPM"),
        "test/dog/6.jpg": image_bytes(value=80, fmt="JPEG"),
    }
    data = import_archive(write_zip(sandbox / "pets.zip", members), "pets")
    assert data.name == "pets"
    assert data.images.shape == (8, 6, 8, 1)  # most common size, grey
    assert data.label_names == ["cat", "dog"]
    by_id = {r.sample_id: (r, data.images[i]) for i, r in enumerate(data.records)}
    record, pixels = by_id["train/cat/2.png"]
    assert (record.label, record.split, record.subject_id) == (0, "train", None)
    assert (pixels == 20).all()
    assert by_id["test/dog/5.pgm"][0].split == "test"
    assert (by_id["test/dog/5.pgm"][1] == 70).all()
    assert by_id["train/dog/big.png"][1].shape == (6, 8, 1)
    assert data.source == "archive:pets.zip"
    assert "1 images resized" in data.description


def test_tar_gz_with_wrapper_folder_junk_and_mixed_modes(sandbox: Path) -> None:
    members = {
        "./photos/red/a.png": image_bytes(mode="RGB", value=200),
        "./photos/red/b.png": image_bytes(mode="RGB", value=201),
        "./photos/grey/c.png": image_bytes(mode="L", value=90),
        "./photos/README.txt": b"hello",
        "./photos/grey/.DS_Store": b"junk",
        "__MACOSX/photos/red/._a.png": b"junk",
    }
    data = import_archive(write_tar(sandbox / "photos.tar.gz", members), "photos")
    assert data.images.shape == (3, 6, 8, 3)  # one RGB image makes the dataset RGB
    assert data.label_names == ["grey", "red"]
    assert [r.sample_id for r in data.records] == ["grey/c.png", "red/a.png", "red/b.png"]
    assert tuple(data.images[1, 0, 0]) == (200, 55, 7)
    assert tuple(data.images[0, 0, 0]) == (90, 90, 90)
    assert "1 non-image files skipped" in data.description


def test_plain_tar_and_overrides(sandbox: Path) -> None:
    members = {
        "0/a.png": image_bytes(mode="RGB"),
        "1/b.png": image_bytes(mode="RGB"),
        "10/c.png": image_bytes(mode="RGB"),
        "2/d.png": image_bytes(mode="RGB"),
    }
    path = write_tar(sandbox / "digits.tar", members, mode="w")
    data = import_archive(path, "digits", image_size=(4, 5), channels=1)
    assert data.images.shape == (4, 4, 5, 1)
    assert data.label_names == ["0", "1", "2", "10"]  # integer names sort as numbers
    labels = {r.sample_id: data.label_names[r.label or 0] for r in data.records}
    assert labels["10/c.png"] == "10"
    with pytest.raises(DatasetImportError, match="channels"):
        import_archive(path, "digits", channels=2)


def test_archive_with_manifest(sandbox: Path) -> None:
    rows = [
        ["path", "label", "subject_id", "caption", "split", "sample_id"],
        ["img/a.png", "alice", "subj-1", "a photo of alice", "train", "s-a"],
        ["img/b.png", "bob", "subj-2", "", "test", ""],
        ["img/c.png", "", "", "", "", "s-c"],
    ]
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    members = {
        "wrap/manifest.csv": text.getvalue().encode(),
        "wrap/img/a.png": image_bytes(value=1),
        "wrap/img/b.png": image_bytes(value=2),
        "wrap/img/c.png": image_bytes(value=3),
        "wrap/img/unlisted.png": image_bytes(value=4),
    }
    data = import_archive(write_zip(sandbox / "people.zip", members), "people")
    assert data.label_names == ["alice", "bob"]
    records = {r.sample_id: r for r in data.records}
    assert set(records) == {"s-a", "img/b.png", "s-c"}
    assert records["s-a"].subject_id == "subj-1"
    assert records["s-a"].caption == "a photo of alice"
    assert (records["img/b.png"].split, records["img/b.png"].label) == ("test", 1)
    assert records["img/b.png"].caption is None
    assert (records["s-c"].label, records["s-c"].split) == (None, "train")
    assert data.subjects() == {"subj-1": ["s-a"], "subj-2": ["img/b.png"]}
    assert "1 non-image files skipped" in data.description


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("path,label\nimg/missing.png,x\n", "was not found"),
        ("path,label,split\nimg/a.png,x,validation\n", "split"),
        ("path,lable\nimg/a.png,x\n", "unknown columns lable"),
        ("label\nx\n", "no 'path' column"),
        ("path,label\n../outside.png,x\n", r"'\.\.'"),
        ("path,label\nimg/a.png,x\nimg/a.png,y\n", "appears twice"),
    ],
)
def test_archive_manifest_errors(sandbox: Path, manifest: str, message: str) -> None:
    members = {"manifest.csv": manifest.encode(), "img/a.png": image_bytes()}
    with pytest.raises(DatasetImportError, match=message):
        import_archive(write_zip(sandbox / "m.zip", members), "m")


def _write_manifest_folder(base: Path) -> None:
    (base / "imgs").mkdir(parents=True)
    for name, value in [("a", 10), ("b", 20), ("c", 30)]:
        (base / "imgs" / f"{name}.png").write_bytes(image_bytes(value=value))


def test_import_manifest_csv(sandbox: Path) -> None:
    base = sandbox / "data"
    _write_manifest_folder(base)
    manifest = sandbox / "manifest.csv"
    manifest.write_text(
        "path,label,subject_id,split\n"
        "imgs/a.png,cat,p1,train\n"
        "imgs/b.png,dog,p2,test\n"
        "./imgs/c.png,cat,p1,train\n"
    )
    data = import_manifest(manifest, base, "pets")
    assert data.images.shape == (3, 6, 8, 1)
    assert [r.sample_id for r in data.records] == ["imgs/a.png", "imgs/b.png", "imgs/c.png"]
    assert data.subjects() == {"p1": ["imgs/a.png", "imgs/c.png"], "p2": ["imgs/b.png"]}
    assert data.source == "manifest:manifest.csv"
    assert (data.images[2] == 30).all()


def test_import_manifest_refuses_paths_outside_base(sandbox: Path) -> None:
    base = sandbox / "data"
    _write_manifest_folder(base)
    secret = sandbox / "secret.png"
    secret.write_bytes(image_bytes())
    (base / "link.png").symlink_to(secret)
    manifest = sandbox / "m.csv"
    for path, message in [
        ("../secret.png", r"'\.\.'"),
        (str(secret), "absolute"),
        ("link.png", "outside"),
        ("imgs/none.png", "not found"),
        ("imgs", "not found"),  # a folder is not an image
    ]:
        manifest.write_text(f"path,label\n{path},x\n")
        with pytest.raises(DatasetImportError, match=message):
            import_manifest(manifest, base, "m")


def test_import_manifest_parquet(sandbox: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    base = sandbox / "data"
    _write_manifest_folder(base)
    table = pa.table(
        {
            "path": ["imgs/a.png", "imgs/b.png"],
            "label": [3, 12],  # non-string labels are read as names
            "subject_id": ["p1", None],
            "split": ["train", "test"],
        }
    )
    manifest = sandbox / "m.parquet"
    pq.write_table(table, manifest)
    data = import_manifest(manifest, base, "pq")
    assert data.label_names == ["3", "12"]
    assert [r.label for r in data.records] == [0, 1]
    assert [r.subject_id for r in data.records] == ["p1", None]
    with pytest.raises(DatasetImportError, match="more than 1"):
        import_manifest(manifest, base, "pq", max_files=1)


# -------------------------------------------------------------------------- attacks


def _escape_targets(sandbox: Path) -> list[Path]:
    return [sandbox.parent / "evil.png", sandbox / "evil.png", sandbox / "cwd" / "evil.png"]


def test_zip_member_with_dotdot(sandbox: Path) -> None:
    path = write_zip(sandbox / "a.zip", {"cat/ok.png": image_bytes(), "../evil.png": image_bytes()})
    with pytest.raises(DatasetImportError, match=r"'\.\.'"):
        import_archive(path, "x")
    assert not any(p.exists() for p in _escape_targets(sandbox))


def test_zip_member_with_absolute_path(sandbox: Path) -> None:
    target = f"/tmp/expunge-evil-{uuid.uuid4().hex}.png"
    path = write_zip(sandbox / "a.zip", {"cat/ok.png": image_bytes(), target: image_bytes()})
    with pytest.raises(DatasetImportError, match="absolute"):
        import_archive(path, "x")
    assert not Path(target).exists()


def test_tar_member_with_dotdot_and_absolute_path(sandbox: Path) -> None:
    path = write_tar(sandbox / "a.tgz", {"cat/ok.png": image_bytes(), "cat/../../evil.png": b"x"})
    with pytest.raises(DatasetImportError, match=r"'\.\.'"):
        import_archive(path, "x")
    target = f"/tmp/expunge-evil-{uuid.uuid4().hex}.png"
    path = write_tar(sandbox / "b.tgz", {target: image_bytes()})
    with pytest.raises(DatasetImportError, match="absolute"):
        import_archive(path, "x")
    assert not Path(target).exists()
    assert not any(p.exists() for p in _escape_targets(sandbox))


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_refused(sandbox: Path, kind: bytes) -> None:
    path = sandbox / "links.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        _tar_add(archive, "cat/ok.png", image_bytes())
        link = tarfile.TarInfo("cat/passwd.png")
        link.type = kind
        link.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else "cat/ok.png"
        archive.addfile(link)
    with pytest.raises(DatasetImportError, match="link"):
        import_archive(path, "x")


def test_tar_device_is_refused(sandbox: Path) -> None:
    path = sandbox / "dev.tar"
    with tarfile.open(path, "w") as archive:
        device = tarfile.TarInfo("cat/zero.png")
        device.type = tarfile.CHRTYPE
        device.devmajor, device.devminor = 1, 5
        archive.addfile(device)
    with pytest.raises(DatasetImportError, match="device"):
        import_archive(path, "x")


def test_zip_symlink_is_refused(sandbox: Path) -> None:
    path = sandbox / "link.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("cat/ok.png", image_bytes())
        info = zipfile.ZipInfo("cat/link.png")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(DatasetImportError, match="symbolic link"):
        import_archive(path, "x")


def test_zip_bomb_is_refused(sandbox: Path) -> None:
    path = write_zip(
        sandbox / "bomb.zip", {"cat/ok.png": image_bytes(), "cat/bomb.png": bytes(50 << 20)}
    )
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DatasetImportError, match="zip bomb"):
        import_archive(path, "x")


def test_declared_size_over_limit(sandbox: Path) -> None:
    members = {f"cat/{i}.png": image_bytes() for i in range(4)}
    for path in (write_zip(sandbox / "s.zip", members), write_tar(sandbox / "s.tgz", members)):
        limit = sum(len(v) for v in members.values()) - 1
        with pytest.raises(DatasetImportError, match="unpacks to more than"):
            import_archive(path, "x", max_uncompressed_bytes=limit)
        assert import_archive(path, "x", max_uncompressed_bytes=limit + 1).num_samples == 4


def test_too_many_files(sandbox: Path) -> None:
    members = {f"cat/{i}.png": image_bytes() for i in range(6)}
    for path in (write_zip(sandbox / "n.zip", members), write_tar(sandbox / "n.tgz", members)):
        with pytest.raises(DatasetImportError, match="more than 5 entries"):
            import_archive(path, "x", max_files=5)


def test_not_an_archive_and_corrupt_images(sandbox: Path) -> None:
    junk = sandbox / "junk.zip"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(DatasetImportError, match="not a .zip"):
        import_archive(junk, "x")
    path = write_zip(sandbox / "bad.zip", {"cat/a.png": image_bytes(), "cat/b.png": b"nope"})
    with pytest.raises(DatasetImportError, match=r"cat/b\.png: not a readable"):
        import_archive(path, "x")
    # A format PIL knows but uploads may not use (GIF) is refused as well.
    gif = io.BytesIO()
    Image.new("L", (4, 4)).save(gif, format="GIF")
    path = write_zip(sandbox / "gif.zip", {"cat/a.png": gif.getvalue()})
    with pytest.raises(DatasetImportError, match="not a readable"):
        import_archive(path, "x")
    with pytest.raises(DatasetImportError, match="no images found"):
        import_archive(write_zip(sandbox / "empty.zip", {"README.txt": b"hi"}), "x")


def test_bad_layouts(sandbox: Path) -> None:
    cases = {
        "flat.zip": {"a.png": image_bytes()},
        "deep.zip": {"cat/sub/a.png": image_bytes(), "dog/sub/b.png": image_bytes()},
        "mixed.zip": {"train/cat/a.png": image_bytes(), "dog/b.png": image_bytes()},
        "split-no-label.zip": {"train/a.png": image_bytes(), "test/b.png": image_bytes()},
    }
    for name, members in cases.items():
        with pytest.raises(DatasetImportError, match="layout"):
            import_archive(write_zip(sandbox / name, members), "x")


def test_image_pixel_limit_is_enforced(sandbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    for size in [(12, 12), (30, 30)]:  # over the limit (warning) and over 2× (error)
        path = write_zip(sandbox / f"big{size[0]}.zip", {"cat/a.png": image_bytes(size=size)})
        with pytest.raises(DatasetImportError, match="pixel limit"):
            import_archive(path, "x")
    path = write_zip(sandbox / "ok.zip", {"cat/a.png": image_bytes(size=(10, 10))})
    assert import_archive(path, "x").images.shape == (1, 10, 10, 1)


def test_duplicate_member_is_refused(sandbox: Path) -> None:
    path = sandbox / "dup.zip"
    with zipfile.ZipFile(path, "w") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("cat/a.png", image_bytes(value=1))
        archive.writestr("cat/a.png", image_bytes(value=2))
    with pytest.raises(DatasetImportError, match="more than once"):
        import_archive(path, "x")


def test_sixteen_bit_grey_is_scaled_not_clipped(sandbox: Path) -> None:
    wide = np.full((4, 4), 65535, dtype=np.uint16)
    wide[0, 0] = 257 * 100
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, format="PNG")
    data = import_archive(write_zip(sandbox / "w.zip", {"cat/a.png": buffer.getvalue()}), "w")
    assert data.images.shape == (1, 4, 4, 1)
    assert data.images[0, 1, 1, 0] == 255
    assert data.images[0, 0, 0, 0] == 100
