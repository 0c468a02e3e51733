"""DynamicPrompts: the window's "Dynamic prompts" section, like A1111's sd-dynamic-prompts accordion.

When "Expand dynamic prompts" is on and the prompt or the negative prompt holds ``{a|b}``,
``{2$$a|b|c}`` or ``__name__``, Generate and Add to queue queue a WILDCARDS group instead of one
job, built by core's :func:`~stablenew_qt.core.sweep.dynamic.expand_dynamic` (what
``queue add --wildcards`` uses): random mode gives batch count × batch size images, each with the
prompt drawn from its own seed; combinatorial mode every combination, at most "at most". The
PNGs record the expanded prompts; the group's meta and each manifest keep the template.

The wildcards folder is the one chosen, else A1111's ``extensions/sd-dynamic-prompts/wildcards``
beside the models folder when it exists, else ours (``wildcards/`` in the data folder); the
choice and the options are preferences. Reading the wildcard files and expanding run on the
section's own thread (:class:`~.background.Background`), the queue write on the queue thread;
a bad prompt or a missing wildcard is one status line and nothing is queued. A live line says
what Generate will make. "Queue a prompt pack…" queues a TXT or JSON pack (``queue add --pack``)
over the current settings as one PACK group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QCollapsible
from superqt.utils import signals_blocked

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.field_labels import all_in_user_words
from ..core.job_group import GroupKind, JobGroup
from ..core.outputs import app_data_dir
from ..core.sweep.dynamic import (
    DynamicExpansion,
    DynamicOptions,
    describe_dynamic,
    expand_dynamic,
    wants_expansion,
)
from ..core.sweep.packs import load_prompt_pack
from ..core.sweep.wildcards import DEFAULT_COMBINATION_LIMIT
from .background import Background
from .config_model import ConfigModel
from .engine_host import EngineHost
from .preferences import Preferences

__all__ = ["A1111_WILDCARDS", "DynamicPrompts", "wildcards_folder"]

#: Where A1111's sd-dynamic-prompts keeps its wildcards, from the folder holding the models folder.
A1111_WILDCARDS = Path("extensions") / "sd-dynamic-prompts" / "wildcards"
MODES = ("Random", "Combinatorial")


def wildcards_folder(chosen: Path | None, models_dir: Path) -> Path | None:
    """The folder to read (reads the disk: call it off the GUI thread): ``chosen``, else the A1111
    extension's beside ``models_dir``, else ours, whichever exists first (None: neither)."""
    if chosen is not None:
        return chosen
    for folder in (models_dir.expanduser().resolve().parent / A1111_WILDCARDS, app_data_dir() / "wildcards"):
        if folder.is_dir():
            return folder
    return None


def _expanded(
    configs: list[RunConfig], options: DynamicOptions, chosen: Path | None, models_dir: Path
) -> DynamicExpansion:
    folder = wildcards_folder(chosen, models_dir)
    try:
        return expand_dynamic(configs, dataclasses.replace(options, folder=folder))
    except ConfigError as exc:
        text = "; ".join(p.message for p in exc.problems)
        if any(not p.field for p in exc.problems):  # the syntax: maybe not meant as dynamic at all
            text += " (or turn off Expand dynamic prompts to send the prompt as written)"
        elif folder is None:
            text += f" (put NAME.txt files in {str(app_data_dir() / 'wildcards')!r} or choose a folder)"
        raise ConfigError(f"Dynamic prompts: {text}") from None


class DynamicPrompts(QWidget):
    """The section over ``model`` (the editor's config), keeping its options in ``prefs``; it
    queues through ``host`` (Generate: first in line, then run)."""

    #: A group was queued (the new JobGroup).
    queued = Signal(object)
    #: Nothing was queued (one line for the status bar).
    refused = Signal(str)

    def __init__(
        self, model: ConfigModel, prefs: Preferences, host: EngineHost, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.model, self.prefs, self.host = model, prefs, host
        self.background = Background(self)
        self._build()
        self._show_prefs()
        self.enabled.toggled.connect(self._on_options_edited)
        self.mode.currentIndexChanged.connect(self._on_options_edited)
        self.most.valueChanged.connect(self._on_options_edited)
        model.changed.connect(self._show_summary)
        model.replaced.connect(self._show_summary)
        self._show_summary()

    def _build(self) -> None:
        self.enabled = QCheckBox("Expand dynamic prompts")
        self.enabled.setObjectName("dynamic.enabled")
        self.enabled.setToolTip(
            "Generate makes a group: {a|b} variants and __name__ wildcards drawn per image"
        )
        self.mode = QComboBox()
        self.mode.setObjectName("dynamic.mode")
        self.mode.addItems(MODES)
        self.mode.setToolTip(
            "Random: each image's prompt drawn from its seed; Combinatorial: every combination"
        )
        self.most = QSpinBox()
        self.most.setObjectName("dynamic.most")
        self.most.setRange(1, DEFAULT_COMBINATION_LIMIT)
        self.most.setPrefix("at most ")
        self.most.setToolTip("Combinatorial mode makes at most this many prompts")
        self.folder = QLineEdit()
        self.folder.setObjectName("dynamic.folder")
        self.folder.setReadOnly(True)
        self.folder.setPlaceholderText("automatic: A1111's sd-dynamic-prompts wildcards, else ours")
        choose, automatic = QPushButton("Choose…"), QPushButton("Automatic")
        choose.setToolTip("The folder of NAME.txt wildcard files (subfolders: __sub/name__)")
        ours = app_data_dir() / "wildcards"
        automatic.setToolTip(f"A1111's {A1111_WILDCARDS.as_posix()} beside the models folder, else {ours}")
        choose.clicked.connect(self._on_choose_clicked)
        automatic.clicked.connect(lambda: self.set_folder(None))
        self.pack_button = QPushButton("Queue a prompt pack…")
        self.pack_button.setObjectName("dynamic.pack")
        self.pack_button.setToolTip("One job per prompt of a TXT (--neg) or JSON file, as one group")
        self.pack_button.clicked.connect(self._on_pack_clicked)
        self.summary = QLabel()
        self.summary.setObjectName("dynamic.summary")
        self.summary.setWordWrap(True)
        options = QHBoxLayout()
        for option in (self.enabled, self.mode, self.most):
            options.addWidget(option)
        folder = QHBoxLayout()
        folder.addWidget(QLabel("Wildcards"))
        for widget in (self.folder, choose, automatic):
            folder.addWidget(widget)
        self.section = QCollapsible("Dynamic prompts")
        self.section.setObjectName("dynamic.section")
        box = QWidget()
        rows = QVBoxLayout(box)
        rows.setContentsMargins(0, 0, 0, 0)
        rows.addLayout(options)
        rows.addLayout(folder)
        rows.addWidget(self.pack_button)
        self.section.addWidget(box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.section)
        layout.addWidget(self.summary)

    # -- options -----------------------------------------------------------------------------
    def _show_prefs(self) -> None:
        prefs = self.prefs
        with signals_blocked(self.enabled), signals_blocked(self.mode), signals_blocked(self.most):
            self.enabled.setChecked(prefs.expand_dynamic_prompts)
            self.mode.setCurrentIndex(1 if prefs.combinatorial_prompts else 0)
            self.most.setValue(prefs.max_combinations)
        self.folder.setText(str(prefs.wildcards_dir) if prefs.wildcards_dir is not None else "")
        self.most.setEnabled(prefs.combinatorial_prompts)

    def _on_options_edited(self, *_args: object) -> None:
        self.prefs.expand_dynamic_prompts = self.enabled.isChecked()
        self.prefs.combinatorial_prompts = self.mode.currentIndex() == 1
        self.prefs.max_combinations = self.most.value()
        self.most.setEnabled(self.prefs.combinatorial_prompts)
        self._show_summary()

    def set_folder(self, folder: Path | None) -> None:
        """Use ``folder`` for wildcards (None: the automatic one)."""
        self.prefs.wildcards_dir = folder
        self.folder.setText(str(folder) if folder is not None else "")
        self._show_summary()

    def _on_choose_clicked(self) -> None:
        name = QFileDialog.getExistingDirectory(self, "Wildcards folder", self.folder.text())
        if name:
            self.set_folder(Path(name))

    def options(self) -> DynamicOptions:
        """The options shown (the folder is settled when expanding, off the GUI thread)."""
        combinatorial = self.mode.currentIndex() == 1
        return DynamicOptions(
            combinatorial=combinatorial, max_prompts=self.most.value() if combinatorial else None
        )

    def applies(self, config: RunConfig) -> bool:
        """Whether Generate should queue ``config`` through this section."""
        return self.enabled.isChecked() and wants_expansion(config)

    def _show_summary(self, *_args: object) -> None:
        config = self.model.config
        text = describe_dynamic(config, self.options()) if self.applies(config) else ""
        self.summary.setText(f"Dynamic prompts: {text}" if text else "")
        self.summary.setVisible(bool(text))

    # -- queueing ----------------------------------------------------------------------------
    def queue_config(self, config: RunConfig, *, front: bool, plain: Callable[[], None]) -> None:
        """Expand ``config`` off the GUI thread, then queue the group (``front``: Generate, first
        in line and run at once); ``queued`` or ``refused`` tells how it went. When nothing in
        the prompts changes (``a__b`` in a LoRA name), ``plain()`` queues the one job instead."""
        options, chosen, models = self.options(), self.prefs.wildcards_dir, self.prefs.models_dir

        def expanded(expansion: DynamicExpansion) -> None:
            if not expansion.varies:
                plain()
            else:
                self._add(expansion.configs, GroupKind.WILDCARDS, expansion.meta, front)

        self.background.run(lambda: _expanded([config], options, chosen, models), expanded, self._refuse)

    def _add(self, configs: list[RunConfig], kind: GroupKind, meta: dict[str, Any], front: bool) -> None:
        session, run_job = self.host.session, self.host.run_job

        def add() -> JobGroup:  # on the queue thread
            try:
                group = session.enqueue_group(configs, kind, meta, front=front)
            except ConfigError as exc:
                raise ConfigError(all_in_user_words(exc.problems).replace("\n", "; ")) from None
            if front:
                for job in session.queue.group_jobs(group.id):
                    run_job(job.id)
            return group

        self.host.queue.call(add, self.queued.emit, self._refuse)

    def _refuse(self, message: str) -> None:
        self.refused.emit(message.replace("\n", "; "))

    # -- prompt packs --------------------------------------------------------------------------
    def _on_pack_clicked(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Queue a prompt pack", "", PACK_FILTER)
        if name:
            self.queue_pack(Path(name))

    def queue_pack(self, path: Path) -> None:
        """Read the pack at ``path`` off the GUI thread and queue one job per prompt over the
        current settings, at the end, as one PACK group (as ``queue add --pack``); with
        "Expand dynamic prompts" on, prompts holding variants or wildcards are expanded too."""
        base, options = self.model.config, self.options()
        expand, chosen, models = self.enabled.isChecked(), self.prefs.wildcards_dir, self.prefs.models_dir

        def read() -> tuple[list[RunConfig], dict[str, Any]]:  # on the section's thread
            configs = load_prompt_pack(path, base)
            meta: dict[str, Any] = {"source": str(path.resolve()), "label": f"pack {path.name}"}
            if expand and any(wants_expansion(c) for c in configs):
                expansion = _expanded(configs, options, chosen, models)
                configs, meta = expansion.configs, {**expansion.meta, **meta}
            return configs, meta

        self.background.run(
            read,
            lambda read_: self._add(read_[0], GroupKind.PACK, read_[1], False),
            lambda message: self._refuse(f"{path.name}: {message}"),
        )

    def shutdown(self) -> None:
        """Stop the section's thread (the window is closing)."""
        self.background.shutdown()


PACK_FILTER = "Prompt packs (*.txt *.json);;All files (*)"
