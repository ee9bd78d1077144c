"""Text uploads: JSONL, CSV or Parquet records → ``TextDatasetImport``.

Each record has ``text``, or ``question`` + ``answer`` (+ optional ``paraphrased_answer``
and ``perturbed_answers``), and optionally ``sample_id``, ``subject_id``, ``split``
(train | test, default train) and ``kind`` (a label such as ``qa`` or ``biography``).
A record without ``sample_id`` gets ``<file stem>-<record number>``, as an image without
one in a manifest gets its path: stable for the same file.

``perturbed_answers`` is a JSON list in JSONL, a list column in Parquet and a cell
holding a JSON list of strings in CSV.

Every refusal names the line (JSONL), row (CSV, header = row 1; Parquet, first record =
row 1) and field, so the uploader can fix the file: not UTF-8, a NUL, a row over the
length limit, an unknown split or column, a record with neither text nor question and
answer, and, when ``require_subjects`` (the API's default for text), a record that does
not say whose it is.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.archives import DEFAULT_MAX_FILES
from core.datasets.errors import DatasetImportError
from core.datasets.text import MAX_TEXT_CHARS, TextDatasetImport, TextSampleRecord

__all__ = ["TEXT_COLUMNS", "TEXT_SUFFIXES", "import_text_file", "is_text_upload"]

TEXT_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "subject_id",
    "split",
    "text",
    "question",
    "answer",
    "paraphrased_answer",
    "perturbed_answers",
    "kind",
)
TEXT_SUFFIXES: tuple[str, ...] = (".jsonl", ".ndjson", ".csv", ".parquet")
# A JSONL line holds at most a record's fields at their limit (plus JSON escaping).
MAX_LINE_BYTES = len(TEXT_COLUMNS) * MAX_TEXT_CHARS * 6 + 1024


def is_text_upload(filename: str) -> bool:
    return filename.lower().endswith(TEXT_SUFFIXES)


def _stem(path: Path) -> str:
    stem = path.name.split(".", 1)[0]
    clean = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.") or "record"
    return clean[:100]


# ------------------------------------------------------------------------ readers


def _jsonl_rows(data: bytes, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``line N``, object) for every non-blank line."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), start=1):
        at = f"{where} line {number}"
        if len(raw) > MAX_LINE_BYTES:
            raise DatasetImportError(f"{at}: the line is longer than {MAX_LINE_BYTES} bytes")
        if b"\x00" in raw:
            raise DatasetImportError(f"{at}: contains a NUL byte")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DatasetImportError(f"{at}: not UTF-8 text ({exc.reason})") from None
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise DatasetImportError(f"{at}: not valid JSON ({exc})") from None
        if not isinstance(value, dict):
            raise DatasetImportError(f"{at}: each line must be a JSON object")
        yield at, value


def _csv_rows(data: bytes, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise DatasetImportError(f"{where} line {line}: contains a NUL byte")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetImportError(f"{where} line {line}: not UTF-8 text ({exc.reason})") from None
    # The csv module's own field limit (128 KiB) is above ours, so long cells reach
    # check_text and are refused with the field's name.
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise DatasetImportError(f"{where} is empty; it needs a header row")
    _check_columns([str(name).strip() for name in reader.fieldnames], where)
    try:
        for number, row in enumerate(reader, start=2):
            if None in row:
                raise DatasetImportError(f"{where} row {number}: more cells than the header")
            cells: dict[str, Any] = {}
            for key, value in row.items():
                cell = value.strip() if isinstance(value, str) else value
                cells[str(key).strip()] = cell or None
            if cells.get("perturbed_answers") is not None:
                cells["perturbed_answers"] = _json_list(
                    cells["perturbed_answers"], f"{where} row {number}"
                )
            yield f"{where} row {number}", cells
    except csv.Error as exc:
        raise DatasetImportError(f"{where} line {reader.line_num}: not valid CSV ({exc})") from None


def _json_list(cell: str, at: str) -> Any:
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        raise DatasetImportError(
            f"{at}: 'perturbed_answers' must be a JSON list of strings, "
            f'e.g. ["wrong one", "wrong two"]'
        ) from None


def _parquet_rows(path: Path, where: str, max_records: int) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise DatasetImportError(
            "Parquet files need the pyarrow package; install it or upload JSONL or CSV"
        ) from exc
    try:
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
        rows = parquet.metadata.num_rows
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for bad files
        raise DatasetImportError(f"{where} is not a readable Parquet file: {exc}") from exc
    _check_columns(names, where)
    if rows > max_records:
        raise DatasetImportError(f"{where} holds {rows} records, more than {max_records}")
    try:
        table = parquet.read().to_pylist()
    except Exception as exc:
        raise DatasetImportError(f"{where} is not a readable Parquet file: {exc}") from exc
    for number, row in enumerate(table, start=1):
        yield f"{where} row {number}", row


def _check_columns(names: list[str], where: str) -> None:
    unknown = sorted(set(names) - set(TEXT_COLUMNS))
    if unknown:
        raise DatasetImportError(
            f"{where} has unknown columns {', '.join(unknown)}; "
            f"expected some of {', '.join(TEXT_COLUMNS)}"
        )
    if "text" not in names and not {"question", "answer"} <= set(names):
        raise DatasetImportError(
            f"{where} needs a 'text' column, or 'question' and 'answer' columns"
        )


# ------------------------------------------------------------------------ records


def _string(value: Any, name: str, at: str, *, ids: bool = False) -> str | None:
    if value is None:
        return None
    if ids and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        if ids:
            value = value.strip()
            return value or None
        return value
    raise DatasetImportError(f"{at}: '{name}' must be a string, got {type(value).__name__}")


def _record(row: dict[str, Any], at: str, default_id: str) -> TextSampleRecord:
    unknown = sorted(str(key) for key in row if key not in TEXT_COLUMNS)
    if unknown:
        raise DatasetImportError(
            f"{at}: unknown field(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(TEXT_COLUMNS)}"
        )
    perturbed = row.get("perturbed_answers")
    if perturbed is not None:
        if not isinstance(perturbed, list):
            raise DatasetImportError(f"{at}: 'perturbed_answers' must be a list of strings")
        perturbed = tuple(perturbed)
    record = TextSampleRecord(
        sample_id=_string(row.get("sample_id"), "sample_id", at, ids=True) or default_id,
        subject_id=_string(row.get("subject_id"), "subject_id", at, ids=True),
        split=_string(row.get("split"), "split", at, ids=True) or "train",  # type: ignore[arg-type]
        text=_string(row.get("text"), "text", at),
        question=_string(row.get("question"), "question", at),
        answer=_string(row.get("answer"), "answer", at),
        paraphrased_answer=_string(row.get("paraphrased_answer"), "paraphrased_answer", at),
        perturbed_answers=perturbed,
        kind=_string(row.get("kind"), "kind", at, ids=True),
    )
    try:
        record.validate()
    except DatasetImportError as exc:
        raise DatasetImportError(f"{at}: {exc}") from None
    return record


def import_text_file(
    path: Path,
    name: str,
    *,
    require_subjects: bool = True,
    max_records: int = DEFAULT_MAX_FILES,
    filename: str | None = None,
) -> TextDatasetImport:
    """Read a ``.jsonl`` / ``.ndjson`` / ``.csv`` / ``.parquet`` file of text records.

    ``filename`` is the name the uploader gave (for messages and default ids); it
    defaults to the file's own name. Raises DatasetImportError naming line and field.
    """
    path = Path(path)
    shown = Path(filename or path.name).name
    if not path.is_file():
        raise DatasetImportError(f"{shown} does not exist")
    lowered = shown.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        rows: Iterator[tuple[str, dict[str, Any]]] = _jsonl_rows(path.read_bytes(), shown)
    elif lowered.endswith(".csv"):
        rows = _csv_rows(path.read_bytes(), shown)
    elif lowered.endswith(".parquet"):
        rows = _parquet_rows(path, shown, max_records)
    else:
        raise DatasetImportError(f"{shown}: text datasets are .jsonl, .csv or .parquet files")
    stem = _stem(Path(shown))
    records: list[TextSampleRecord] = []
    seen: dict[str, str] = {}
    for at, row in rows:
        record = _record(row, at, f"{stem}-{len(records) + 1:06d}")
        if require_subjects and record.subject_id is None:
            raise DatasetImportError(
                f"{at}: 'subject_id' is missing; every record must say whose it is so a "
                "deletion request can find it (upload with require_subjects=false for "
                "records about nobody)"
            )
        if record.sample_id in seen:
            raise DatasetImportError(
                f"{at}: sample_id {record.sample_id!r} already used at {seen[record.sample_id]}"
            )
        seen[record.sample_id] = at
        records.append(record)
        if len(records) > max_records:
            raise DatasetImportError(f"{shown} holds more than {max_records} records")
    if not records:
        raise DatasetImportError(f"{shown} holds no records")
    qa = sum(1 for r in records if r.question is not None)
    subjects = len({r.subject_id for r in records if r.subject_id is not None})
    description = (
        f"{len(records)} text records ({qa} question/answer, {len(records) - qa} plain text) "
        f"about {subjects} subjects, from {shown}."
    )
    return TextDatasetImport(
        name=name, records=records, source=f"upload:{shown}", description=description
    )
