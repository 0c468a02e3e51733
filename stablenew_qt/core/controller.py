"""AppController: owns the lifecycle and the current run of one engine.

``run_pipeline`` is synchronous: the engine session calls it on the thread that runs jobs (the
GUI's engine thread, the CLI's main thread). ``cancel`` may be called from any thread. Listeners
receive every RunEvent and a LifecycleChanged for every state change, on the thread that caused it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .config import RunConfig
from .errors import ConfigError
from .events import EventSink, LifecycleChanged, RunEvent, RunFailed
from .executor import CancelToken, Executor
from .hooks import LearningHook
from .lifecycle import TERMINAL_STATES, Lifecycle, LifecycleState
from .listeners import Listeners, Unsubscribe
from .outputs import OutputSettings
from .runner import PipelineRunner, RunResult
from .sequencer import StageExecutionPlan


class RunInProgress(RuntimeError):
    """``run_pipeline`` was called while another run is RUNNING."""


class AppController:
    def __init__(self, runner: PipelineRunner) -> None:
        self.runner = runner
        self.lifecycle = Lifecycle()
        self._listeners: Listeners[RunEvent] = Listeners("controller")
        self._token: CancelToken | None = None
        self._start_lock = threading.Lock()
        self.lifecycle.subscribe(lambda old, new: self._emit(LifecycleChanged(old, new)))

    @property
    def state(self) -> LifecycleState:
        return self.lifecycle.state

    @property
    def output(self) -> OutputSettings:
        """Where the next run writes."""
        return self.runner.output

    @property
    def executor(self) -> Executor:
        """What runs the stages."""
        return self.runner.executor

    def reconfigure(
        self,
        *,
        executor: Executor | None = None,
        output: OutputSettings | None = None,
        hooks: Sequence[LearningHook] | None = None,
    ) -> None:
        """Use ``executor``, ``output`` or ``hooks`` from the next run on (None keeps the current
        one). Raises RunInProgress during a run: call it between runs, on the thread that runs them."""
        with self._start_lock:
            if self.state is LifecycleState.RUNNING:
                raise RunInProgress("the engine cannot change during a run; wait for it to finish")
            if executor is not None:
                self.runner.executor = executor
            if output is not None:
                self.runner.output = output
            if hooks is not None:
                self.runner.hooks = list(hooks)

    def subscribe(self, listener: EventSink) -> Unsubscribe:
        """Register ``listener`` for every event; returns a function that unregisters it."""
        return self._listeners.subscribe(listener)

    def validate(self, config: RunConfig) -> StageExecutionPlan:
        """The plan ``config`` would run, or ConfigError. Never changes the lifecycle."""
        return self.runner.sequencer.build_execution_plan(config)

    def run_pipeline(self, config: RunConfig) -> RunResult:
        """Validate and run ``config``; blocks until the run ends.

        A ConfigError is raised before anything starts (the lifecycle stays IDLE, nothing is
        written). A run that starts ends in COMPLETED, FAILED or CANCELLED, reported in the result
        and the events; the next call returns the lifecycle to IDLE first. The plan is built once
        here (the inputs are checked again now: an image may have gone since it was queued).
        """
        with self._start_lock:
            if self.state is LifecycleState.RUNNING:
                raise RunInProgress("a run is already in progress; cancel it or wait for it to finish")
            self.return_to_idle()
            plan = self.validate(config)
            token = self._token = CancelToken()
            self.lifecycle.transition(LifecycleState.RUNNING)
        try:
            result = self.runner.run(config, token, emit=self._emit, plan=plan)
        except ConfigError as exc:
            # The input changed between validation and start (e.g. the image was deleted).
            self._emit(RunFailed("", None, str(exc), exc.cause))
            self.lifecycle.transition(LifecycleState.FAILED)
            raise
        except BaseException:
            self.lifecycle.transition(LifecycleState.FAILED)
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

    def return_to_idle(self) -> None:
        """Go back to IDLE from COMPLETED, FAILED or CANCELLED (the seed's cleanup step); the
        window calls it a moment after a run ends, so the end state shows first."""
        if self.state in TERMINAL_STATES:
            self.lifecycle.transition(LifecycleState.IDLE)

    def _emit(self, event: RunEvent) -> None:
        self._listeners.emit(event)
