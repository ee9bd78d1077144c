"""Safe reading of archives people upload (.zip, .tar, .tar.gz): every check in one place.

Dataset uploads (``core/datasets/uploads.py``) and Stable Diffusion pipeline folders
(``workers/engine/diffusion/prompted.py``) both unpack archives from people we do not
control; they used to do it with two extractors that protected against different
things. This module is the one extractor, with the union of their protections. Every
header is inspected before a byte is extracted, and the archive is refused, with a
message the uploader can act on, for:

* absolute paths (``/etc/x``, ``C:...``), ``..`` segments, backslashes and control
  characters in member names (path traversal);
* symbolic and hard links, devices, fifos and other special members;
* more than ``max_files`` entries, or more than ``max_bytes`` declared bytes in all;
* a zip member that inflates more than ``MAX_COMPRESSION_RATIO`` times (a zip bomb),
  encrypted zip members, and any member holding more bytes than its header declares
  (the copy stops at the declared size);
* the same member name twice (when extracting a tree).

Nothing is ever extracted with ``extractall``: callers copy members one by one, either
under names they choose (``SafeArchive.copy_to``) or, for ``extract_tree``, under the
cleaned member path inside a fresh folder, checked again after resolving. Standard
library only (no settings, no database), so the torch-free engine can use it too.
"""

from __future__ import annotations

import re
import stat
import tarfile
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_UNCOMPRESSED_BYTES",
    "MAX_COMPRESSION_RATIO",
    "ArchiveError",
    "Budget",
    "Member",
    "NotAnArchive",
    "SafeArchive",
    "clean_member_path",
    "extract_tree",
    "open_archive",
    "refuse_duplicates",
]

DEFAULT_MAX_FILES = 200_000
DEFAULT_MAX_UNCOMPRESSED_BYTES = 2 << 30
# A member that inflates more than this is treated as a compression bomb ...
MAX_COMPRESSION_RATIO = 100
# ... once it is big enough to matter: a blank 112×92 PGM legitimately deflates 300×.
RATIO_CHECK_MIN_BYTES = 1 << 20
_COPY_CHUNK = 1 << 20


class ArchiveError(ValueError):
    """The archive is unsafe, over a limit or damaged; the message says which and why."""


class NotAnArchive(ArchiveError):
    """Neither a zip nor a tar; callers say what they expected instead."""


@dataclass
class Member:
    """A regular file in the archive, already checked."""

    name: str  # normalised posix path inside the archive
    size: int  # declared uncompressed size; the copy never writes more
    handle: Any  # ZipInfo or TarInfo


def clean_member_path(raw: str) -> str:
    """Normalise an archive member name or refuse it if it could escape the archive."""
    if "\x00" in raw or any(ord(ch) < 32 for ch in raw):
        raise ArchiveError(f"archive member {raw!r} has a control character in its name")
    if "\\" in raw:
        raise ArchiveError(
            f"archive member {raw!r} uses a backslash; re-create the archive with '/' paths"
        )
    if raw.startswith("/") or re.match(r"^[A-Za-z]:", raw):
        raise ArchiveError(
            f"archive member {raw!r} has an absolute path; archives must hold relative paths"
        )
    parts = [part for part in raw.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(
            f"archive member {raw!r} contains '..'; paths may not point outside the folder "
            "the archive unpacks into"
        )
    return "/".join(parts)


def refuse_duplicates(names: Iterable[str]) -> None:
    """Two members with one name: which one wins depends on the tool, so refuse both."""
    duplicated = [name for name, count in Counter(names).items() if count > 1]
    if duplicated:
        raise ArchiveError(
            f"archive member {duplicated[0]!r} appears more than once; remove the duplicate"
        )


class Budget:
    """Counts entries and declared bytes, failing as soon as a limit is crossed."""

    def __init__(self, max_files: int, max_bytes: int) -> None:
        self.max_files = max_files
        self.max_bytes = max_bytes
        self.entries = 0
        self.total = 0

    def add(self, name: str, size: int) -> None:
        self.entries += 1
        if self.entries > self.max_files:
            raise ArchiveError(
                f"the archive has more than {self.max_files} entries; "
                "split it into smaller uploads or raise max_files"
            )
        if size < 0:
            raise ArchiveError(f"archive member {name!r} declares a negative size")
        self.total += size
        if self.total > self.max_bytes:
            raise ArchiveError(
                f"the archive unpacks to more than {self.max_bytes} bytes "
                f"(reached at {name!r}); split it or raise max_uncompressed_bytes"
            )


def _zip_members(archive: zipfile.ZipFile, budget: Budget) -> list[Member]:
    members = []
    for info in archive.infolist():
        budget.add(info.filename, info.file_size)
        name = clean_member_path(info.filename)
        # Unix archivers keep st_mode in the high 16 bits; the type bits may be absent
        # (Python's writestr stores permissions only), which means a regular file.
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(
                f"archive member {info.filename!r} is a symbolic link; links are not allowed"
            )
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise ArchiveError(f"archive member {info.filename!r} is not a regular file")
        if info.is_dir() or not name:
            continue
        if info.flag_bits & 0x1:
            raise ArchiveError(
                f"archive member {info.filename!r} is encrypted; upload an unencrypted archive"
            )
        if info.file_size > RATIO_CHECK_MIN_BYTES and (
            info.file_size > MAX_COMPRESSION_RATIO * max(info.compress_size, 1)
        ):
            ratio = info.file_size / max(info.compress_size, 1)
            raise ArchiveError(
                f"archive member {info.filename!r} expands {ratio:.0f}× "
                f"({info.compress_size} → {info.file_size} bytes); more than "
                f"{MAX_COMPRESSION_RATIO}× looks like a zip bomb and is refused"
            )
        members.append(Member(name, info.file_size, info))
    return members


def _tar_members(archive: tarfile.TarFile, budget: Budget) -> list[Member]:
    members = []
    # next() instead of getmembers(): limits are checked on each header before the
    # reader skips (and, for .tar.gz, decompresses) that member's data.
    while (info := archive.next()) is not None:
        budget.add(info.name, info.size if info.isreg() else 0)
        name = clean_member_path(info.name)
        if info.issym() or info.islnk():
            raise ArchiveError(
                f"archive member {info.name!r} is a link (to {info.linkname!r}); "
                "links are not allowed"
            )
        if info.isdir():
            continue
        if not info.isreg():
            raise ArchiveError(
                f"archive member {info.name!r} is a device, fifo or other special file"
            )
        if name:
            members.append(Member(name, info.size, info))
    return members


def _copy_bounded(source: IO[bytes], target: Path, limit: int, name: str) -> None:
    """Copy at most ``limit`` bytes; more than the header declared means a lying archive."""
    written = 0
    with target.open("wb") as out:
        while chunk := source.read(_COPY_CHUNK):
            written += len(chunk)
            if written > limit:
                raise ArchiveError(
                    f"archive member {name!r} holds more data than its header declares"
                )
            out.write(chunk)


def _damaged(path: Path, exc: Exception) -> ArchiveError:
    return ArchiveError(f"{path.name} is damaged or not a valid archive: {exc}")


class SafeArchive:
    """An open archive whose headers all passed the checks; its regular files only."""

    def __init__(
        self, path: Path, members: list[Member], opener: Callable[[Member], IO[bytes]]
    ) -> None:
        self.path = path
        self.members = members
        self._open = opener

    def copy_to(self, member: Member, target: Path) -> None:
        """Write ``member``'s bytes (never more than it declared) to ``target``."""
        try:
            with self._open(member) as source:
                _copy_bounded(source, target, member.size, member.name)
        except ArchiveError:
            raise
        except Exception as exc:  # BadZipFile, TarError, EOFError, zlib/lzma errors
            raise _damaged(self.path, exc) from exc


@contextmanager
def open_archive(
    path: str | Path,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> Iterator[SafeArchive]:
    """Open a zip or tar (any compression tarfile reads) and check every header first."""
    path = Path(path)
    budget = Budget(max_files, max_bytes)
    with ExitStack() as stack:
        try:
            if zipfile.is_zipfile(path):
                zip_archive = stack.enter_context(zipfile.ZipFile(path))
                members = _zip_members(zip_archive, budget)

                def opener(member: Member) -> IO[bytes]:
                    return zip_archive.open(member.handle)

            elif tarfile.is_tarfile(path):
                tar_archive = stack.enter_context(tarfile.open(path, "r:*"))
                members = _tar_members(tar_archive, budget)

                def opener(member: Member) -> IO[bytes]:
                    source = tar_archive.extractfile(member.handle)
                    if source is None:
                        raise ArchiveError(f"cannot read archive member {member.name!r}")
                    return source

            else:
                raise NotAnArchive(f"{path.name} is not a .zip, .tar or .tar.gz archive")
        except ArchiveError:
            raise
        except Exception as exc:  # BadZipFile, TarError, EOFError, OSError, zlib/lzma errors
            raise _damaged(path, exc) from exc
        yield SafeArchive(path, members, opener)


def extract_tree(
    path: str | Path,
    dest: str | Path,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
) -> list[str]:
    """Unpack the archive's regular files under ``dest`` at their (cleaned) paths.

    For archives whose layout is the point (a diffusers folder). ``dest`` should be a
    fresh folder: links are refused, so nothing in it can lead elsewhere, and each
    target is checked to resolve inside it anyway. Returns the member names written.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    with open_archive(path, max_files=max_files, max_bytes=max_bytes) as archive:
        refuse_duplicates(member.name for member in archive.members)
        for member in archive.members:
            target = root.joinpath(*member.name.split("/"))
            if root not in target.resolve().parents:
                raise ArchiveError(
                    f"archive member {member.name!r} points outside the folder it unpacks into"
                )
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file where a folder should be: "a" and "a/b"
                raise ArchiveError(
                    f"archive member {member.name!r} cannot be written: {exc}"
                ) from exc
            archive.copy_to(member, target)
        return [member.name for member in archive.members]
