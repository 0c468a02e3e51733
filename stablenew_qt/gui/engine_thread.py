"""EngineThread: one long-lived QThread that owns the AppController and the executor.

All engine work (and so every torch import) happens on that thread. The GUI talks to it through
queued signals (:meth:`EngineThread.submit`, :meth:`EngineThread.set_executor`, ...) and hears back
through the :class:`~stablenew_qt.gui.bridge.EventBridge`; it never waits on the engine, except in
:meth:`EngineThread.shutdown`, which first cancels the run so the wait is at most one step long.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.config import RunConfig
from ..core.controller import AppController, RunInProgress
from ..core.errors import ConfigError
from ..core.executor import Executor
from ..core.lifecycle import LifecycleState
from ..core.outputs import OutputSettings
from ..core.runner import PipelineRunner
from .bridge import EventBridge

log = logging.getLogger(__name__)

#: How long closing the window waits for a cancelled run to stop before giving up (ms).
SHUTDOWN_WAIT_MS = 30_000


class EngineWorker(QObject):
    """Lives on the engine thread; its slots run there. Never touches a widget."""

    #: A submitted config was refused before it started (message for the user).
    submitRejected = Signal(str)
    #: The executor's one-line device and memory readout ("" while the engine is not loaded).
    deviceDescribed = Signal(str)

    def __init__(
        self,
        controller: AppController,
        describe_device: Callable[[Executor], str] | None = None,
        warm_up: Callable[[Executor], None] | None = None,
    ) -> None:
        super().__init__()
        self.controller = controller
        self.closing = threading.Event()
        self._describe_device = describe_device
        self._warm_up = warm_up

    @Slot()
    def _on_warm_up_requested(self) -> None:
        if self._warm_up is None or self.closing.is_set():
            return
        try:
            self._warm_up(self.controller.runner.executor)
        except Exception:
            # Not fatal: the first run prepares the engine itself and reports any real problem.
            log.exception("engine warm-up failed")
            return
        self.describe_device()

    def describe_device(self) -> None:
        """Emit :attr:`deviceDescribed` for the current executor (on the engine thread only)."""
        if self._describe_device is None:
            return
        try:
            text = self._describe_device(self.controller.runner.executor)
        except Exception:
            log.exception("could not describe the device")
            return
        self.deviceDescribed.emit(text)

    @Slot(object)
    def _on_submit_requested(self, config: RunConfig) -> None:
        if self.closing.is_set():
            return
        try:
            self.controller.run_pipeline(config)
        except ConfigError as exc:
            if self.controller.state is not LifecycleState.ERROR:  # else RunFailed was emitted
                self.submitRejected.emit(str(exc))
        except RunInProgress as exc:
            self.submitRejected.emit(str(exc))
        except Exception:
            log.exception("the run failed outside the runner")
        finally:
            self.describe_device()  # the first run builds the engine; every run changes memory use

    @Slot()
    def _on_recover_requested(self) -> None:
        self.controller.recover()

    @Slot(object)
    def _on_executor_replaced(self, executor: Executor) -> None:
        self.controller.runner.executor = executor
        self.describe_device()

    @Slot(object)
    def _on_output_changed(self, output: OutputSettings) -> None:
        self.controller.runner.output = output


class EngineThread(QObject):
    """Owns the QThread, the worker and the controller; the GUI's only handle on the engine."""

    _submitRequested = Signal(object)
    _executorReplaced = Signal(object)
    _recoverRequested = Signal()
    _outputChanged = Signal(object)
    _warmUpRequested = Signal()

    def __init__(
        self,
        executor: Executor,
        output_dir: Path,
        bridge: EventBridge,
        parent: QObject | None = None,
        describe_device: Callable[[Executor], str] | None = None,
        warm_up: Callable[[Executor], None] | None = None,
        save_intermediates: bool = False,
    ) -> None:
        super().__init__(parent)
        output = OutputSettings(output_dir, save_intermediates)
        self.controller = AppController(PipelineRunner(executor, output))
        self.controller.subscribe(bridge.post)
        self.worker = EngineWorker(self.controller, describe_device, warm_up)
        self.qthread = QThread(self)
        self.qthread.setObjectName("engine")
        self.worker.moveToThread(self.qthread)
        self.qthread.finished.connect(self.worker.deleteLater)
        self._submitRequested.connect(self.worker._on_submit_requested)
        self._executorReplaced.connect(self.worker._on_executor_replaced)
        self._recoverRequested.connect(self.worker._on_recover_requested)
        self._outputChanged.connect(self.worker._on_output_changed)
        self._warmUpRequested.connect(self.worker._on_warm_up_requested)
        self.qthread.start()

    def warm_up(self) -> None:
        """Prepare the engine on its thread (queued behind nothing; a later submit waits for it)."""
        self._warmUpRequested.emit()

    @property
    def state(self) -> LifecycleState:
        return self.controller.state

    def submit(self, config: RunConfig) -> None:
        """Queue a run on the engine thread; progress arrives through the bridge."""
        self._submitRequested.emit(config)

    def cancel(self) -> bool:
        """Ask the running run to stop at its next step (``AppController.cancel`` is thread-safe,
        and the worker is busy inside the run, so this cannot be a queued call)."""
        return self.controller.cancel()

    def recover(self) -> None:
        """Return a finished run's state (COMPLETED, ERROR, CANCELLED) to IDLE, on the engine thread."""
        self._recoverRequested.emit()

    def set_executor(self, executor: Executor) -> None:
        """Use ``executor`` from the next run on (after a models folder or memory mode change)."""
        self._executorReplaced.emit(executor)

    def set_output(self, folder: Path, save_intermediates: bool = False) -> None:
        """Write the next runs to ``folder`` (keeping each stage's images with ``save_intermediates``)."""
        self._outputChanged.emit(OutputSettings(folder, save_intermediates))

    def shutdown(self) -> None:
        """Cancel any run, stop the thread and wait for it. Safe to call twice."""
        if not self.qthread.isRunning():
            return
        self.worker.closing.set()
        self.controller.cancel()
        self.qthread.quit()
        deadline = time.monotonic() + SHUTDOWN_WAIT_MS / 1000
        # Cancel again on every turn: a run that was just starting may not have had a token yet.
        while not self.qthread.wait(20):
            self.controller.cancel()
            if time.monotonic() > deadline:
                log.error("the engine thread did not stop within %d s", SHUTDOWN_WAIT_MS // 1000)
                return
