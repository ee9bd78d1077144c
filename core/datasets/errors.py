"""Errors of dataset ingestion, kept in one module so callers can import them cheaply."""

from __future__ import annotations

__all__ = ["DatasetImportError", "ShardError"]


class DatasetImportError(Exception):
    """A dataset could not be imported; the message says what to fix.

    Raised for unknown or unavailable built-in sources and for uploads that are
    malformed or unsafe (path traversal, links, archive bombs, undecodable images).
    The API maps it to a 4xx response, so the text is written for the person uploading.
    """


class ShardError(Exception):
    """A stored shard could not be decoded (truncated, corrupt or not a shard at all)."""
