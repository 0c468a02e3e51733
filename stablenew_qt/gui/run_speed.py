"""RunSpeed: the last runs' seconds per image step, measured from the events the window receives.

``RunStarted`` gives a run's stage plan and its images (so its image steps,
:func:`~stablenew_qt.core.sweep.estimate.plan_steps` × seeds); each txt2img and img2img
``StageFinished`` adds its seconds; ``RunCompleted`` records the run in a
:class:`~stablenew_qt.core.sweep.estimate.SpeedMeter` and emits :attr:`RunSpeed.changed`. Failed
and cancelled runs are dropped (a run cut short says little about the speed).
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from ..core.events import RunCancelled, RunCompleted, RunFailed, RunStarted, StageFinished
from ..core.sequencer import StageName
from ..core.sweep.estimate import SpeedMeter, plan_steps
from .bridge import EventBridge

_SAMPLING_STAGES = (StageName.TXT2IMG, StageName.IMG2IMG)


class RunSpeed(QObject):
    """``seconds_per_step`` over the last runs (None before the first completes)."""

    changed = Signal()

    def __init__(self, bridge: EventBridge, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.meter = SpeedMeter()
        self._runs: dict[str, tuple[int, float]] = {}  # run id -> (image steps, sampling seconds)
        bridge.runStarted.connect(self._on_run_started)
        bridge.stageFinished.connect(self._on_stage_finished)
        bridge.runCompleted.connect(self._on_run_completed)
        bridge.runFailed.connect(self._on_run_ended)
        bridge.runCancelled.connect(self._on_run_ended)

    @property
    def seconds_per_step(self) -> float | None:
        return self.meter.seconds_per_step

    def _on_run_started(self, event: RunStarted) -> None:
        self._runs[event.run_id] = (plan_steps(event.plan) * len(event.seeds), 0.0)

    def _on_stage_finished(self, event: StageFinished) -> None:
        run = self._runs.get(event.run_id)
        if run is not None and event.stage in _SAMPLING_STAGES:
            self._runs[event.run_id] = (run[0], run[1] + event.seconds)

    def _on_run_completed(self, event: RunCompleted) -> None:
        run = self._runs.pop(event.run_id, None)
        if run is not None:
            self.meter.record(run[1], run[0])
            self.changed.emit()

    def _on_run_ended(self, event: RunFailed | RunCancelled) -> None:
        self._runs.pop(event.run_id, None)
