"""AppController: what the GUI and the CLI call. Owns the lifecycle and the current run.

``run_pipeline`` is synchronous: the GUI calls it on its engine thread, the CLI on the main
thread. ``cancel`` may be called from any thread. Listeners receive every RunEvent and a
LifecycleChanged for every state change, on the thread that caused it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .config import RunConfig
from .errors import ConfigError
from .events import EventSink, LifecycleChanged, RunEvent, RunFailed
from .executor import CancelToken
from .lifecycle import TERMINAL_STATES, Lifecycle, LifecycleState
from .runner import PipelineRunner, RunResult
from .sequencer import StageExecutionPlan

log = logging.getLogger(__name__)


class RunInProgress(RuntimeError):
    """``run_pipeline`` was called while another run is RUNNING."""


class AppController:
    def __init__(self, runner: PipelineRunner) -> None:
        self.runner = runner
        self.lifecycle = Lifecycle()
        self._listeners: list[EventSink] = []
        self._token: CancelToken | None = None
        self._start_lock = threading.Lock()
        self.lifecycle.subscribe(lambda old, new: self._emit(LifecycleChanged(old, new)))

    @property
    def state(self) -> LifecycleState:
        return self.lifecycle.state

    def subscribe(self, listener: EventSink) -> Callable[[], None]:
        """Register ``listener`` for every event; returns a function that unregisters it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def validate(self, config: RunConfig) -> StageExecutionPlan:
        """The plan ``config`` would run, or ConfigError. Never changes the lifecycle."""
        return self.runner.sequencer.build_execution_plan(config)

    def run_pipeline(self, config: RunConfig) -> RunResult:
        """Validate and run ``config``; blocks until the run ends.

        A ConfigError is raised before anything starts (the lifecycle stays IDLE, nothing is
        written). A run that starts ends in COMPLETED, ERROR or CANCELLED, reported in the result
        and the events; the next call returns the lifecycle to IDLE first.
        """
        with self._start_lock:
            if self.state is LifecycleState.RUNNING:
                raise RunInProgress("a run is already in progress; cancel it or wait for it to finish")
            self.recover()
            self.validate(config)
            token = self._token = CancelToken()
            self.lifecycle.transition(LifecycleState.RUNNING)
        try:
            result = self.runner.run(config, token, emit=self._emit)
        except ConfigError as exc:
            # The input changed between validation and start (e.g. the image was deleted).
            self._emit(RunFailed("", None, str(exc)))
            self.lifecycle.transition(LifecycleState.ERROR)
            raise
        except BaseException:
            self.lifecycle.transition(LifecycleState.ERROR)
            raise
        finally:
            self._token = None
        self.lifecycle.transition(result.status)
        return result

    def cancel(self) -> bool:
        """Ask the current run to stop at its next step. True if a run was running."""
        token = self._token
        if token is None or self.state is not LifecycleState.RUNNING:
            return False
        token.cancel()
        return True

    def recover(self) -> None:
        """Return to IDLE from COMPLETED, ERROR or CANCELLED (the seed's cleanup/recover)."""
        if self.state in TERMINAL_STATES:
            self.lifecycle.transition(LifecycleState.IDLE)

    def _emit(self, event: RunEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener %r failed on %s", listener, type(event).__name__)
