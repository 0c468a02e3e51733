"""CompareView: two images side by side (issue 17: side-by-side compare, as A1111's compare
extensions show it).

Both images are shown at the same height, each under its label, with one zoom for both (Ctrl+wheel,
+ / -, 0 fits) and their scroll bars moving together, so the same region of each is in view. Below
them, the parameters that differ: one row per infotext key whose value is not the same (the prompt
and negative prompt count as keys). Files are read on the loader's pool, never on the GUI thread.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QCloseEvent, QImage, QKeyEvent, QKeySequence, QPixmap, QWheelEvent
from PySide6.QtWidgets import (
    QDialog,
    QGridLayout,
    QHeaderView,
    QLabel,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.infotext_parse import ParsedInfotext, parse_infotext
from . import image_facts
from .image_facts import ImageFacts
from .image_viewer import ZOOM_RANGE, ZOOM_STEP, read_full
from .thumbnails import ThumbnailLoader

#: What a key missing from one image's infotext shows.
ABSENT = "—"
PROMPT_KEY, NEGATIVE_KEY = "Prompt", "Negative prompt"


def parameter_diff(a: str, b: str) -> list[tuple[str, str, str]]:
    """The keys whose values differ between the infotexts ``a`` and ``b``, as (key, value in a,
    value in b), the prompts first, then in ``a``'s order, then keys only ``b`` has; a key one of
    them lacks shows :data:`ABSENT`."""

    def pairs(text: str) -> dict[str, str]:
        if not text:
            return {}
        parsed: ParsedInfotext = parse_infotext(text)
        return {PROMPT_KEY: parsed.prompt, NEGATIVE_KEY: parsed.negative_prompt, **parsed.params}

    one, two = pairs(a), pairs(b)
    keys = list(dict.fromkeys([*one, *two]))
    return [
        (key, one.get(key, ABSENT) or ABSENT, two.get(key, ABSENT) or ABSENT)
        for key in keys
        if one.get(key) != two.get(key) and (one.get(key) or two.get(key))
    ]


class CompareView(QDialog):
    """``paths`` (two images) side by side with ``labels``, synced zoom and their parameters' diff."""

    #: Both images and both infotexts were read (the diff is shown).
    loaded = Signal()

    def __init__(
        self,
        paths: tuple[Path, Path],
        loader: ThumbnailLoader,
        labels: tuple[str, str] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("dialog.compare")
        self.setWindowTitle(f"Compare {paths[0].name} and {paths[1].name}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.paths = paths
        self.pixmaps = [QPixmap(), QPixmap()]
        self.facts: list[ImageFacts | None] = [None, None]
        #: The height both images are shown at (px); set by :meth:`fit` and the zoom keys.
        self.shown_height = 0
        self._closed = False
        self._pending = 4  # two images and two infotexts to read
        self._build(labels or (paths[0].name, paths[1].name))
        self.resize(1200, 800)
        for side, path in enumerate(paths):
            loader.submit(partial(read_full, path), partial(self._on_image_read, side))
            loader.submit(partial(image_facts.read_image_facts, path), partial(self._on_facts_read, side))

    def _build(self, labels: tuple[str, str]) -> None:
        grid = QGridLayout()
        self.labels: list[QLabel] = []
        self.images: list[QLabel] = []
        self.areas: list[QScrollArea] = []
        for side in (0, 1):
            label = QLabel(labels[side])
            label.setObjectName(f"compare.label{side}")
            label.setToolTip(str(self.paths[side]))
            image = QLabel("Loading…")
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            area = QScrollArea()
            area.setAlignment(Qt.AlignmentFlag.AlignCenter)
            area.setWidget(image)
            grid.addWidget(label, 0, side)
            grid.addWidget(area, 1, side)
            self.labels.append(label)
            self.images.append(image)
            self.areas.append(area)
        for bar in ("horizontalScrollBar", "verticalScrollBar"):  # the same region in view
            one, two = (getattr(area, bar)() for area in self.areas)
            one.valueChanged.connect(two.setValue)
            two.valueChanged.connect(one.setValue)
        self.diff = QTableWidget(0, 3)
        self.diff.setObjectName("compare.diff")
        self.diff.setHorizontalHeaderLabels(["Parameter", "Left", "Right"])
        self.diff.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.diff.verticalHeader().setVisible(False)
        self.diff.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        top = QWidget()
        top.setLayout(grid)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top)
        split.addWidget(self.diff)
        split.setStretchFactor(0, 4)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(split)

    def diff_rows(self) -> list[tuple[str, str, str]]:
        """The table as shown: (parameter, left value, right value) per row."""

        def text(row: int, col: int) -> str:
            item = self.diff.item(row, col)
            return item.text() if item is not None else ""

        return [(text(row, 0), text(row, 1), text(row, 2)) for row in range(self.diff.rowCount())]

    def _on_image_read(self, side: int, image: QImage) -> None:
        if self._closed:
            return
        self.pixmaps[side] = QPixmap.fromImage(image)
        if self.pixmaps[side].isNull():
            self.images[side].setText("Cannot read this image")
        self.fit()
        self._maybe_loaded()

    def _on_facts_read(self, side: int, facts: ImageFacts) -> None:
        if self._closed:
            return
        self.facts[side] = facts
        left, right = self.facts
        if left is not None and right is not None:
            self._show_diff(left, right)
        self._maybe_loaded()

    def _show_diff(self, left: ImageFacts, right: ImageFacts) -> None:
        rows = parameter_diff(left.parameters, right.parameters)
        if not left.parameters or not right.parameters:  # say why a side is empty
            rows.insert(0, ("(read)", left.text[:200], right.text[:200]))
        self.diff.setRowCount(len(rows))
        for row, values in enumerate(rows):
            for col, text in enumerate(values):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.diff.setItem(row, col, item)
        if not rows:
            self.diff.setRowCount(1)
            self.diff.setItem(0, 0, QTableWidgetItem("(the same parameters)"))
            for col in (1, 2):
                self.diff.setItem(0, col, QTableWidgetItem(""))

    def _maybe_loaded(self) -> None:
        self._pending -= 1
        if self._pending == 0:
            self.loaded.emit()

    # -- zoom, the same for both ----------------------------------------------------------------
    def fit(self) -> None:
        """Both images at the height that fits the taller area's view (never enlarged)."""
        heights = [p.height() for p in self.pixmaps if not p.isNull()]
        if heights:
            room = min(area.viewport().height() for area in self.areas)
            self.set_height(min(room, max(heights)))

    def set_height(self, height: int) -> None:
        """Show both images ``height`` px high (their widths follow their aspect ratios)."""
        tallest = max((p.height() for p in self.pixmaps if not p.isNull()), default=0)
        if tallest == 0:
            return
        low, high = ZOOM_RANGE
        self.shown_height = round(min(max(height, tallest * low), tallest * high))
        for pixmap, image in zip(self.pixmaps, self.images, strict=True):
            if pixmap.isNull():
                continue
            scaled = pixmap.scaledToHeight(self.shown_height, Qt.TransformationMode.SmoothTransformation)
            image.setText("")
            image.setPixmap(scaled)
            image.resize(scaled.size())

    def zoom(self, factor: float) -> None:
        self.set_height(round(self.shown_height * factor))

    def wheelEvent(self, event: QWheelEvent) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(ZOOM_STEP if event.angleDelta().y() > 0 else 1 / ZOOM_STEP)
            event.accept()
            return
        super().wheelEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if event.matches(QKeySequence.StandardKey.ZoomIn) or key in (Qt.Key.Key_Plus, Qt.Key.Key_Equal):
            self.zoom(ZOOM_STEP)
        elif event.matches(QKeySequence.StandardKey.ZoomOut) or key == Qt.Key.Key_Minus:
            self.zoom(1 / ZOOM_STEP)
        elif key == Qt.Key.Key_0:
            self.fit()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closed = True
        super().closeEvent(event)

    def done(self, result: int) -> None:
        self._closed = True
        super().done(result)
