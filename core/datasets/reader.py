"""Read samples back from their shards (images or text), fetching each shard once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from core.datasets.errors import ShardError
from core.datasets.shards import decode_shard
from core.datasets.text_shards import Content, decode_text_shard, is_text_shard
from core.storage import ObjectStore

T = TypeVar("T")


class ShardReader:
    """A small LRU of decoded shards; shards are immutable, so caching is always safe."""

    def __init__(self, store: ObjectStore, max_shards: int = 8) -> None:
        self.store = store
        self.max_shards = max_shards
        self._cache: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def _cached(self, key: str, decode: Callable[[bytes], T]) -> T:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]  # type: ignore[no-any-return]
        value = decode(self.store.get_bytes(key))
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.max_shards:
                self._cache.popitem(last=False)
        return value

    def shard(self, key: str) -> np.ndarray:
        if is_text_shard(key):
            raise ShardError(f"{key} is a text shard; read it with text_shard()")
        return self._cached(key, decode_shard)

    def text_shard(self, key: str) -> list[Content | None]:
        """The record contents of a text shard (None where a record was purged)."""
        if not is_text_shard(key):
            raise ShardError(f"{key} is not a text shard")
        return self._cached(key, decode_text_shard)

    def text(self, key: str, index: int) -> Content:
        """One text record's content; ShardError if the slot is out of range or purged."""
        records = self.text_shard(key)
        if not 0 <= index < len(records):
            raise ShardError(f"{key} has no record {index}")
        content = records[index]
        if content is None:
            raise ShardError(f"record {index} of {key} was purged")
        return dict(content)

    def gather_text(self, refs: Sequence[tuple[str, int]]) -> list[Content]:
        """Text contents for (shard_key, index) pairs, in the given order."""
        return [self.text(key, index) for key, index in refs]

    def image(self, key: str, index: int) -> np.ndarray:
        return self.shard(key)[index]

    def gather(self, refs: Sequence[tuple[str, int]]) -> np.ndarray:
        """Images for (shard_key, index) pairs, in the given order; each shard read once."""
        if not refs:
            raise ValueError("no samples to read")
        by_shard: dict[str, list[tuple[int, int]]] = {}
        for position, (key, index) in enumerate(refs):
            by_shard.setdefault(key, []).append((position, index))
        out: np.ndarray | None = None
        for key, wanted in by_shard.items():
            images = decode_shard(self.store.get_bytes(key))
            if out is None:
                out = np.empty((len(refs), *images.shape[1:]), dtype=np.uint8)
            positions = np.fromiter((p for p, _ in wanted), dtype=np.int64)
            indices = np.fromiter((i for _, i in wanted), dtype=np.int64)
            out[positions] = images[indices]
        assert out is not None
        return out
