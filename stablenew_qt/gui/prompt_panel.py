"""PromptPanel (prompt, negative prompt, seed, batch) and InputImagePanel (the file a run starts from).

The input image's preview is decoded on the panel's own worker thread (a large file or a slow
disk never holds the window); only the answer for the path shown now is applied.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRegularExpression, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QPixmap, QRegularExpressionValidator
from PySide6.QtWidgets import (
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from ..core.config import MAX_SEED
from .background import Background
from .config_model import ConfigModel
from .elided_label import breakable
from .fields import Binder, tip
from .seed_extras import SeedExtras
from .thumbnails import read_scaled
from .token_counter import PromptTokenCounters
from .weight_keys import WeightKeyFilter

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp)"
THUMB = 96
#: What the preview shows: no path, a path being read, a file that is not a readable image.
NO_IMAGE, READING, CANNOT_READ = "no image", "reading…", "cannot read\nthis image"


class PromptPanel(QGroupBox):
    """The prompt area. The seed field takes -1 (random) or 0..2**32-1."""

    def __init__(self, model: ConfigModel, parent: QWidget | None = None) -> None:
        super().__init__("Prompt", parent)
        self.model = model
        self.binder = b = Binder(model)
        self.last_seed: int | None = None
        self.prompt = b.text("prompt", tip("What to draw.", "Prompt"))
        self.prompt.setPlaceholderText("Prompt")
        self.negative = b.text("negative_prompt", tip("What to avoid.", "Negative prompt"))
        self.negative.setPlaceholderText("Negative prompt")
        self.negative.setMaximumHeight(70)
        # A1111's prompt tools: the 12/75 token counters and Ctrl+Up/Down weight editing.
        self.token_counters = PromptTokenCounters(model, self.prompt, self.negative, self)
        self.weight_keys = (WeightKeyFilter(self.prompt), WeightKeyFilter(self.negative))
        self.seed = QLineEdit()
        self.seed.setObjectName("seed")
        self.seed.setToolTip(tip("-1 picks a random seed for every run.", "Seed"))
        self.seed.setValidator(QRegularExpressionValidator(QRegularExpression(r"-1|\d{1,10}")))
        self.seed.textEdited.connect(self._on_seed_text_edited)
        self.random_button = QPushButton("Random")
        self.random_button.setToolTip("Random seed (-1)")
        self.random_button.clicked.connect(self._on_random_clicked)
        self.reuse_button = QPushButton("Reuse")
        self.reuse_button.setToolTip("Reuse the seed of the last run (A1111: Reuse seed)")
        self.reuse_button.setEnabled(False)
        self.reuse_button.clicked.connect(self._on_reuse_clicked)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed)
        seed_row.addWidget(self.random_button)
        seed_row.addWidget(self.reuse_button)
        self.batch = b.spin("batch_size", 1, 64, tip("Images per run.", "Batch size"))
        self.batch_count = b.spin(
            "batch_count", 1, 100, tip("Batches made one after another in one run.", "Batch count")
        )
        self.error_label = QLabel()
        self.error_label.setObjectName("prompt.error")
        self.error_label.setWordWrap(True)
        self.error_label.setProperty("role", "error")
        self.error_label.hide()
        self.form = form = QFormLayout()
        form.addRow("Seed", seed_row)
        self.seed_extras = SeedExtras(model)  # A1111's "Extra": variation seed, resize seed from
        form.addRow(self.seed_extras)
        batch_row = QHBoxLayout()
        batch_row.addWidget(self.batch)
        batch_row.addWidget(QLabel("Batch count"))
        batch_row.addWidget(self.batch_count)
        form.addRow("Batch size", batch_row)
        layout = QVBoxLayout(self)
        layout.addWidget(self.prompt, 2)
        layout.addWidget(self.negative, 1)
        layout.addLayout(form)
        layout.addWidget(self.error_label)
        model.replaced.connect(self._on_replaced)
        self._show_seed()

    def add_styles(self, picker: QWidget) -> None:
        """Show the styles picker under the seed and batch rows."""
        self.form.addRow("Styles", picker)

    def _show_seed(self) -> None:
        with signals_blocked(self.seed):
            self.seed.setText(str(self.model.get("seed")))

    def _on_seed_text_edited(self, text: str) -> None:
        if text and text != "-":
            self.model.set("seed", min(int(text), MAX_SEED + 1))

    def _on_random_clicked(self) -> None:
        self.model.set("seed", -1)
        self._show_seed()

    def _on_reuse_clicked(self) -> None:
        if self.last_seed is not None:
            self.model.set("seed", self.last_seed)
            self._show_seed()

    def remember_seed(self, seed: int) -> None:
        """The seed the last run used (for the reuse button)."""
        self.last_seed = seed
        self.reuse_button.setEnabled(True)

    def _on_replaced(self, _config: object) -> None:
        self.binder.refresh()
        self._show_seed()

    def show_problems(self, problems: list[str]) -> None:
        text = "\n".join(problems)
        self.error_label.setText(breakable(text))  # a long path wraps instead of widening the window
        self.error_label.setToolTip(text)
        self.error_label.setVisible(bool(problems))


class InputImagePanel(QGroupBox):
    """The image img2img or upscale starts from when txt2img is off: picker, thumbnail and drop.

    The thumbnail is read off the GUI thread: it says "reading…" until the answer arrives, and an
    answer for a path no longer shown is dropped. Call :meth:`shutdown` before the panel goes.
    """

    #: A preview was applied: (the path, True if it shows the image, False for "cannot read").
    previewShown = Signal(str, bool)

    def __init__(self, model: ConfigModel, parent: QWidget | None = None) -> None:
        super().__init__("Input image", parent)
        self.model = model
        self.setObjectName("input.card")
        self.setAcceptDrops(True)
        self.binder = Binder(model)
        self.path = self.binder.line(
            "input_image_path",
            tip("The image to start from (drop one here).", "img2img image"),
            empty_is_none=True,
        )
        # A file dropped on the path field replaces the path (the panel takes the drop), instead
        # of QLineEdit's text drop inserting the file's URL at the cursor.
        self.path.setAcceptDrops(False)
        browse = QPushButton("Browse…")
        browse.setToolTip("Choose the input image")
        browse.clicked.connect(self._on_browse_clicked)
        self.thumbnail = QLabel()
        self.thumbnail.setFixedSize(THUMB, THUMB)
        self.thumbnail.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.thumbnail.setObjectName("input.thumbnail")
        self.thumbnail.setWordWrap(True)
        self.error_label = QLabel()
        self.error_label.setObjectName("input.error")
        self.error_label.setWordWrap(True)
        self.error_label.setProperty("role", "error")
        self.error_label.hide()
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        column = QVBoxLayout()
        column.addLayout(row)
        column.addWidget(self.error_label)
        column.addStretch(1)
        layout = QHBoxLayout(self)
        layout.addWidget(self.thumbnail)
        layout.addLayout(column, 1)
        self._shown_path: str | None = ""
        self._reader = Background(self)
        model.changed.connect(self._on_model_changed)
        model.replaced.connect(self._on_replaced)
        self._on_model_changed("")

    def _on_browse_clicked(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Input image", "", IMAGE_FILTER)
        if name:
            self.set_image(Path(name))

    def set_image(self, path: Path) -> None:
        self.model.set("input_image_path", str(path))
        self.binder.refresh()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        urls = [u for u in event.mimeData().urls() if u.isLocalFile()]
        if urls:
            self.set_image(Path(urls[0].toLocalFile()))
            event.acceptProposedAction()

    def _on_replaced(self, _config: object) -> None:
        self.binder.refresh()
        self._on_model_changed("")

    def _on_model_changed(self, _path: str) -> None:
        self.setEnabled(not bool(self.model.get("txt2img.enabled")))
        path = self.model.get("input_image_path")
        if path == self._shown_path:
            return
        self._shown_path = path
        self.thumbnail.setPixmap(QPixmap())
        self.thumbnail.setToolTip(path or "")
        if not path:
            self.thumbnail.setText(NO_IMAGE)
            return
        self.thumbnail.setText(READING)
        # Typing a path queues a read per keystroke: one whose path is no longer shown is skipped.
        self._reader.run(
            lambda: read_scaled(Path(path), THUMB) if path == self._shown_path else None,
            lambda image: self._on_preview_read(path, image),
            lambda message: self._on_preview_failed(path, message),
        )

    def _on_preview_read(self, path: str, image: QImage | None) -> None:
        if path != self._shown_path or image is None:
            return  # superseded by a later path
        if image.isNull():
            self._on_preview_failed(path, "not a readable image")
            return
        self.thumbnail.setPixmap(QPixmap.fromImage(image))
        self.previewShown.emit(path, True)

    def _on_preview_failed(self, path: str, message: str) -> None:
        if path != self._shown_path:
            return
        self.thumbnail.setText(CANNOT_READ)
        self.thumbnail.setToolTip(f"{path}: {message}")
        self.previewShown.emit(path, False)

    def wait(self, msecs: int = 10_000) -> bool:
        """Wait for the previews asked so far to be read (tests)."""
        return self._reader.wait(msecs)

    def shutdown(self) -> None:
        """Stop reading previews (the window is closing); no answer is applied after this."""
        self._reader.shutdown()

    def show_problems(self, problems: list[str]) -> None:
        text = "\n".join(problems)
        self.error_label.setText(breakable(text))  # a long path wraps instead of widening the window
        self.error_label.setToolTip(text)
        self.error_label.setVisible(bool(problems))
