"""SeedExtras: A1111's "Extra" seed options under the seed row.

A1111 hides them behind an "Extra" checkbox next to the seed: the variation seed (with the same
random and reuse buttons as the seed), the variation strength slider, and "Resize seed from"
width and height. They write ``subseed``, ``subseed_strength``, ``seed_resize_from_w`` and
``seed_resize_from_h`` of the ConfigModel; the box opens by itself when a restored config uses them.
"""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from ..core.config import MAX_SEED
from .config_model import ConfigModel
from .fields import Binder, tip

#: The strength slider's steps per unit (A1111's slider steps by 0.01).
STRENGTH_STEPS = 100


class SeedExtras(QWidget):
    """The "Extra" checkbox and the variation / resize-seed options it shows."""

    def __init__(self, model: ConfigModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.binder = b = Binder(model)
        self.last_subseed: int | None = None
        self.extra = QCheckBox("Extra")
        self.extra.setObjectName("seed.extra")
        self.extra.setToolTip(tip("Show the variation seed and resize-seed options.", "Extra"))
        self.extra.toggled.connect(self._on_extra_toggled)
        self.subseed = QLineEdit()
        self.subseed.setObjectName("subseed")
        self.subseed.setToolTip(
            tip(
                "A second seed whose noise is mixed into the seed's; -1 picks a random one.",
                "Variation seed",
            )
        )
        self.subseed.setValidator(QRegularExpressionValidator(QRegularExpression(r"-1|\d{1,10}")))
        self.subseed.textEdited.connect(self._on_subseed_text_edited)
        self.random_button = QPushButton("Random")
        self.random_button.setObjectName("subseed.random")
        self.random_button.setToolTip("Random variation seed (-1)")
        self.random_button.clicked.connect(self._on_random_clicked)
        self.reuse_button = QPushButton("Reuse")
        self.reuse_button.setObjectName("subseed.reuse")
        self.reuse_button.setToolTip("Reuse the variation seed of the last run")
        self.reuse_button.setEnabled(False)
        self.reuse_button.clicked.connect(self._on_reuse_clicked)
        subseed_row = QHBoxLayout()
        subseed_row.addWidget(self.subseed)
        subseed_row.addWidget(self.random_button)
        subseed_row.addWidget(self.reuse_button)
        self.strength_slider = QSlider(Qt.Orientation.Horizontal)
        self.strength_slider.setObjectName("subseed_strength.slider")
        self.strength_slider.setRange(0, STRENGTH_STEPS)
        self.strength_slider.setToolTip("How far the noise moves towards the variation seed's; 0 = off")
        self.strength_slider.valueChanged.connect(self._on_strength_slider_changed)
        self.strength = b.dspin(
            "subseed_strength",
            0,
            1,
            tip("How far the noise moves towards the variation seed's; 0 = off.", "Variation strength"),
            0.01,
        )
        strength_row = QHBoxLayout()
        strength_row.addWidget(self.strength_slider, 1)
        strength_row.addWidget(self.strength)
        resize_tip = "Draw the noise at this size, so a seed keeps its picture at another size; 0 = off."
        self.resize_w = b.spin("seed_resize_from_w", 0, 8192, tip(resize_tip, "Resize seed from width"), 8)
        self.resize_h = b.spin("seed_resize_from_h", 0, 8192, tip(resize_tip, "Resize seed from height"), 8)
        self.resize_w.setSpecialValueText("off")
        self.resize_h.setSpecialValueText("off")
        resize_row = QHBoxLayout()
        resize_row.addWidget(self.resize_w)
        resize_row.addWidget(QLabel("×"))
        resize_row.addWidget(self.resize_h)
        self.box = QWidget()
        self.box.setObjectName("seed.extras")
        form = QFormLayout(self.box)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Variation seed", subseed_row)
        form.addRow("Variation strength", strength_row)
        form.addRow("Resize seed from", resize_row)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.extra)
        layout.addWidget(self.box)
        self.box.setVisible(False)
        model.changed.connect(self._on_model_changed)
        model.replaced.connect(self._on_replaced)
        self._show_values()
        self._open_if_used()

    # -- showing ---------------------------------------------------------------------------
    def _show_values(self) -> None:
        with signals_blocked(self.subseed):
            self.subseed.setText(str(self.model.get("subseed")))
        with signals_blocked(self.strength_slider):
            self.strength_slider.setValue(round(float(self.model.get("subseed_strength")) * STRENGTH_STEPS))

    def _in_use(self) -> bool:
        config = self.model.config
        return config.subseed_strength > 0 or config.seed_resize_from_w > 0 or config.seed_resize_from_h > 0

    def _open_if_used(self) -> None:
        if self._in_use():
            self.extra.setChecked(True)

    def _on_model_changed(self, path: str) -> None:
        if path in ("subseed", "subseed_strength"):
            self._show_values()

    def _on_replaced(self, _config: object) -> None:
        self.binder.refresh()
        self._show_values()
        self._open_if_used()

    # -- editing ---------------------------------------------------------------------------
    def _on_extra_toggled(self, on: bool) -> None:
        self.box.setVisible(on)

    def _on_subseed_text_edited(self, text: str) -> None:
        if text and text != "-":
            self.model.set("subseed", min(int(text), MAX_SEED + 1))

    def _on_random_clicked(self) -> None:
        self.model.set("subseed", -1)
        self._show_values()

    def _on_reuse_clicked(self) -> None:
        if self.last_subseed is not None:
            self.model.set("subseed", self.last_subseed)
            self._show_values()

    def _on_strength_slider_changed(self, value: int) -> None:
        self.model.set("subseed_strength", value / STRENGTH_STEPS)

    def remember_subseed(self, subseed: int) -> None:
        """The variation seed the last run used (for the reuse button)."""
        self.last_subseed = subseed
        self.reuse_button.setEnabled(True)
