"""SweepPanel: the window's X/Y/Z plot and prompt matrix (issue 15; docs/sweeps.md).

Three axes (:class:`~.sweep_axes.AxisRow`) over the editor's current config, A1111's options,
and, as the user types:

- a **live count** of the images ("X 3 × Y 2 = 6 cells × batch 2 = 12 images"), parse errors on
  the field that holds them;
- a **check** of the whole sweep as the queue would build it (unknown names, axes with no effect,
  RunConfig limits), on the panel's own thread a moment after the last change, which also gives
  the **estimated time**: the last runs' seconds per image step (:class:`~.run_speed.RunSpeed`, from the
  events the window receives; :mod:`~stablenew_qt.core.sweep.estimate`)
  times the steps of every image of every cell;
- a **warning** when the sweep makes more than :data:`WARN_IMAGES` images or takes more than
  :data:`WARN_SECONDS`; Queue sweep then asks before queueing.

"Queue sweep" builds the group with core's :func:`~stablenew_qt.core.sweep.sweep_jobs` (what
``queue add --sweep`` uses) and adds it, both on the queue thread; the queue runs it like any jobs.
Save and Load write and read sweep.json (the ``queue add --sweep`` format) off the GUI thread.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.atomic_files import atomic_replace_bytes
from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.field_labels import all_in_user_words
from ..core.job_group import GroupKind, JobGroup
from ..core.sweep import (
    AxisSpec,
    PromptMatrixOptions,
    SweepContext,
    SweepJobs,
    SweepSpec,
    axis_type,
    sweep_jobs,
)
from ..core.sweep.estimate import config_steps, format_duration, image_count
from ..core.sweep.matrix import split_matrix_prompt
from ..core.sweep.plan import AXIS_NAMES
from .background import Background
from .bridge import EventBridge
from .config_model import ConfigModel
from .queue_client import QueueClient
from .run_speed import RunSpeed
from .services import ModelChoices
from .sweep_axes import AxisRow, SweepOptionsBar

__all__ = ["WARN_IMAGES", "WARN_SECONDS", "SweepPanel", "SweepSize", "sweep_context"]

#: Above this many images Queue sweep asks first.
WARN_IMAGES = 100
#: Above this estimate (seconds) Queue sweep asks first.
WARN_SECONDS = 30 * 60
#: The whole-sweep check runs this long after the last change (ms).
CHECK_DELAY_MS = 300
SWEEP_FILTER = "Sweep (*.json)"


@dataclass(frozen=True)
class SweepSize:
    """What a built sweep makes: its cells, images and image steps (for the estimate)."""

    cells: int
    images: int
    image_steps: int

    @classmethod
    def of(cls, jobs: SweepJobs) -> SweepSize:
        return cls(
            len(jobs.configs),
            sum(image_count(c) for c in jobs.configs),
            sum(config_steps(c) * image_count(c) for c in jobs.configs),
        )


def sweep_context(choices: ModelChoices) -> SweepContext:
    """Names to check axis values against (a kind with nothing installed is not checked)."""
    return SweepContext(
        checkpoints=choices.checkpoints or None,
        vaes=choices.vaes or None,
        upscalers=choices.upscalers or None,
        adetailer_models=choices.detectors or None,
    )


class SweepPanel(QWidget):
    """The Sweep tab over ``model`` (the editor's config); ``queue`` is the window's QueueClient."""

    #: A sweep was queued (the new JobGroup).
    queued = Signal(object)

    def __init__(
        self,
        model: ConfigModel,
        bridge: EventBridge,
        queue: QueueClient,
        choices: Callable[[], ModelChoices],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model, self.queue, self._choices = model, queue, choices
        self.speed = RunSpeed(bridge, self)
        self.checked: SweepSize | None = None  # of the last check that passed
        self.confirm_box: QMessageBox | None = None
        self._loaded = SweepSpec()  # options the panel has no widget for survive a load and save
        self._check_number = 0
        self.background = Background(self)
        self.check_timer = QTimer(self)
        self.check_timer.setObjectName("sweep.check_timer")
        self.check_timer.setSingleShot(True)
        self.check_timer.setInterval(CHECK_DELAY_MS)
        self.check_timer.timeout.connect(self._check_now)
        self._build()
        for row in self.rows:
            row.changed.connect(self._on_changed)
        self.options.changed.connect(self._on_changed)
        model.changed.connect(self._on_changed)
        model.replaced.connect(self._on_changed)
        self.speed.changed.connect(self._show_estimate)
        self._on_changed()

    def _build(self) -> None:
        self.rows = tuple(AxisRow(name, self._choices) for name in ("x", "y", "z"))
        self.options = SweepOptionsBar()
        self.matrix = self.options.matrix
        self.count_label = _label("sweep.count")
        self.estimate_label = _label("sweep.estimate")
        self.warning_label = _label("sweep.warning", "warning")
        self.error_label = _label("sweep.error", "error")
        self.queue_button = QPushButton("Queue sweep")
        self.queue_button.setObjectName("sweep.queue")
        self.queue_button.setToolTip(
            "Add every cell to the queue as one group; its grid is drawn when the last ends"
        )
        self.queue_button.clicked.connect(self._on_queue_clicked)
        save, load = QPushButton("Save…"), QPushButton("Load…")
        save.setToolTip("Save the axes as sweep.json (queue add --sweep reads it)")
        load.setToolTip("Load the axes of a sweep.json")
        save.clicked.connect(self._on_save_clicked)
        load.clicked.connect(self._on_load_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.queue_button, 1)
        buttons.addWidget(save)
        buttons.addWidget(load)
        layout = QVBoxLayout(self)
        for row in self.rows:
            layout.addWidget(row)
        layout.addWidget(self.options)
        for label in (self.count_label, self.estimate_label, self.warning_label, self.error_label):
            layout.addWidget(label)
        layout.addLayout(buttons)
        layout.addStretch(1)

    # -- the spec ----------------------------------------------------------------------------
    def spec(self) -> SweepSpec:
        """The sweep the widgets show (options without a widget as last loaded)."""
        matrix = self.matrix.isChecked()
        data = self._loaded.model_dump()
        data.update(
            self.options.values(),
            prompt_matrix=(self._loaded.prompt_matrix or PromptMatrixOptions()).model_dump()
            if matrix
            else None,
        )
        for row in self.rows:
            data[row.name] = (AxisSpec() if matrix else row.spec()).model_dump()
        return SweepSpec.from_dict(data)

    def show_spec(self, spec: SweepSpec) -> None:
        """Show a loaded sweep."""
        self._loaded = spec
        for row, axis in zip(self.rows, spec.axes, strict=True):
            row.show_spec(axis)
        self.options.show_values(spec)
        self._on_changed()

    # -- live count, check and estimate ---------------------------------------------------------
    def _on_changed(self, *_args: object) -> None:
        matrix = self.matrix.isChecked()
        for row in self.rows:
            row.setEnabled(not matrix)
        self.checked = None
        self.count_label.setText(self._count_text())
        self._show_estimate()
        self.check_timer.start()

    @property
    def parse_ok(self) -> bool:
        return self.matrix.isChecked() or all(row.count is not None for row in self.rows)

    def _count_text(self) -> str:
        config = self.model.config
        if self.matrix.isChecked():
            options = self._loaded.prompt_matrix or PromptMatrixOptions()
            text = config.prompt if options.prompt_type == "positive" else config.negative_prompt
            parts = len(split_matrix_prompt(text)) - 1
            if parts < 1:
                return f"Prompt matrix: the {options.prompt_type} prompt has no | parts to switch on and off"
            return (
                f"Prompt matrix: {parts} part{'s' if parts > 1 else ''} after the first = {2**parts} images"
            )
        if not self.parse_ok:
            return "Count: fix the values marked below their axis"
        used = [(row.name.upper(), row.count or 0) for row in self.rows if not row.is_nothing]
        cells = 1
        for _, n in used:
            cells *= n
        batch = image_count(config)
        axes = " × ".join(f"{name} {n}" for name, n in used) or "no axes"
        return f"{axes} = {_plural(cells, 'cell')} × batch {batch} = {_plural(cells * batch, 'image')}"

    def _check_now(self) -> None:
        self._check_number += 1
        number = self._check_number
        self.error_label.hide()
        if not self.parse_ok:
            return
        try:
            spec = self.spec()
        except ConfigError as exc:
            self._on_check_failed(number, all_in_user_words(exc.problems))
            return
        base, context = self.model.config, sweep_context(self._choices())
        self.background.run(
            lambda: SweepSize.of(_in_user_words(base, spec, context, random.Random(0))),
            lambda size: self._on_checked(number, size),
            lambda message: self._on_check_failed(number, message),
        )

    def _on_checked(self, number: int, size: SweepSize) -> None:
        if number == self._check_number:
            self.checked = size
            self.count_label.setText(self._count_text())
            self._show_estimate()

    def _on_check_failed(self, number: int, message: str) -> None:
        if number == self._check_number:
            self.error_label.setText(message)
            self.error_label.show()
            self._show_estimate()

    def estimated_seconds(self) -> float | None:
        """The checked sweep's estimate (None: no check yet, or no run measured yet)."""
        rate = self.speed.seconds_per_step
        return None if rate is None or self.checked is None else self.checked.image_steps * rate

    def _show_estimate(self) -> None:
        rate, seconds = self.speed.seconds_per_step, self.estimated_seconds()
        if rate is None:
            self.estimate_label.setText(
                "Estimated time: no estimate yet (it comes from the next run's speed)"
            )
        elif seconds is None:
            waiting = self.parse_ok and self.error_label.isHidden()
            self.estimate_label.setText(
                "Estimated time: checking the sweep…" if waiting else "Estimated time: fix the sweep first"
            )
        else:
            self.estimate_label.setText(
                f"Estimated time: {format_duration(seconds)} ({rate:.3g} s per step, from the last runs)"
            )
        warning = self._warning(self.checked)
        self.warning_label.setText(warning)
        self.warning_label.setVisible(bool(warning))

    def _warning(self, size: SweepSize | None) -> str:
        if size is None:
            return ""
        seconds = self.speed.seconds_per_step
        over_time = seconds is not None and size.image_steps * seconds > WARN_SECONDS
        if size.images <= WARN_IMAGES and not over_time:
            return ""
        took = f" ({format_duration(size.image_steps * seconds)})" if seconds is not None else ""
        return f"A large sweep: {_plural(size.images, 'image')}{took}. Queue sweep asks before queueing it."

    # -- queueing -----------------------------------------------------------------------------
    def _on_queue_clicked(self) -> None:
        if not self.parse_ok or self.model.error is not None:
            self._show_error("Fix the sweep's values (or the editor's settings) first")
            return
        try:
            spec = self.spec()
        except ConfigError as exc:
            self._show_error(all_in_user_words(exc.problems))
            return
        base, context = self.model.config, sweep_context(self._choices())
        self.queue_button.setEnabled(False)
        self.queue.call(lambda: _in_user_words(base, spec, context), self._on_built, self._on_refused)

    def _on_built(self, jobs: SweepJobs) -> None:
        size = SweepSize.of(jobs)
        warning = self._warning(size)
        if not warning:
            self._add(jobs)
            return
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Queue a large sweep?",
            warning.split(".")[0] + ". Queue it?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.setObjectName("dialog.large_sweep")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda answer: self._on_confirm_answered(answer, jobs))
        self.confirm_box = box
        box.open()

    def _on_confirm_answered(self, answer: int, jobs: SweepJobs) -> None:
        self.confirm_box = None
        if answer == QMessageBox.StandardButton.Yes:
            self._add(jobs)
        else:
            self.queue_button.setEnabled(True)

    def _add(self, jobs: SweepJobs) -> None:
        self.queue.add_group(
            jobs.configs,
            GroupKind.SWEEP,
            jobs.meta,
            indices=jobs.indices,
            on_done=self._on_added,
            on_error=self._on_refused,
        )

    def _on_added(self, group: JobGroup) -> None:
        self.queue_button.setEnabled(True)
        self.error_label.hide()
        self.queued.emit(group)

    def _on_refused(self, message: str) -> None:
        self.queue_button.setEnabled(True)
        self._show_error(message)

    def _show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()

    # -- sweep.json ---------------------------------------------------------------------------
    def _on_save_clicked(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Save sweep", "sweep.json", SWEEP_FILTER)
        if name:
            self.save_to(Path(name))

    def _on_load_clicked(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Load sweep", "", SWEEP_FILTER)
        if name:
            self.load_from(Path(name))

    def save_to(self, path: Path, on_done: Callable[[Path], None] | None = None) -> None:
        """Write the sweep to ``path`` as sweep.json (replacing it atomically), off the GUI thread."""
        try:
            text = self.spec().model_dump_json(indent=2, exclude_defaults=True) + "\n"
        except ConfigError as exc:
            self._show_error(all_in_user_words(exc.problems))
            return
        self.background.run(
            lambda: atomic_replace_bytes(path, text.encode()), on_done or (lambda _p: None), self._show_error
        )

    def load_from(self, path: Path, on_done: Callable[[SweepSpec], None] | None = None) -> None:
        """Read a sweep.json off the GUI thread and show it; a bad file is one line under the axes."""

        def loaded(spec: SweepSpec) -> None:
            self.show_spec(spec)
            if on_done is not None:
                on_done(spec)

        self.background.run(
            lambda: _read_spec(path),
            loaded,
            lambda message: self._show_error(f"{path.name}: {message}"),
        )

    def shutdown(self) -> None:
        """Stop the check timer and the panel's thread (the window is closing)."""
        self.check_timer.stop()
        self.background.shutdown()


def _in_user_words(
    base: RunConfig, spec: SweepSpec, context: SweepContext, rng: random.Random | None = None
) -> SweepJobs:
    """:func:`sweep_jobs`, its errors in the window's words ("CFG", not "txt2img.cfg_scale")."""
    try:
        return sweep_jobs(base, spec, context=context, rng=rng)
    except ConfigError as exc:
        raise ConfigError(all_in_user_words(exc.problems)) from None


def _read_spec(path: Path) -> SweepSpec:
    spec = SweepSpec.from_json(path.read_bytes())
    for name, axis in zip(AXIS_NAMES, spec.axes, strict=True):
        axis_type(axis.type, f"{name}.type")  # the panel shows only the types it knows
    return spec


def _label(name: str, role: str = "") -> QLabel:
    label = QLabel()
    label.setObjectName(name)
    label.setWordWrap(True)
    if role:
        label.setProperty("role", role)
        label.hide()
    return label


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
