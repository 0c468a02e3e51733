"""The run lifecycle: IDLE -> RUNNING -> COMPLETED | ERROR | CANCELLED -> IDLE."""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum


class LifecycleState(StrEnum):
    IDLE = "IDLE"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"


TERMINAL_STATES = frozenset({LifecycleState.COMPLETED, LifecycleState.ERROR, LifecycleState.CANCELLED})

ALLOWED_TRANSITIONS: dict[LifecycleState, frozenset[LifecycleState]] = {
    LifecycleState.IDLE: frozenset({LifecycleState.RUNNING}),
    LifecycleState.RUNNING: TERMINAL_STATES,
    LifecycleState.COMPLETED: frozenset({LifecycleState.IDLE}),
    LifecycleState.ERROR: frozenset({LifecycleState.IDLE}),
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
        self._observers: list[LifecycleObserver] = []

    @property
    def state(self) -> LifecycleState:
        return self._state

    def subscribe(self, observer: LifecycleObserver) -> Callable[[], None]:
        """Register ``observer``; returns a function that unregisters it."""
        self._observers.append(observer)
        return lambda: self._observers.remove(observer) if observer in self._observers else None

    def transition(self, new: LifecycleState) -> None:
        with self._lock:
            old = self._state
            if new not in ALLOWED_TRANSITIONS[old]:
                raise IllegalTransition(f"cannot go from {old} to {new}")
            self._state = new
        for observer in list(self._observers):
            observer(old, new)
