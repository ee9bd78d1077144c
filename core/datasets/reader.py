"""Read sample images back from their shards, fetching each shard once."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from core.datasets.shards import decode_shard
from core.storage import ObjectStore


class ShardReader:
    """A small LRU of decoded shards; shards are immutable, so caching is always safe."""

    def __init__(self, store: ObjectStore, max_shards: int = 8) -> None:
        self.store = store
        self.max_shards = max_shards
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def shard(self, key: str) -> np.ndarray:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        images = decode_shard(self.store.get_bytes(key))
        with self._lock:
            self._cache[key] = images
            while len(self._cache) > self.max_shards:
                self._cache.popitem(last=False)
        return images

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
