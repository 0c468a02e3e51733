"""SessionStatus: the status bar's labels and the messages of what the session reports.

Permanent labels show the config error (left), the device and memory readout and the run state
(right); messages say how a job or run ended, what the queue refused, and so on. Everything comes
from the bridge's signals, so this knows nothing of the engine or the window.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QStatusBar, QWidget

from ..core.events import (
    EngineReported,
    JobFinished,
    LifecycleChanged,
    RunCompleted,
    RunFailed,
    SessionRefused,
)
from ..core.lifecycle import LifecycleState
from ..core.queue import Job, JobStatus
from .bridge import EventBridge
from .elided_label import ElidedLabel


def _label(name: str, tooltip: str, text: str = "") -> QLabel:
    label = QLabel(text)
    label.setObjectName(name)
    if tooltip:
        label.setToolTip(tooltip)
    return label


class SessionStatus(QObject):
    """Fills ``bar`` from ``bridge``; ``extra`` labels (the queued-jobs count) sit before the device."""

    def __init__(self, bar: QStatusBar, bridge: EventBridge, extra: tuple[QWidget, ...] = ()) -> None:
        super().__init__(bar)
        self.bar = bar
        self.closed = False
        self.lifecycle_label = _label("status.lifecycle", "Run state", LifecycleState.IDLE.value)
        self.error_label = ElidedLabel()  # a long error never widens the window (issue 17)
        self.error_label.setObjectName("status.config_error")
        self.error_label.setProperty("role", "error")
        self.device_label = _label(
            "status.device", "Device, precision and GPU memory in use (after each run)"
        )
        bar.addWidget(self.error_label, 1)
        for label in (*extra, self.device_label, self.lifecycle_label):
            bar.addPermanentWidget(label)
        bridge.lifecycleChanged.connect(self._on_lifecycle_changed)
        bridge.engineReported.connect(self._on_engine_reported)
        bridge.runCompleted.connect(self._on_run_completed)
        bridge.runFailed.connect(self._on_run_failed)
        bridge.jobFinished.connect(self._on_job_finished)
        bridge.sessionRefused.connect(self._on_session_refused)

    def show(self, text: str, timeout_ms: int) -> None:
        """A message for ``timeout_ms``; dropped once closed (queued signals from the engine's
        threads can still arrive then)."""
        if not self.closed:
            self.bar.showMessage(text, timeout_ms)

    def show_queue_error(self, message: str) -> None:
        self.show(f"Queue: {message}", 15000)

    def show_config_error(self, message: str) -> str:
        """Show the first line of ``message`` (all of it in the tooltip); returns the text shown."""
        text = f"Config Error: {message.splitlines()[0]}" if message else ""
        self.error_label.setText(text)
        self.error_label.setToolTip(message)
        return text

    def show_requeued(self, job: Job) -> None:
        self.show(f"Queued again as job #{job.id} (Run queue starts it)", 5000)

    def close(self) -> None:
        self.closed = True
        self.bar.clearMessage()  # stops the message's timeout timer

    def _on_lifecycle_changed(self, event: LifecycleChanged) -> None:
        self.lifecycle_label.setText(event.new.value)

    def _on_engine_reported(self, event: EngineReported) -> None:
        if event.summary:  # a new engine that has not run yet keeps the last device shown
            self.device_label.setText(event.summary)

    def _on_run_completed(self, event: RunCompleted) -> None:
        self.show(f"Saved {len(event.image_paths)} image(s) to {event.output_dir}", 10000)

    def _on_run_failed(self, event: RunFailed) -> None:
        self.show(f"Error: {event.message}", 15000)

    def _on_job_finished(self, event: JobFinished) -> None:
        job = event.job
        if job.status is JobStatus.FAILED and job.error:
            self.show(f"Job #{job.id} failed: {job.error}", 15000)

    def _on_session_refused(self, event: SessionRefused) -> None:
        self.show_queue_error(event.message)
