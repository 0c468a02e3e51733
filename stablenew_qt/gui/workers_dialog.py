"""WorkersDialog: where the queue's jobs run (issue 16): this GPU, all local GPUs, N workers, a cluster.

The choice is read with :meth:`WorkersSetting.parse`, as the CLI's ``--workers`` is; a value that
does not parse shows under the field in the window's words and nothing is saved. OK saves it,
with the models folder on the nodes (optional), in the settings file the window and the CLI share
(:func:`~stablenew_qt.core.user_settings.save_workers`), on the dialog's own thread: the GUI
thread never waits on the disk. It applies when the window next starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import ConfigError
from ..core.workers import WorkersMode, WorkersSetting
from .background import Background

#: (mode, label) in the order the combo offers them.
MODES: tuple[tuple[WorkersMode, str], ...] = (
    (WorkersMode.THIS_GPU, "This GPU only"),
    (WorkersMode.LOCAL, "All local GPUs"),
    (WorkersMode.COUNT, "Number of workers"),
    (WorkersMode.ADDRESS, "Ray cluster address"),
)
APPLIES_NOTE = "The new setting applies when StableNew Qt next starts."


def setting_from(mode: WorkersMode, value: str, models: str) -> WorkersSetting:
    """The setting the dialog's fields describe; ConfigError (one line, the window's words) if none."""
    text = value.strip()
    folder = Path(models.strip()).expanduser() if models.strip() else None
    if mode is WorkersMode.THIS_GPU:
        return WorkersSetting.parse("this", folder)
    if mode is WorkersMode.LOCAL:
        return WorkersSetting.parse("local", folder)
    if mode is WorkersMode.COUNT:
        if not text.isdigit():
            raise ConfigError("Number of workers: give a whole number from 1 to 64", "workers")
        return WorkersSetting.parse(text, folder)
    if not text or text.isdigit() or text in ("this", "local"):
        raise ConfigError("Ray cluster address: give 'auto' or ray://host:port", "workers")
    try:
        return WorkersSetting.parse(text, folder)
    except ConfigError:
        raise ConfigError(
            f"Ray cluster address: {text!r} is not one; give 'auto' or ray://host:port", "workers"
        ) from None


class WorkersDialog(QDialog):
    """Edits ``current``. OK runs ``save(setting)`` off the GUI thread, the fields and buttons
    disabled meanwhile, then closes; when it fails, its message shows in the dialog, which stays."""

    def __init__(
        self,
        current: WorkersSetting,
        save: Callable[[WorkersSetting], None],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Workers")
        self._save = save
        self._writer = Background(self)
        self._saving = False
        self.saved: WorkersSetting | None = None
        self.mode = QComboBox()
        self.mode.setObjectName("workers.mode")
        for mode, label in MODES:
            self.mode.addItem(label, mode.value)
        self.value = QLineEdit()
        self.value.setObjectName("workers.value")
        self.models = QLineEdit(str(current.models_dir) if current.models_dir else "")
        self.models.setObjectName("workers.models_dir")
        self.models.setPlaceholderText("each node's own models folder")
        self.models.setToolTip("The models folder on the worker nodes, when it is not this computer's")
        self.error = QLabel()
        self.error.setObjectName("workers.error")
        self.error.setProperty("role", "error")
        self.error.setWordWrap(True)
        note = QLabel(APPLIES_NOTE)
        note.setWordWrap(True)
        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Run jobs on", self.mode)
        form.addRow("Workers or address", self.value)
        form.addRow("Models folder on the nodes", self.models)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addWidget(note)
        layout.addWidget(self.buttons)
        self.mode.setCurrentIndex(self.mode.findData(current.mode.value))
        if current.mode is WorkersMode.COUNT:
            self.value.setText(str(current.count))
        elif current.mode is WorkersMode.ADDRESS:
            self.value.setText(current.address)
        self.mode.currentIndexChanged.connect(self._check)
        self.value.textChanged.connect(self._check)
        self.models.textChanged.connect(self._check)
        self._check()

    def _chosen_mode(self) -> WorkersMode:
        return WorkersMode(self.mode.currentData())

    def setting(self) -> WorkersSetting:
        """What the fields say (ConfigError when they say nothing valid)."""
        return setting_from(self._chosen_mode(), self.value.text(), self.models.text())

    def _check(self) -> bool:
        mode = self._chosen_mode()
        self.value.setEnabled(mode in (WorkersMode.COUNT, WorkersMode.ADDRESS))
        self.value.setPlaceholderText(
            {WorkersMode.COUNT: "1 to 64", WorkersMode.ADDRESS: "auto or ray://host:port"}.get(mode, "")
        )
        try:
            self.setting()
        except ConfigError as exc:
            self.error.setText("; ".join(problem.message for problem in exc.problems))
            ok = False
        else:
            self.error.setText("")
            ok = True
        button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        button.setEnabled(ok)
        return ok

    def accept(self) -> None:
        if self._saving or not self._check():
            return
        setting = self.setting()
        self._set_saving(True)
        self.error.setText("Saving…")
        self._writer.run(
            lambda: self._save(setting),
            lambda _none: self._on_saved(setting),
            self._on_save_failed,
        )

    def reject(self) -> None:
        if not self._saving:  # Esc during the save: the file is being written, so it waits
            super().reject()

    def done(self, result: int) -> None:
        self._writer.shutdown()  # nothing runs by now; no answer may come to a closed dialog
        super().done(result)

    def _set_saving(self, saving: bool) -> None:
        self._saving = saving
        for widget in (self.mode, self.value, self.models, self.buttons):
            widget.setEnabled(not saving)
        if not saving:
            self._check()  # the value field and OK as the fields say

    def _on_saved(self, setting: WorkersSetting) -> None:
        self._saving = False
        self.saved = setting
        super().accept()

    def _on_save_failed(self, message: str) -> None:
        self._set_saving(False)
        self.error.setText(f"The setting could not be saved: {message}")
