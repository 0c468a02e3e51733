"""The run lifecycle: IDLE -> RUNNING -> COMPLETED | FAILED | CANCELLED -> IDLE.

The ends use the same words as a queued job's status (``JobStatus.COMPLETED``, ``FAILED``,
``CANCELLED``): a run's lifecycle ending and its job's record always agree.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum

from .listeners import Listeners, Unsubscribe


class LifecycleState(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL_STATES = frozenset({LifecycleState.COMPLETED, LifecycleState.FAILED, LifecycleState.CANCELLED})

ALLOWED_TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    LifecycleState.IDLE: frozenset({LifecycleState.RUNNING}),
    LifecycleState.RUNNING: TERMINAL_STATES,
    LifecycleState.COMPLETED: frozenset({LifecycleState.IDLE}),
    LifecycleState.FAILED: frozenset({LifecycleState.IDLE}),
    LifecycleState.CANCELLED: frozenset({LifecycleState.IDLE}),
}

LifecycleObserver = Callable[[LifecycleState, LifecycleState], None]


class IllegalTransition(RuntimeError):
    """A lifecycle change the state machine does not allow (a programming error, not a user error)."""


class Lifecycle:
    """A small thread-safe state machine. Observers get ``(old, new)`` after every change."""

    def __init__(self) -> None:
        self._state = LifecycleState.IDLE
        self._lock = threading.Lock()
        self._observers: Listeners[tuple[LifecycleState, LifecycleState]] = Listeners("lifecycle")

    @property
    def state(self) -> LifecycleState:
        return self._state

    def subscribe(self, observer: LifecycleObserver) -> Unsubscribe:
        """Register ``observer``; returns a function that unregisters it."""
        return self._observers.subscribe(lambda change: observer(*change))

    def transition(self, new: LifecycleState) -> None:
        with self._lock:
            old = self._state
            if new not in ALLOWED_TRANSITIONS[old]:
                raise IllegalTransition(f"cannot go from {old} to {new}")
            self._state = new
        self._observers.emit((old, new))
