"""The ADetailer card: one tab per unit, the common knobs visible and the rest under "Advanced"."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QPushButton, QTabWidget, QVBoxLayout, QWidget
from superqt import QCollapsible

from ..core.config import ADETAILER_SAME, MAX_ADETAILER_UNITS, ADetailerUnit
from ..core.samplers import SAMPLERS, SCHEDULERS
from .config_model import ConfigModel
from .fields import Binder, set_items, tip
from .services import ModelChoices
from .stage_cards import StageCard


class UnitPage(QWidget):
    """The knobs of ADetailer unit ``index`` (paths ``adetailer.units.<index>.*``)."""

    def __init__(self, model: ConfigModel, index: int, choices: ModelChoices) -> None:
        super().__init__()
        self.binder = b = Binder(model)
        p = f"adetailer.units.{index}."
        form = QFormLayout()
        form.addRow(
            b.check(p + "adetailer_tab_enable", "Enable this unit", tip("Run this unit.", "Enable this tab"))
        )
        self.detector = b.combo(
            p + "adetailer_model",
            _detectors(choices),
            tip("Detector; 'None' skips the unit.", "ADetailer model"),
            editable=True,
        )
        form.addRow("Detector", self.detector)
        prompt = b.text(p + "adetailer_prompt", tip("Empty: the main prompt.", "ADetailer prompt"))
        prompt.setMaximumHeight(50)
        form.addRow("Prompt", prompt)
        negative = b.text(
            p + "adetailer_negative_prompt", tip("Empty: main negative.", "ADetailer negative prompt")
        )
        negative.setMaximumHeight(50)
        form.addRow("Negative", negative)
        form.addRow(
            "Confidence",
            b.dspin(
                p + "adetailer_confidence",
                0,
                1,
                tip("Detection threshold.", "Detection model confidence threshold"),
            ),
        )
        form.addRow(
            "Denoise",
            b.dspin(p + "adetailer_strength", 0, 1, tip("Inpaint strength.", "Inpaint denoising strength")),
        )
        form.addRow(
            "Mask blur",
            b.spin(p + "adetailer_mask_blur", 0, 64, tip("Blur mask edges (px).", "Inpaint mask blur")),
        )
        form.addRow(
            "Dilate/erode",
            b.spin(
                p + "adetailer_dilate_erode",
                -128,
                128,
                tip("Grow or shrink masks.", "Mask erosion (-) / dilation (+)"),
            ),
        )
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self._advanced(p, choices))
        layout.addStretch(1)

    def _advanced(self, p: str, choices: ModelChoices) -> QCollapsible:
        b = self.binder
        section = QCollapsible("Advanced")
        body = QWidget()
        f = QFormLayout(body)
        f.addRow(
            "Classes",
            b.line(
                p + "adetailer_model_classes",
                tip("YOLO-World classes, comma separated.", "ADetailer detector classes"),
            ),
        )
        f.addRow(
            "Filter by",
            b.combo(
                p + "adetailer_mask_filter_method",
                ("Area", "Confidence"),
                tip("Keep top k by.", "Mask only the top k largest (0 to disable)"),
            ),
        )
        f.addRow("Top k", b.spin(p + "adetailer_mask_k", 0, 10, tip("0: keep all.", "Mask only the top k")))
        f.addRow(
            "Min area ratio",
            b.dspin(
                p + "adetailer_mask_min_ratio", 0, 1, tip("Ignore smaller.", "Mask min area ratio"), 0.01
            ),
        )
        f.addRow(
            "Max area ratio",
            b.dspin(p + "adetailer_mask_max_ratio", 0, 1, tip("Ignore larger.", "Mask max area ratio"), 0.01),
        )
        f.addRow(
            "X offset",
            b.spin(p + "adetailer_x_offset", -200, 200, tip("Move masks (px).", "Mask x(→) offset")),
        )
        f.addRow(
            "Y offset",
            b.spin(p + "adetailer_y_offset", -200, 200, tip("Move masks (px).", "Mask y(↑) offset")),
        )
        f.addRow(
            "Merge",
            b.combo(
                p + "adetailer_mask_merge_invert",
                ("None", "Merge", "Merge and Invert"),
                tip("Combine masks.", "Mask merge mode"),
            ),
        )
        f.addRow(
            b.check(
                p + "adetailer_inpaint_only_masked",
                "Inpaint only masked",
                tip("Crop to the mask.", "Inpaint only masked"),
            )
        )
        f.addRow(
            "Padding",
            b.spin(
                p + "adetailer_inpaint_only_masked_padding",
                0,
                256,
                tip("Context around the crop.", "Inpaint only masked padding, pixels"),
            ),
        )
        for flag, label, widget in self._overrides(p, choices):
            row = QHBoxLayout()
            use = b.check(
                p + flag, "", tip(f"Use a separate {label.lower()}.", f"Use separate {label.lower()}")
            )
            use.setObjectName(f"{p}{flag}.{label}")
            row.addWidget(use)
            row.addWidget(widget)
            f.addRow(label, row)
        section.addWidget(body)
        return section

    def _overrides(self, p: str, choices: ModelChoices) -> list[tuple[str, str, QWidget]]:
        b = self.binder
        return [
            (
                "adetailer_use_inpaint_width_height",
                "Width",
                b.spin(p + "adetailer_inpaint_width", 64, 2048, tip("Inpaint width.", "inpaint width"), 8),
            ),
            (
                "adetailer_use_inpaint_width_height",
                "Height",
                b.spin(p + "adetailer_inpaint_height", 64, 2048, tip("Inpaint height.", "inpaint height"), 8),
            ),
            (
                "adetailer_use_steps",
                "Steps",
                b.spin(p + "adetailer_steps", 1, 150, tip("Unit steps.", "ADetailer steps")),
            ),
            (
                "adetailer_use_cfg_scale",
                "CFG",
                b.dspin(p + "adetailer_cfg_scale", 0, 30, tip("Unit CFG.", "ADetailer CFG scale"), 0.5),
            ),
            (
                "adetailer_use_checkpoint",
                "Checkpoint",
                b.combo(
                    p + "adetailer_checkpoint",
                    choices.checkpoints,
                    tip("Unit checkpoint.", "ADetailer checkpoint"),
                    editable=True,
                    none_text="",
                ),
            ),
            (
                "adetailer_use_vae",
                "VAE",
                b.combo(
                    p + "adetailer_vae",
                    choices.vaes,
                    tip("Unit VAE.", "ADetailer VAE"),
                    editable=True,
                    none_text="",
                ),
            ),
            (
                "adetailer_use_sampler",
                "Sampler",
                b.combo(p + "adetailer_sampler", SAMPLERS, tip("Unit sampler.", "ADetailer sampler")),
            ),
            (
                "adetailer_use_sampler",
                "Schedule",
                b.combo(
                    p + "adetailer_scheduler",
                    (ADETAILER_SAME, *SCHEDULERS),
                    tip("Unit schedule.", "ADetailer scheduler"),
                ),
            ),
            (
                "adetailer_use_noise_multiplier",
                "Noise multiplier",
                b.dspin(
                    p + "adetailer_noise_multiplier",
                    0.5,
                    1.5,
                    tip("Unit noise.", "noise multiplier for img2img"),
                ),
            ),
            (
                "adetailer_use_clip_skip",
                "Clip skip",
                b.spin(p + "adetailer_clip_skip", 1, 12, tip("Unit clip skip.", "ADetailer CLIP skip")),
            ),
        ]


def _detectors(choices: ModelChoices) -> tuple[str, ...]:
    # Installed detectors only (issue 17, item 4: four uninstalled standard names were offered);
    # "None" turns a unit off. A name typed or restored that is not installed is shown as such.
    return (*dict.fromkeys(choices.detectors), "None")


class ADetailerCard(StageCard):
    """ADetailer: always the last stage; one tab per unit (1 to 15)."""

    def __init__(self, model: ConfigModel, choices: ModelChoices, parent: QWidget | None = None) -> None:
        super().__init__(model, "adetailer", "ADetailer", parent)
        self.choices = choices
        self.tabs = QTabWidget()
        self.tabs.setObjectName("adetailer.tabs")
        buttons = QHBoxLayout()
        self.add_button = QPushButton("Add unit")
        self.add_button.setToolTip("Add an ADetailer tab (A1111: ADetailer max models)")
        self.add_button.clicked.connect(self._on_add_clicked)
        self.remove_button = QPushButton("Remove unit")
        self.remove_button.setToolTip("Remove the current tab")
        self.remove_button.clicked.connect(self._on_remove_clicked)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        self.form.addRow(self.tabs)
        self.form.addRow(buttons)
        self._rebuild()

    def _units(self) -> list[dict[str, Any]]:
        return list(self.model.get("adetailer.units"))

    def _rebuild(self) -> None:
        current = self.tabs.currentIndex()
        while self.tabs.count():
            page = self.tabs.widget(0)
            self.tabs.removeTab(0)
            if page is not None:
                page.deleteLater()
        for i in range(len(self._units())):
            self.tabs.addTab(UnitPage(self.model, i, self.choices), f"Unit {i + 1}")
        self.tabs.setCurrentIndex(min(max(current, 0), self.tabs.count() - 1))
        self.add_button.setEnabled(self.tabs.count() < MAX_ADETAILER_UNITS)
        self.remove_button.setEnabled(self.tabs.count() > 1)

    def page(self, index: int) -> UnitPage:
        page = self.tabs.widget(index)
        assert isinstance(page, UnitPage)
        return page

    def _on_add_clicked(self) -> None:
        self.model.set_units([*self._units(), ADetailerUnit().model_dump(mode="json")])
        self._rebuild()
        self.tabs.setCurrentIndex(self.tabs.count() - 1)

    def _on_remove_clicked(self) -> None:
        units = self._units()
        del units[self.tabs.currentIndex()]
        self.model.set_units(units)
        self._rebuild()

    def _on_replaced(self, config: object) -> None:
        super()._on_replaced(config)
        if self.tabs.count() != len(self._units()):
            self._rebuild()
        else:
            for i in range(self.tabs.count()):
                self.page(i).binder.refresh()

    def set_choices(self, choices: ModelChoices) -> None:
        self.choices = choices
        for i in range(self.tabs.count()):
            set_items(self.page(i).detector, _detectors(choices))
