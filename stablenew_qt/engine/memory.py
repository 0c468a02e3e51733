"""One memory budget for everything the engine keeps loaded between jobs.

Pipelines (:class:`~.pipelines.PipelineCache`), pixel upscalers (:class:`~.upscalers.UpscalerCache`)
and ADetailer detectors (:class:`~.adetailer.detector.DetectorCache`) are pools of one
:class:`MemoryBudget`, which lives on the engine context (no module globals). Before a pool loads
something it asks the budget to make room; the budget evicts the least recently used entry of
*any* pool until the new one fits, then frees device memory once.
"""

from __future__ import annotations

import gc
import itertools
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

if TYPE_CHECKING:
    from .device import DeviceChoice

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ResidentPool(Protocol):
    """Something holding loaded models that the budget may shrink."""

    def resident_bytes(self) -> int:
        """Bytes its entries hold now."""
        ...

    def oldest_use(self) -> int | None:
        """The budget stamp of its least recently used entry (None when empty)."""
        ...

    def evict_oldest(self) -> None:
        """Drop its least recently used entry (and whatever depends on it)."""
        ...


def _nothing() -> None:
    """No device memory to give back (a budget without a device, in tests)."""


class MemoryBudget:
    """``total_bytes`` shared by every registered pool. Thread-safe; ``free_memory`` is called once
    after evictions (a garbage collection and, on CUDA, emptying torch's cache)."""

    def __init__(self, total_bytes: int, free_memory: Callable[[], None] = _nothing) -> None:
        self.total_bytes = total_bytes
        self._free_memory = free_memory
        self._pools: list[ResidentPool] = []
        self._clock = itertools.count(1)
        self._lock = threading.RLock()

    @classmethod
    def unlimited(cls) -> MemoryBudget:
        """A budget that never evicts (a cache used on its own)."""
        return cls(sys.maxsize)

    def register(self, pool: ResidentPool) -> None:
        with self._lock:
            self._pools.append(pool)

    def stamp(self) -> int:
        """A number larger than every earlier one: when an entry was last used."""
        with self._lock:
            return next(self._clock)

    def used_bytes(self) -> int:
        with self._lock:
            return sum(pool.resident_bytes() for pool in self._pools)

    def make_room(self, incoming: int) -> int:
        """Evict least recently used entries, across pools, until ``incoming`` more bytes fit (or
        nothing is left). Returns how many entries went."""
        evicted = 0
        with self._lock:
            while self.used_bytes() + incoming > self.total_bytes:
                pool = self._oldest_pool()
                if pool is None:
                    break
                pool.evict_oldest()
                evicted += 1
        if evicted:  # a full collection costs ~0.2 s: only when something was let go
            self._free_memory()
        return evicted

    def _oldest_pool(self) -> ResidentPool | None:
        used = [(stamp, i) for i, pool in enumerate(self._pools) if (stamp := pool.oldest_use()) is not None]
        return self._pools[min(used)[1]] if used else None


@dataclass
class _Entry(Generic[V]):
    value: V
    size: int
    used: int


class ResidentLru(Generic[K, V]):
    """A least-recently-used pool of at most ``max_entries`` loaded things under ``budget``.

    Not a lock for loading: callers that load hold their own lock around :meth:`get`,
    :meth:`reserve` and :meth:`put` (the upscaler and detector caches do).
    """

    def __init__(self, budget: MemoryBudget | None, max_entries: int) -> None:
        self.budget = budget if budget is not None else MemoryBudget.unlimited()
        self.max_entries = max_entries
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._lock = threading.RLock()
        self.budget.register(self)

    def get(self, key: K) -> V | None:
        """The value for ``key`` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            entry.used = self.budget.stamp()
            self._entries.move_to_end(key)
            return entry.value

    def reserve(self, size: int) -> None:
        """Make room for ``size`` bytes about to be loaded (evicting across the budget's pools)."""
        self.budget.make_room(size)

    def put(self, key: K, value: V, size: int) -> None:
        """Keep ``value`` (holding ``size`` bytes); the oldest entries beyond ``max_entries`` go."""
        with self._lock:
            self._entries[key] = _Entry(value, size, self.budget.stamp())
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    # -- ResidentPool ----------------------------------------------------------------------
    def resident_bytes(self) -> int:
        with self._lock:
            return sum(entry.size for entry in self._entries.values())

    def oldest_use(self) -> int | None:
        with self._lock:
            return next(iter(self._entries.values())).used if self._entries else None

    def evict_oldest(self) -> None:
        with self._lock:
            if self._entries:
                self._entries.popitem(last=False)


def module_bytes(module: Any) -> int:
    """Bytes of the parameters of a torch module (0 for anything without ``parameters()``)."""
    parameters = getattr(module, "parameters", None)
    if not callable(parameters):
        return 0
    return sum(p.numel() * p.element_size() for p in parameters())


def default_budget_bytes(device: DeviceChoice) -> int:
    """85 % of the GPU's memory on CUDA; half the machine's RAM on the CPU."""
    if device.is_cuda:
        import torch

        return int(torch.cuda.get_device_properties(device.device).total_memory * 0.85)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 * 2**30
    return int(ram * 0.5)


def free_device_memory(device: DeviceChoice) -> None:
    """Give memory of evicted models back: a full collection and, on CUDA, torch's cached blocks."""
    gc.collect()
    if device.is_cuda:
        import torch

        torch.cuda.empty_cache()


def device_budget(device: DeviceChoice, total_bytes: int | None = None) -> MemoryBudget:
    """The budget of an engine on ``device`` (``total_bytes`` default: :func:`default_budget_bytes`)."""
    total = total_bytes if total_bytes is not None else default_budget_bytes(device)
    return MemoryBudget(total, lambda: free_device_memory(device))
