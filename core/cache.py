"""LRU cache of frozen-encoder outputs keyed by file content + preset, so later turns never re-encode."""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable, Hashable

from core.encoders.base import EncodedMedia


class EncoderCache:
    """Bounded by total tensor bytes; the least recently used entries go first."""

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, EncodedMedia] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], EncodedMedia]) -> tuple[EncodedMedia, bool]:
        """The cached value (and True), or compute, store and return it (and False)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key], True
        value = compute()
        with self._lock:
            if key not in self._entries:
                self._entries[key] = value
                self._bytes += value.nbytes
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes
        return value, False
