"""StylesPicker: A1111's prompt styles in the prompt area (issue 15; docs/sweeps.md, "Styles").

The styles are read (off the GUI thread) from ``styles.csv`` of an A1111 install (the folder
holding the models folder) and then ours (the user data folder), ours winning, with
:class:`~stablenew_qt.core.sweep.StyleLibrary`. Tick one or more and press Apply: they are merged
into the prompt and the negative prompt in the order ticked, as A1111's "apply styles" button
does (a ``{prompt}`` placeholder is replaced by the prompt, else the style is appended after
``", "``), so the image records the styled prompt. A ticked style whose text the prompts already
hold (found as A1111 finds styles on paste) is not applied again; the status line names it.
A line under the list names the styles the prompts hold now ("Styles in the prompt: Film, Noir"),
e.g. after an image's settings were restored: A1111 writes no style names into an image, so this
is how its styles show (their ticks would apply them a second time).
"Save as style…" writes the current prompt and negative prompt to our styles.csv as a new row (or
over the row of that name), atomically, keeping every other row (:func:`~stablenew_qt.core.sweep.save_style`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import ConfigError
from ..core.sweep import PromptStyle, StyleLibrary, save_style, styles_in_prompt
from .background import Background
from .config_model import ConfigModel

__all__ = ["STYLES_FILE", "StylesPicker", "styles_paths"]

STYLES_FILE = "styles.csv"
#: The list's height in rows: the prompt stays the largest thing in the area.
VISIBLE_ROWS = 3


def styles_paths(models_dir: Path, own_file: Path) -> list[Path]:
    """The styles.csv files read, in order: an A1111 install's (beside ``models_dir``), then ours."""
    return [models_dir.expanduser().resolve().parent / STYLES_FILE, own_file]


#: How long typing must pause before the prompts are looked at for styles.
IN_PROMPT_DELAY_MS = 300


class StylesPicker(QWidget):
    """Styles to tick and apply: those of the A1111 install beside ``models_dir()`` and of
    ``own_file()`` (ours, where Save as style writes)."""

    #: The styles were read again (their names).
    loaded = Signal(object)
    #: A style was saved (its name).
    saved = Signal(str)

    def __init__(
        self,
        model: ConfigModel,
        models_dir: Callable[[], Path],
        own_file: Callable[[], Path],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.model, self._models_dir, self._own_file = model, models_dir, own_file
        self.library = StyleLibrary()
        self.ticked: list[str] = []  # in the order ticked: the order A1111 applies them
        self.background = Background(self)
        self.list = QListWidget()
        self.list.setObjectName("styles.list")
        self.list.setToolTip("Tick styles to apply to the prompt (styles.csv, as in A1111)")
        rows = self.list.fontMetrics().lineSpacing() + 6  # a check box row is a little taller than text
        self.list.setFixedHeight(rows * VISIBLE_ROWS + 2 * self.list.frameWidth())
        self.list.itemChanged.connect(self._on_item_changed)
        self.apply_button = QPushButton("Apply styles")
        self.apply_button.setObjectName("styles.apply")
        self.apply_button.setToolTip("Merge the ticked styles into the prompt and negative prompt")
        self.apply_button.clicked.connect(self.apply_ticked)
        self.save_button = QPushButton("Save as style…")
        self.save_button.setObjectName("styles.save")
        self.save_button.setToolTip("Save the prompt and negative prompt as a style in our styles.csv")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.status = QLabel()
        self.status.setObjectName("styles.status")
        self.status.setWordWrap(True)
        self.in_prompt: tuple[str, ...] = ()
        self.in_prompt_label = QLabel()
        self.in_prompt_label.setObjectName("styles.in_prompt")
        self.in_prompt_label.setWordWrap(True)
        self.in_prompt_label.hide()
        self._in_prompt_timer = QTimer(self)  # one look per burst of typing
        self._in_prompt_timer.setSingleShot(True)
        self._in_prompt_timer.setInterval(IN_PROMPT_DELAY_MS)
        self._in_prompt_timer.timeout.connect(self.update_in_prompt)
        model.changed.connect(self._on_model_changed)
        model.replaced.connect(lambda _config: self.update_in_prompt())  # a restore: at once
        buttons = QVBoxLayout()
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.save_button)
        buttons.addStretch(1)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.list, 1)
        row.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.status)
        layout.addWidget(self.in_prompt_label)
        self._update_buttons()
        self.reload()

    def reload(self) -> None:
        """Read the styles files again, off the GUI thread (ticks of styles still there stay)."""
        models_dir, own_file = self._models_dir(), self._own_file()  # resolved on the worker
        self.background.run(
            lambda: StyleLibrary.load(styles_paths(models_dir, own_file)), self._on_loaded, self._on_failed
        )

    def _on_loaded(self, library: StyleLibrary) -> None:
        self.library = library
        self.ticked = [name for name in self.ticked if name in library.names]
        self.list.blockSignals(True)
        self.list.clear()
        for style in library.styles:
            item = QListWidgetItem(style.name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            checked = style.name in self.ticked
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)
            item.setToolTip(_style_tip(style))
            self.list.addItem(item)
        self.list.blockSignals(False)
        count = len(library.styles)
        self.status.setText(
            f"{count} style{'' if count == 1 else 's'}" if count else "No styles yet: save the prompt as one"
        )
        self._update_buttons()
        self.update_in_prompt()
        self.loaded.emit(library.names)

    def _on_model_changed(self, path: str) -> None:
        if path in ("prompt", "negative_prompt"):
            self._in_prompt_timer.start()

    def update_in_prompt(self) -> None:
        """Name the styles whose text the prompts hold now (in the order they were applied)."""
        self._in_prompt_timer.stop()
        prompt, negative = self.model.get("prompt") or "", self.model.get("negative_prompt") or ""
        self.in_prompt = styles_in_prompt(self.library, prompt, negative) if self.library.styles else ()
        self.in_prompt_label.setText(f"Styles in the prompt: {', '.join(self.in_prompt)}")
        self.in_prompt_label.setVisible(bool(self.in_prompt))

    def _on_failed(self, message: str) -> None:
        self.status.setText(f"Styles not read: {message}")

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        name = item.text()
        if item.checkState() is Qt.CheckState.Checked and name not in self.ticked:
            self.ticked.append(name)
        elif item.checkState() is not Qt.CheckState.Checked and name in self.ticked:
            self.ticked.remove(name)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.apply_button.setEnabled(bool(self.ticked))

    def tick(self, *names: str) -> None:
        """Tick the styles ``names`` in this order (as clicking their boxes does)."""
        for name in names:
            for item in self.list.findItems(name, Qt.MatchFlag.MatchExactly):
                item.setCheckState(Qt.CheckState.Checked)

    def apply_ticked(self) -> None:
        """Merge the ticked styles into the prompt and negative prompt, then untick them (so
        pressing Apply again does not apply them twice). Ticked styles whose text the prompts
        already hold (:func:`~stablenew_qt.core.sweep.styles_in_prompt`) are left out."""
        prompt, negative = self.model.get("prompt") or "", self.model.get("negative_prompt") or ""
        present = set(styles_in_prompt(self.library, prompt, negative))
        already = [name for name in self.ticked if name in present]
        to_apply = [name for name in self.ticked if name not in present]
        try:
            styled, styled_negative = self.library.apply(prompt, negative, to_apply)
        except ConfigError as exc:
            self.status.setText("; ".join(p.message for p in exc.problems))
            return
        if to_apply:
            self.model.set("prompt", styled)
            self.model.set("negative_prompt", styled_negative)
        self.update_in_prompt()
        self.list.blockSignals(True)
        for index in range(self.list.count()):
            self.list.item(index).setCheckState(Qt.CheckState.Unchecked)
        self.list.blockSignals(False)
        self.ticked = []
        self._update_buttons()
        self.status.setText(_applied_text(to_apply, already))

    def _on_save_clicked(self) -> None:
        name, ok = QInputDialog.getText(self, "Save as style", "Style name:")
        if ok:
            self.save_as(name)

    def save_as(self, name: str) -> None:
        """Save the prompt and negative prompt as the style ``name`` in our styles.csv (off the GUI
        thread), then read the styles again."""
        name = name.strip()
        if not name or name.startswith("#"):
            self.status.setText("Type a style name (not starting with #)")
            return
        style = PromptStyle(name, self.model.get("prompt") or "", self.model.get("negative_prompt") or "")
        path = self._own_file()

        def write() -> Path:
            path.parent.mkdir(parents=True, exist_ok=True)
            return save_style(path, style)

        def written(_path: Path) -> None:
            self.status.setText(f"Saved style {name!r} in {path}")
            self.saved.emit(name)
            self.reload()

        self.background.run(write, written, lambda message: self.status.setText(f"Not saved: {message}"))

    def shutdown(self) -> None:
        """Wait for a read or write in progress (the window is closing)."""
        self._in_prompt_timer.stop()
        self.background.shutdown()


def _applied_text(applied: list[str], already: list[str]) -> str:
    parts = [f"Applied: {', '.join(applied)}"] if applied else []
    if already:
        parts.append(f"{'already' if applied else 'Already'} in the prompt: {', '.join(already)}")
    return "; ".join(parts)


def _style_tip(style: PromptStyle) -> str:
    where = f"\n(from {style.path})" if style.path else ""
    return f"Prompt: {style.prompt or '-'}\nNegative: {style.negative_prompt or '-'}{where}"
