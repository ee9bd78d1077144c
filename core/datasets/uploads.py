"""User uploads: image-folder archives and CSV/Parquet manifests → ``DatasetImport``.

Uploads come from people we do not control, so every archive is inspected from its
headers before a byte is extracted (``core.archives``, the one safe extractor): absolute
paths, ``..`` segments, links and device entries, too many entries, too many declared
bytes and compression bombs are refused with a message the uploader can act on.
Accepted members are then copied into a private
temporary folder under names we choose (``00000017.img``), never under the member's own
path, so nothing an archive says can make us write anywhere else. Images are decoded
with PIL restricted to PNG, JPEG, PGM/PPM and BMP, with ``Image.MAX_IMAGE_PIXELS``
enforced as a hard limit. Nothing from an upload is ever unpickled.

Archive layouts:

* ``<label>/<file>`` or ``train|test/<label>/<file>`` (one wrapping folder is allowed);
* or a ``manifest.csv`` at the root with columns ``path,label,subject_id,caption,split``
  and optionally ``sample_id``; ``path`` is relative to the manifest.

Label names are sorted (numerically when every name is an integer) and labels are their
indices. Without a manifest a sample's id is its path inside the archive.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from core.archives import (
    DEFAULT_MAX_FILES,
    DEFAULT_MAX_UNCOMPRESSED_BYTES,
    MAX_COMPRESSION_RATIO,
    ArchiveError,
    Budget,
    Member,
    clean_member_path,
    open_archive,
    refuse_duplicates,
)
from core.datasets.errors import DatasetImportError
from core.datasets.records import SPLITS, DatasetImport, SampleRecord

__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_UNCOMPRESSED_BYTES",
    "IMAGE_SUFFIXES",
    "MAX_COMPRESSION_RATIO",
    "import_archive",
    "import_manifest",
]

MANIFEST_NAME = "manifest.csv"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".pnm", ".bmp"}
# PIL format names for the suffixes above; anything else is refused, even if PIL could
# decode it, to keep the decoders exposed to uploads few and well-trodden.
_PIL_FORMATS = ["PNG", "JPEG", "PPM", "BMP"]
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_JUNK_NAMES = {".DS_Store", "Thumbs.db", "desktop.ini"}
_MANIFEST_COLUMNS = {"path", "label", "subject_id", "caption", "split", "sample_id"}
# The decoded array must fit in memory; refuse before allocating rather than after.
MAX_DECODED_BYTES = 8 << 30


@dataclass
class _Entry:
    """One image to import: where its bytes are and what the record will say."""

    sample_id: str
    path: str  # as the user named it (archive member or manifest row), for messages
    file: Path  # the bytes on local disk
    label: str | None
    subject_id: str | None
    caption: str | None
    split: str


# ------------------------------------------------------------- member inspection


def _clean_member_path(raw: str) -> str:
    """Normalise an archive member name or refuse it if it could escape the archive."""
    try:
        return clean_member_path(raw)
    except ArchiveError as exc:
        raise DatasetImportError(str(exc)) from None


def _is_junk(name: str) -> bool:
    """OS metadata that archivers add (macOS resource forks, Finder and Explorer files)."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or parts[-1] in _JUNK_NAMES or parts[-1].startswith("._")


class _Budget(Budget):
    """The archive budget, for manifests' files too, failing as a DatasetImportError."""

    def add(self, name: str, size: int) -> None:
        try:
            super().add(name, size)
        except ArchiveError as exc:
            raise DatasetImportError(str(exc)) from None


def _common_wrapper(names: Sequence[str]) -> str:
    """The one folder everything sits in ('' if none), e.g. ``faces/`` from a zipped folder."""
    first = {name.split("/", 1)[0] for name in names}
    if len(first) != 1:
        return ""
    (top,) = first
    if top in SPLITS or any("/" not in name for name in names):
        return ""
    inner = [name.split("/", 1)[1] for name in names]
    # Strip only if what is left is still a valid layout (a manifest, or label folders).
    if MANIFEST_NAME in inner or all("/" in name for name in inner):
        return top + "/"
    return ""


@contextmanager
def _extract(path: Path, max_files: int, max_bytes: int) -> Iterator[tuple[dict[str, Path], int]]:
    """Check every header (``core.archives``), then copy the wanted members into a
    private temp folder under names we choose.

    Yields (path inside the archive without any wrapping folder → local file, number
    of skipped non-image files). The folder is removed when the block exits.
    """
    with tempfile.TemporaryDirectory(prefix="expunge-upload-") as tmp:
        files: dict[str, Path] = {}
        try:
            with open_archive(path, max_files=max_files, max_bytes=max_bytes) as archive:
                wanted, wrapper, skipped = _select(archive.members)
                for number, member in enumerate(wanted):
                    # Our own file name, never the member's: the archive cannot pick where
                    # we write.
                    target = Path(tmp) / f"{number:08d}.img"
                    archive.copy_to(member, target)
                    files[member.name[len(wrapper) :]] = target
        except ArchiveError as exc:
            raise DatasetImportError(str(exc)) from exc
        yield files, skipped


def _select(members: list[Member]) -> tuple[list[Member], str, int]:
    """Drop OS junk, refuse duplicates, keep images and the manifest; find the wrapper."""
    kept = [member for member in members if not _is_junk(member.name)]
    refuse_duplicates(member.name for member in kept)

    def is_image(name: str) -> bool:
        return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES

    # The wrapper is judged on images and manifests only, so a README beside the
    # label folders does not stop a zipped folder from being unwrapped.
    candidates = [
        m.name for m in kept if is_image(m.name) or PurePosixPath(m.name).name == MANIFEST_NAME
    ]
    wrapper = _common_wrapper(candidates)
    manifest = wrapper + MANIFEST_NAME
    wanted = [
        member
        for member in kept
        if member.name == manifest or (member.name.startswith(wrapper) and is_image(member.name))
    ]
    return wanted, wrapper, len(kept) - len(wanted)


# ----------------------------------------------------------------------- manifests


def _cell(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _check_columns(columns: Sequence[str] | None, where: str) -> None:
    if not columns:
        raise DatasetImportError(f"{where} is empty; it needs a header row starting with 'path'")
    names = [str(column).strip() for column in columns]
    if "path" not in names:
        raise DatasetImportError(f"{where} has no 'path' column (columns: {', '.join(names)})")
    unknown = sorted(set(names) - _MANIFEST_COLUMNS)
    if unknown:
        raise DatasetImportError(
            f"{where} has unknown columns {', '.join(unknown)}; "
            f"expected {', '.join(sorted(_MANIFEST_COLUMNS))}"
        )


def _read_csv_rows(data: bytes, where: str, max_files: int) -> list[dict[str, Any]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DatasetImportError(f"{where} is not UTF-8 text: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    _check_columns(reader.fieldnames, where)
    rows = []
    try:
        for row in reader:
            rows.append({str(k).strip(): v for k, v in row.items() if k is not None})
            if len(rows) > max_files:
                raise DatasetImportError(
                    f"{where} lists more than {max_files} images; split it or raise max_files"
                )
    except csv.Error as exc:
        raise DatasetImportError(
            f"{where} is not valid CSV (line {reader.line_num}): {exc}"
        ) from exc
    return rows


def _read_parquet_rows(path: Path, max_files: int) -> list[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetImportError(
            "Parquet manifests need the pyarrow package; install it or upload a CSV manifest"
        ) from exc
    try:
        parquet = pq.ParquetFile(path)
        _check_columns(parquet.schema_arrow.names, path.name)
        if parquet.metadata.num_rows > max_files:
            raise DatasetImportError(
                f"{path.name} lists {parquet.metadata.num_rows} images, more than "
                f"{max_files}; split it or raise max_files"
            )
        return list(parquet.read().to_pylist())
    except DatasetImportError:
        raise
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for bad files
        raise DatasetImportError(f"{path.name} is not a readable Parquet file: {exc}") from exc


def _manifest_entries(
    rows: list[dict[str, Any]], where: str, locate: Callable[[str], Path | None]
) -> list[_Entry]:
    """Turn manifest rows into entries; ``locate`` maps a clean relative path to its file."""
    entries = []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        raw_path = _cell(row, "path")
        if raw_path is None:
            raise DatasetImportError(f"{where} row {line}: 'path' is empty")
        try:
            rel = _clean_member_path(raw_path)
        except DatasetImportError as exc:
            raise DatasetImportError(f"{where} row {line}: {exc}") from None
        file = locate(rel)
        if file is None:
            raise DatasetImportError(f"{where} row {line}: image {raw_path!r} was not found")
        split = _cell(row, "split") or "train"
        if split not in SPLITS:
            raise DatasetImportError(
                f"{where} row {line}: split {split!r} must be one of {', '.join(SPLITS)}"
            )
        entries.append(
            _Entry(
                sample_id=_cell(row, "sample_id") or rel,
                path=rel,
                file=file,
                label=_cell(row, "label"),
                subject_id=_cell(row, "subject_id"),
                caption=_cell(row, "caption"),
                split=split,
            )
        )
    return entries


def _folder_entries(files: dict[str, Path]) -> list[_Entry]:
    """Entries from the ``[train|test/]<label>/<file>`` layout."""
    entries = []
    with_split = without_split = 0
    for name in sorted(files):
        parts = name.split("/")
        if len(parts) == 3 and parts[0] in SPLITS:
            split, label = parts[0], parts[1]
            with_split += 1
        elif len(parts) == 2 and parts[0] not in SPLITS:
            split, label = "train", parts[0]
            without_split += 1
        else:
            raise DatasetImportError(
                f"{name!r} does not fit the layout <label>/<image> or "
                "train|test/<label>/<image> (or add a manifest.csv at the root)"
            )
        entries.append(
            _Entry(
                sample_id=name,
                path=name,
                file=files[name],
                label=label,
                subject_id=None,
                caption=None,
                split=split,
            )
        )
    if with_split and without_split:
        raise DatasetImportError(
            "the archive mixes train/test/<label>/ folders with top-level <label>/ folders; "
            "use one layout for every image"
        )
    return entries


# ------------------------------------------------------------------------ decoding


def _sorted_labels(labels: set[str]) -> list[str]:
    if labels and all(re.fullmatch(r"-?\d+", label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


@contextmanager
def _open_image(entry: _Entry) -> Iterator[Image.Image]:
    """Open with the allowed decoders only; oversize images are errors, not warnings."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(entry.file, formats=_PIL_FORMATS) as image:
                yield image
    except DatasetImportError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetImportError(
            f"{entry.path}: image is larger than the {Image.MAX_IMAGE_PIXELS}-pixel limit"
        ) from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DatasetImportError(
            f"{entry.path}: not a readable PNG, JPEG, PGM/PPM or BMP image ({exc})"
        ) from exc


def _to_uint8(image: Image.Image, channels: int, size_hw: tuple[int, int]) -> np.ndarray:
    if image.mode.startswith("I"):
        # 16-bit grey (PNG/PGM): scale 0..65535 to 0..255 instead of clipping.
        wide = np.asarray(image, dtype=np.float64) / 257.0
        image = Image.fromarray(np.clip(np.rint(wide), 0, 255).astype(np.uint8))
    elif image.mode == "F":
        image = Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8))
    elif image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    image = image.convert("L" if channels == 1 else "RGB")
    height, width = size_hw
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[..., np.newaxis] if channels == 1 else pixels


def _build(
    name: str,
    entries: list[_Entry],
    source: str,
    origin: str,
    image_size: tuple[int, int] | None,
    channels: int | None,
    skipped: int,
) -> DatasetImport:
    if not entries:
        raise DatasetImportError(
            f"no images found in {origin}; expected <label>/<image>.png|jpg|pgm|bmp folders "
            "or a manifest.csv"
        )
    if channels is not None and channels not in (1, 3):
        raise DatasetImportError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if image_size is not None:
        if len(image_size) != 2 or any(int(v) < 1 for v in image_size):
            raise DatasetImportError(f"image_size must be (height, width) > 0, got {image_size}")
        image_size = (int(image_size[0]), int(image_size[1]))

    # Pass 1: headers only (PIL opens lazily) to choose the common size and channels.
    sizes: Counter[tuple[int, int]] = Counter()
    all_grey = True
    for entry in entries:
        with _open_image(entry) as image:
            width, height = image.size
            sizes[(height, width)] += 1
            all_grey = all_grey and image.mode in _GREY_MODES
    target_hw = image_size or sizes.most_common(1)[0][0]
    target_c = channels or (1 if all_grey else 3)
    decoded_bytes = len(entries) * target_hw[0] * target_hw[1] * target_c
    if decoded_bytes > MAX_DECODED_BYTES:
        raise DatasetImportError(
            f"{len(entries)} images of {target_hw[0]}×{target_hw[1]}×{target_c} would take "
            f"{decoded_bytes / 2**30:.1f} GiB decoded (limit {MAX_DECODED_BYTES / 2**30:.0f}); "
            "pass a smaller image_size or split the dataset"
        )

    # Pass 2: decode, convert and resize into one preallocated array.
    images = np.empty((len(entries), *target_hw, target_c), dtype=np.uint8)
    resized = 0
    for index, entry in enumerate(entries):
        with _open_image(entry) as image:
            if (image.size[1], image.size[0]) != target_hw:
                resized += 1
            try:
                images[index] = _to_uint8(image, target_c, target_hw)
            except (OSError, ValueError, SyntaxError) as exc:
                raise DatasetImportError(f"{entry.path}: cannot decode image ({exc})") from exc

    label_names = _sorted_labels({entry.label for entry in entries if entry.label is not None})
    label_index = {label: position for position, label in enumerate(label_names)}
    records = [
        SampleRecord(
            sample_id=entry.sample_id,
            label=label_index[entry.label] if entry.label is not None else None,
            subject_id=entry.subject_id,
            caption=entry.caption,
            split="test" if entry.split == "test" else "train",
        )
        for entry in entries
    ]
    notes = [
        f"{len(entries)} images ({target_hw[0]}×{target_hw[1]}, "
        f"{'grey' if target_c == 1 else 'RGB'}) in {len(label_names)} classes from {origin}."
    ]
    if resized:
        notes.append(f"{resized} images resized.")
    if skipped:
        notes.append(f"{skipped} non-image files skipped.")
    return DatasetImport(
        name=name,
        images=images,
        records=records,
        label_names=label_names,
        source=source,
        description=" ".join(notes),
    )


# ------------------------------------------------------------------------- public


def import_archive(
    path: Path,
    name: str,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_uncompressed_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> DatasetImport:
    """Import a ``.zip`` / ``.tar`` / ``.tar.gz`` of images (layouts in the module doc).

    ``image_size`` is (height, width), default the most common size; ``channels`` is 1
    or 3, default grey when every image is grey. Raises DatasetImportError for unsafe
    or malformed archives; nothing is written outside a temporary folder.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetImportError(f"archive {path} does not exist")
    with _extract(path, max_files, max_uncompressed_bytes) as (files, skipped):
        manifest = files.pop(MANIFEST_NAME, None)
        if manifest is not None:
            where = MANIFEST_NAME
            rows = _read_csv_rows(manifest.read_bytes(), where, max_files)
            entries = _manifest_entries(rows, where, files.get)
            skipped += len(files) - len({entry.path for entry in entries})
        else:
            entries = _folder_entries(files)
        return _build(
            name, entries, f"archive:{path.name}", path.name, image_size, channels, skipped
        )


def import_manifest(
    path: Path,
    base_dir: Path,
    name: str,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_UNCOMPRESSED_BYTES,
    image_size: tuple[int, int] | None = None,
    channels: int | None = None,
) -> DatasetImport:
    """Import images listed by a CSV or Parquet manifest, with paths relative to ``base_dir``.

    Same columns as an archive's manifest.csv. A path that leaves ``base_dir`` (``..``,
    absolute, or a symlink pointing outside) is refused. Parquet needs ``pyarrow``.
    """
    path, base = Path(path), Path(base_dir).resolve()
    if not path.is_file():
        raise DatasetImportError(f"manifest {path} does not exist")
    if not base.is_dir():
        raise DatasetImportError(f"image folder {base_dir} does not exist")
    if path.suffix.lower() == ".parquet":
        rows = _read_parquet_rows(path, max_files)
    elif path.suffix.lower() in (".csv", ".txt"):
        rows = _read_csv_rows(path.read_bytes(), path.name, max_files)
    else:
        raise DatasetImportError(f"{path.name}: manifests must be .csv or .parquet files")
    budget = _Budget(max_files, max_total_bytes)

    def locate(rel: str) -> Path | None:
        candidate = (base / rel).resolve()
        if candidate != base and base not in candidate.parents:
            raise DatasetImportError(f"{rel!r} resolves outside {base_dir} (through a link?)")
        if not candidate.is_file():  # also refuses fifos and devices
            return None
        budget.add(rel, candidate.stat().st_size)
        return candidate

    entries = _manifest_entries(rows, path.name, locate)
    return _build(name, entries, f"manifest:{path.name}", path.name, image_size, channels, 0)
