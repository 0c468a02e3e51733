"""WorkersPanel: one row per worker (issue 16): id, node, device, VRAM, resident models, state, job.

With workers on, the rows follow the session's :class:`~stablenew_qt.core.events.WorkersChanged`
events (the whole pool's state each time). With workers off, one row stands for this process's
engine: its device from :class:`EngineReported`, busy with the running job's progress from the job
and step events. Updates are cheap: a row is made once per worker id and afterwards only the cells
whose text changed are set, and the progress bar's value; nothing is rebuilt on a progress event.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core import events as ev
from ..core.events import WorkerInfo, WorkerState
from ..core.workers import WorkersSetting
from .bridge import EventBridge

COLUMNS: tuple[str, ...] = ("Worker", "Node", "Device", "VRAM", "Models", "State", "Job", "Progress")
COL_WORKER, COL_NODE, COL_DEVICE, COL_VRAM, COL_MODELS, COL_STATE, COL_JOB, COL_PROGRESS = range(8)
#: The worker id of the row that stands for this process's engine when workers are off.
THIS_GPU_ID = "this GPU"
#: What the panel says while jobs run on this process's engine.
OFF_NOTICE = "Workers: this GPU only — switch on in Queue > Workers…"
#: Failed and lost workers' state text: a red that reads on light and dark backgrounds.
PROBLEM_COLOR = "#d64541"


def vram_text(info: WorkerInfo) -> str:
    """``"2.1 / 80.0 GB"``, ``"80.0 GB"`` when only the total is known, "" when neither is."""
    if info.vram_total_mb is None:
        return ""
    total = f"{info.vram_total_mb / 1024:.1f} GB"
    return total if info.vram_used_mb is None else f"{info.vram_used_mb / 1024:.1f} / {total}"


def state_text(info: WorkerInfo) -> str:
    """The state as the panel shows it; a failed or lost worker's message follows it."""
    text = info.state.value
    return f"{text}: {info.message}" if info.message and info.state in _PROBLEMS else text


_PROBLEMS = (WorkerState.FAILED, WorkerState.LOST)


class _Row:
    """One worker's cells, made once and then updated in place."""

    def __init__(self, table: QTableWidget, row: int) -> None:
        self.items = [QTableWidgetItem() for _ in COLUMNS[:COL_PROGRESS]]
        for column, item in enumerate(self.items):
            table.setItem(row, column, item)
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.bar.setFormat("")
        table.setCellWidget(row, COL_PROGRESS, self.bar)
        self.info: WorkerInfo | None = None

    def show(self, info: WorkerInfo) -> None:
        if info == self.info:
            return
        texts = (
            info.worker_id,
            info.node,
            info.device,
            vram_text(info),
            ", ".join(info.resident),
            state_text(info),
            f"#{info.job_id}" if info.job_id is not None else "",
        )
        for item, text in zip(self.items, texts, strict=True):
            if item.text() != text:
                item.setText(text)
        state = self.items[COL_STATE]
        state.setToolTip(info.message)
        problem = info.state in _PROBLEMS
        if problem != (self.info is not None and self.info.state in _PROBLEMS):
            state.setForeground(QBrush(QColor(PROBLEM_COLOR)) if problem else QBrush())
        busy = info.state is WorkerState.BUSY
        value = round(min(max(info.fraction, 0.0), 1.0) * 1000) if busy else 0
        if self.bar.value() != value:
            self.bar.setValue(value)
        self.bar.setFormat(f"{value // 10} %" if busy else "")
        self.info = info


class WorkersPanel(QWidget):
    """The workers and what each one does; ``setting`` is the workers setting this window runs with."""

    def __init__(self, bridge: EventBridge, setting: WorkersSetting, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setting = setting
        self.notice = QLabel(OFF_NOTICE if not setting.enabled else f"Workers: {setting}")
        self.notice.setObjectName("workers.notice")
        self.notice.setWordWrap(True)
        self.settings_button = QPushButton("Workers…")
        self.settings_button.setObjectName("workers.settings")
        self.settings_button.setToolTip("Choose where the queue's jobs run (from the next start)")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("workers.table")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COL_MODELS, QHeaderView.ResizeMode.Stretch)
        top = QHBoxLayout()
        top.addWidget(self.notice, 1)
        top.addWidget(self.settings_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.table, 1)
        self.rows: dict[str, _Row] = {}
        self._this = WorkerInfo(THIS_GPU_ID, node="this computer", state=WorkerState.IDLE)
        bridge.workersChanged.connect(self._on_workers_changed)
        if not setting.enabled:
            self._show_this(self._this)
            bridge.engineReported.connect(self._on_engine_reported)
            bridge.jobStarted.connect(self._on_job_started)
            bridge.stepProgress.connect(self._on_step_progress)
            bridge.jobFinished.connect(self._on_job_ended)

    def row(self, worker_id: str) -> _Row:
        """The row of ``worker_id``, made on first use (rows are never rebuilt)."""
        found = self.rows.get(worker_id)
        if found is None:
            index = self.table.rowCount()
            self.table.insertRow(index)
            found = self.rows[worker_id] = _Row(self.table, index)
        return found

    def show_workers(self, workers: tuple[WorkerInfo, ...]) -> None:
        for info in workers:
            self.row(info.worker_id).show(info)

    def _on_workers_changed(self, event: ev.WorkersChanged) -> None:
        self.show_workers(event.workers)

    # -- workers off: this process's engine ------------------------------------------------------
    def _show_this(self, info: WorkerInfo) -> None:
        self._this = info
        self.row(THIS_GPU_ID).show(info)

    def _replace_this(self, **changes: object) -> None:
        self._show_this(replace(self._this, **changes))  # type: ignore[arg-type]

    def _on_engine_reported(self, event: ev.EngineReported) -> None:
        self._replace_this(device=event.summary)

    def _on_job_started(self, event: ev.JobStarted) -> None:
        self._replace_this(state=WorkerState.BUSY, job_id=event.job.id, fraction=0.0)

    def _on_step_progress(self, event: ev.StepProgress) -> None:
        if self._this.state is WorkerState.BUSY:
            self._replace_this(fraction=event.fraction)

    def _on_job_ended(self, _event: ev.JobFinished) -> None:
        self._replace_this(
            state=WorkerState.IDLE, job_id=None, fraction=0.0, jobs_done=self._this.jobs_done + 1
        )
