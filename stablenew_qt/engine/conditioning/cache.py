"""Encoded texts kept per resident text-encoder set, so an unchanged prompt encodes nothing.

Owned by the engine context (not a module global) and bounded. A key holds the encoder set's key
(the caller's: model identity plus anything that changes its weights, such as applied LoRAs), the
options that change the encoding (clip skip, emphasis, comma back-track, SDXL CLIP-L skip), whether
it is a negative prompt (SDXL zeroes an empty one) and the texts of one schedule, in order (their
joint mean is what Original emphasis restores, so texts are cached per schedule batch). A prompt
without editing caches under its one text, whatever the step count.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

from stablenew_qt.engine.conds import TextCond


class ConditioningCache:
    """A bounded LRU map from an encoding key to the encoded texts of one schedule batch."""

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[TextCond, ...]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable) -> tuple[TextCond, ...] | None:
        """The cached result for ``key``, or None (counted as a hit or a miss)."""
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: Hashable, value: tuple[TextCond, ...]) -> None:
        """Store ``value``, evicting the least recently used entries beyond ``max_entries``."""
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self, encoder_key: Hashable | None = None) -> None:
        """Forget everything, or only what encoder set ``encoder_key`` produced (its weights changed)."""
        with self._lock:
            if encoder_key is None:
                self._entries.clear()
                return
            for key in [k for k in self._entries if isinstance(k, tuple) and k and k[0] == encoder_key]:
                del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)
