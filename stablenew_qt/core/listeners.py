"""Listeners: the one subscriber list every core object that announces something uses.

A listener is called on the thread that caused the event; one that raises is logged and never
stops the others or the code that announced the event (a broken listener must not lose a run).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Calling it removes the listener again (twice is harmless).
Unsubscribe = Callable[[], None]


class Listeners(Generic[T]):
    """Subscribers for events of type ``T``. Safe to subscribe, unsubscribe and emit from any thread."""

    def __init__(self, owner: str) -> None:
        self._owner = owner  # named in the log when a listener fails
        self._listeners: list[Callable[[T], None]] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Callable[[T], None]) -> Unsubscribe:
        """Call ``listener`` with every event from now on; returns a function that stops it."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def emit(self, event: T) -> None:
        """Call every listener with ``event``, in subscription order."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("%s listener %r failed on %s", self._owner, listener, type(event).__name__)

    def __len__(self) -> int:
        return len(self._listeners)
