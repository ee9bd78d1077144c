"""The text shard format: how text samples live in object storage.

Like image shards, text shards are immutable and hold up to ``SHARD_SIZE`` records in
dataset order; a sample row points at (shard_key, shard_index). A shard is gzip-
compressed JSON, ``{"format": ..., "records": [content | null, ...]}``: data, never code,
read with ``json`` only. Purging a person writes the shard anew with their records
replaced by ``null`` (``blank_text_shard``), so the other rows' indices stay valid and the
person's words are gone from the new object.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Sequence
from typing import Any

from core.datasets.errors import ShardError
from core.datasets.shards import SHARD_SIZE
from core.datasets.text import CONTENT_FIELDS

__all__ = [
    "TEXT_SHARD_FORMAT",
    "TEXT_SHARD_SUFFIX",
    "blank_text_shard",
    "decode_text_shard",
    "encode_text_shard",
    "is_text_shard",
    "text_shard_slices",
]

TEXT_SHARD_FORMAT = "expunge.text-shard/1"
TEXT_SHARD_SUFFIX = ".json.gz"
# Text shards are cut by size as well as by count (``text_shard_slices``), so a shard
# stays small enough to rewrite on a purge; one record at its limits is far below this.
MAX_SHARD_JSON_BYTES = 32 << 20
# Anything that inflates beyond this is not one of our shards (a tampered object).
MAX_DECODED_BYTES = 2 * MAX_SHARD_JSON_BYTES + (1 << 20)

Content = dict[str, Any]


def is_text_shard(key: str) -> bool:
    """Whether an object key names a text shard (image shards end in ``.npz``)."""
    return key.endswith(TEXT_SHARD_SUFFIX)


def _json_size(content: Content | None) -> int:
    return len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def text_shard_slices(
    contents: Sequence[Content | None],
    shard_size: int = SHARD_SIZE,
    max_bytes: int = MAX_SHARD_JSON_BYTES,
) -> list[slice]:
    """Consecutive slices of at most ``shard_size`` records and about ``max_bytes`` of JSON
    each (a record is never split; a shard holds at least one)."""
    slices: list[slice] = []
    start, size = 0, 0
    for index, content in enumerate(contents):
        record_bytes = _json_size(content) + 1
        if index > start and (index - start >= shard_size or size + record_bytes > max_bytes):
            slices.append(slice(start, index))
            start, size = index, 0
        size += record_bytes
    if start < len(contents):
        slices.append(slice(start, len(contents)))
    return slices


def encode_text_shard(records: Sequence[Content | None]) -> bytes:
    """Serialise record contents (dicts of ``CONTENT_FIELDS``, or None for a purged slot).

    gzip's header time is fixed at 0 so the same records give the same bytes (and key).
    """
    for number, content in enumerate(records):
        _check_content(content, number)
    document = {"format": TEXT_SHARD_FORMAT, "records": list(records)}
    raw = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=6, mtime=0)


def _inflate(data: bytes) -> bytes:
    """gunzip with a hard output limit, so a tampered object cannot exhaust memory."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_DECODED_BYTES)
    except zlib.error as exc:
        raise ShardError(f"corrupt text shard: {exc}") from exc
    if inflater.unconsumed_tail:
        raise ShardError(f"text shard inflates beyond {MAX_DECODED_BYTES} bytes")
    if not inflater.eof:
        raise ShardError("corrupt text shard: truncated")
    return out


def decode_text_shard(data: bytes) -> list[Content | None]:
    """Inverse of ``encode_text_shard``; anything else raises ShardError."""
    try:
        document = json.loads(_inflate(data).decode("utf-8"))
    except ShardError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ShardError(f"corrupt text shard: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != TEXT_SHARD_FORMAT:
        raise ShardError(f"not a text shard (format {TEXT_SHARD_FORMAT!r} expected)")
    records = document.get("records")
    if not isinstance(records, list):
        raise ShardError("text shard has no 'records' list")
    for number, content in enumerate(records):
        try:
            _check_content(content, number)
        except ValueError as exc:
            raise ShardError(str(exc)) from exc
    return records


def _check_content(content: Any, number: int) -> None:
    if content is None:
        return
    if not isinstance(content, dict) or set(content) != set(CONTENT_FIELDS):
        raise ValueError(f"text shard record {number} must hold exactly {CONTENT_FIELDS}")
    for name, value in content.items():
        if name == "perturbed_answers":
            ok = value is None or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
        else:
            ok = value is None or isinstance(value, str)
        if not ok:
            raise ValueError(f"text shard record {number}: {name!r} has the wrong type")


def blank_text_shard(data: bytes, indices: Sequence[int]) -> bytes:
    """The shard re-encoded with the records at ``indices`` replaced by None (purged)."""
    records = decode_text_shard(data)
    for index in indices:
        if not 0 <= index < len(records):
            raise ShardError(f"index {index} is outside the shard's {len(records)} records")
        records[index] = None
    return encode_text_shard(records)
