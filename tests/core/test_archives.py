"""The one safe extractor: each hostile archive is refused before anything is written."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from core.archives import ArchiveError, NotAnArchive, extract_tree, open_archive


def make_zip(path: Path, members: dict[str, bytes], **infos: zipfile.ZipInfo) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for info in infos.values():
            archive.writestr(info, b"target")
    return path


def make_tar(path: Path, *members: tuple[tarfile.TarInfo, bytes | None], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def tar_file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def tar_special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


def refused(archive: Path, dest: Path, message: str) -> None:
    """Refused with ``message`` both when read member by member and when unpacked as a
    tree, and the tree's folder is left empty."""
    with pytest.raises(ArchiveError, match=message), open_archive(archive):
        pass
    with pytest.raises(ArchiveError, match=message):
        extract_tree(archive, dest)
    assert not any(dest.rglob("*"))


def test_a_plain_tree_unpacks_at_its_paths(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "ok.zip", {"pipe/model_index.json": b"{}", "pipe/unet/w": b"w"})
    names = extract_tree(archive, tmp_path / "out")
    assert sorted(names) == ["pipe/model_index.json", "pipe/unet/w"]
    assert (tmp_path / "out/pipe/unet/w").read_bytes() == b"w"
    tgz = make_tar(tmp_path / "ok.tgz", tar_file("./a/b.txt", b"hi"), mode="w:gz")
    assert extract_tree(tgz, tmp_path / "tgz") == ["a/b.txt"]
    assert (tmp_path / "tgz/a/b.txt").read_bytes() == b"hi"


@pytest.mark.parametrize("name", ["../escape.txt", "a/../../escape.txt"])
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    refused(make_zip(tmp_path / "t.zip", {name: b"x"}), tmp_path / "z", r"'\.\.'")
    refused(make_tar(tmp_path / "t.tar", tar_file(name)), tmp_path / "t", r"'\.\.'")
    assert not (tmp_path / "escape.txt").exists()


@pytest.mark.parametrize("name", ["/etc/passwd", "C:/Windows/x.dll"])
def test_absolute_paths_are_refused(tmp_path: Path, name: str) -> None:
    refused(make_tar(tmp_path / "a.tar", tar_file(name)), tmp_path / "t", "absolute")


@pytest.mark.parametrize(
    ("name", "message"), [("a\\..\\b", "backslash"), ("a\nb", "control character")]
)
def test_odd_names_are_refused(tmp_path: Path, name: str, message: str) -> None:
    refused(make_tar(tmp_path / "n.tar", tar_file(name)), tmp_path / "t", message)


def test_zip_symlinks_are_refused(tmp_path: Path) -> None:
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    refused(make_zip(tmp_path / "l.zip", {}, link=link), tmp_path / "z", "symbolic link")


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_tar_links_are_refused(tmp_path: Path, kind: bytes) -> None:
    archive = make_tar(tmp_path / "l.tar", tar_special("evil", kind, "/etc/passwd"))
    refused(archive, tmp_path / "t", "link")


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_devices_and_fifos_are_refused(tmp_path: Path, kind: bytes) -> None:
    refused(make_tar(tmp_path / "d.tar", tar_special("dev", kind)), tmp_path / "t", "device")


def test_zip_special_files_are_refused(tmp_path: Path) -> None:
    fifo = zipfile.ZipInfo("fifo")
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    refused(make_zip(tmp_path / "f.zip", {}, fifo=fifo), tmp_path / "z", "not a regular file")


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "n.zip", {f"f{i}": b"x" for i in range(6)})
    with pytest.raises(ArchiveError, match="more than 5 entries"), open_archive(
        archive, max_files=5
    ):
        pass
    with pytest.raises(ArchiveError, match="more than 5 entries"):
        extract_tree(archive, tmp_path / "out", max_files=5)


def test_too_many_declared_bytes_are_refused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "b.tar", tar_file("a", b"x" * 600), tar_file("b", b"x" * 600))
    with pytest.raises(ArchiveError, match="unpacks to more than 1000 bytes"):
        extract_tree(archive, tmp_path / "out", max_bytes=1000)
    assert not any((tmp_path / "out").rglob("*"))


def test_zip_bombs_are_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(8 << 20)})  # ~1000×
    refused(archive, tmp_path / "z", "zip bomb")


def test_encrypted_zip_members_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "e.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("secret.bin", b"ciphertext")
        archive.filelist[-1].flag_bits |= 0x1  # the central directory says "encrypted"
    refused(path, tmp_path / "z", "encrypted")


def test_duplicate_members_are_refused_in_a_tree(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "d.tar", tar_file("a/x", b"1"), tar_file("./a/x", b"2"))
    with pytest.raises(ArchiveError, match="more than once"):
        extract_tree(archive, tmp_path / "out")


def test_a_file_where_a_folder_goes_is_an_archive_error(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "c.tar", tar_file("a", b"1"), tar_file("a/b", b"2"))
    with pytest.raises(ArchiveError, match="'a/b'"):
        extract_tree(archive, tmp_path / "out")


def test_not_an_archive_and_damaged_archives(tmp_path: Path) -> None:
    plain = tmp_path / "x.bin"
    plain.write_bytes(b"hello, not an archive")
    with pytest.raises(NotAnArchive, match="not a .zip, .tar or .tar.gz"):
        extract_tree(plain, tmp_path / "out")
    whole = make_tar(tmp_path / "w.tgz", tar_file("a", bytes(range(256)) * 4096), mode="w:gz")
    cut = tmp_path / "cut.tgz"
    cut.write_bytes(whole.read_bytes()[:-2000])
    with pytest.raises(ArchiveError, match="damaged or not a valid archive"):
        extract_tree(cut, tmp_path / "cut_out")
