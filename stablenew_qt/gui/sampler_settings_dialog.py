"""The Sampler settings dialog: A1111's Settings > Sampler parameters, RNG source, eta noise seed
delta and emphasis mode.

A1111 keeps these as global settings; here they are preferences (saved by the dialog, applied to
the window's config at start) *and* fields of every RunConfig (``rng_source``,
``eta_noise_seed_delta``, ``emphasis``, ``sampler_settings``), so each queued job carries the values
it was made with and a restored PNG brings its own. :class:`SamplerSettings` adds the menu entry,
opens the dialog and applies what it saves.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.config import RunConfig, SamplerSettings
from ..core.errors import ConfigError
from ..core.infotext_parse import EMPHASIS_MODES, RNG_SOURCES
from .config_model import ConfigModel
from .fields import tip
from .preferences import Preferences

log = logging.getLogger(__name__)

#: The RunConfig keys the dialog edits (all run-wide).
KEYS = ("rng_source", "eta_noise_seed_delta", "emphasis", "sampler_settings")

RNG_LABELS = {
    "GPU": "GPU (the device's own generator)",
    "CPU": "CPU (the same numbers on every machine)",
    "NV": "NV (NVIDIA's numbers, on any machine)",
}
EMPHASIS_LABELS = {
    "Original": "Original: weights, then restore the mean",
    "No norm": "No norm: weights only",
    "Ignore": "Ignore: read brackets, ignore weights",
    "None": "None: brackets are plain text",
}


def current_values(model: ConfigModel) -> dict[str, Any]:
    """The dialog's keys as the window's config has them now."""
    return {key: model.config.model_dump(mode="json")[key] for key in KEYS}


def usable_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (a saved preference) when RunConfig accepts them, else ``{}`` (logged)."""
    known = {key: values[key] for key in KEYS if key in values}
    try:
        RunConfig.from_dict(known)
    except ConfigError as exc:
        log.warning("the saved sampler settings are not usable and were dropped: %s", exc)
        return {}
    return known


def apply_values(model: ConfigModel, values: dict[str, Any]) -> None:
    for key, value in values.items():
        model.set(key, value)


def _spin(lo: float, hi: float, step: float, decimals: int, tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setDecimals(decimals)
    box.setToolTip(tooltip)
    return box


class SamplerSettingsDialog(QDialog):
    """Edits a copy of the values; :meth:`values` gives what the user chose."""

    def __init__(self, values: dict[str, Any], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Sampler settings")
        self.setObjectName("sampler_settings.dialog")
        self.rng = QComboBox()
        self.rng.setObjectName("sampler_settings.rng_source")
        for source in RNG_SOURCES:
            self.rng.addItem(RNG_LABELS[source], source)
        self.rng.setToolTip(tip("Where the noise comes from.", "Random number generator source"))
        self.ensd = QSpinBox()
        self.ensd.setObjectName("sampler_settings.eta_noise_seed_delta")
        self.ensd.setRange(0, 2**31 - 1)  # QSpinBox is 32-bit signed; A1111's usual 31337 fits
        self.ensd.setToolTip(
            tip("Added to the seed of the ancestral samplers' extra noise.", "Eta noise seed delta")
        )
        self.emphasis = QComboBox()
        self.emphasis.setObjectName("sampler_settings.emphasis")
        for mode in EMPHASIS_MODES:
            self.emphasis.addItem(EMPHASIS_LABELS[mode], mode)
        self.emphasis.setToolTip(tip("How (word:1.2) weights apply.", "Emphasis mode"))
        self.eta_default = QCheckBox("Sampler's default")
        self.eta_default.setObjectName("sampler_settings.eta_default")
        self.eta_default.setToolTip("1 for the ancestral and SDE samplers, 0 for DDIM")
        self.eta = _spin(0, 1, 0.01, 2, tip("Noise added at each step (ancestral, SDE, DDIM).", "Eta"))
        self.eta.setObjectName("sampler_settings.eta")
        self.eta_default.toggled.connect(lambda on: self.eta.setEnabled(not on))
        eta_row = QHBoxLayout()
        eta_row.addWidget(self.eta_default)
        eta_row.addWidget(self.eta, 1)
        self.s_churn = _spin(0, 100, 0.01, 2, tip("Euler, Heun and DPM2 only.", "sigma churn"))
        self.s_tmin = _spin(0, 10, 0.01, 2, tip("Euler, Heun and DPM2 only.", "sigma tmin"))
        self.s_tmax = _spin(0, 999, 0.1, 1, tip("Euler, Heun and DPM2 only; 0 = infinity.", "sigma tmax"))
        self.s_tmax.setSpecialValueText("infinity")
        self.s_noise = _spin(0, 1.1, 0.001, 3, tip("Scale of the extra noise.", "sigma noise"))
        self.sgm = QCheckBox("SGM noise multiplier")
        self.sgm.setToolTip(
            tip("Scale the starting noise as SGM's reference code does.", "SGM noise multiplier")
        )
        self.discard = QCheckBox("Always discard the penultimate sigma")
        self.discard.setToolTip(
            tip("Drop the next-to-last step of the schedule.", "Always discard next-to-last sigma")
        )
        for name in ("s_churn", "s_tmin", "s_tmax", "s_noise", "sgm", "discard"):
            getattr(self, name).setObjectName(f"sampler_settings.{name}")
        self.note = QLabel("These apply to every stage and are saved for the next session.")
        self.note.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Random numbers", self.rng)
        form.addRow("Eta noise seed delta", self.ensd)
        form.addRow("Emphasis", self.emphasis)
        form.addRow("Eta", eta_row)
        form.addRow("Sigma churn", self.s_churn)
        form.addRow("Sigma tmin", self.s_tmin)
        form.addRow("Sigma tmax", self.s_tmax)
        form.addRow("Sigma noise", self.s_noise)
        form.addRow(self.sgm)
        form.addRow(self.discard)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok
            | QDialogButtonBox.StandardButton.Cancel
            | QDialogButtonBox.StandardButton.RestoreDefaults
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        restore = buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        restore.setToolTip("A1111's defaults")
        restore.clicked.connect(self._on_restore_clicked)
        layout = QVBoxLayout(self)
        layout.addWidget(self.note)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.show_values(values)

    def show_values(self, values: dict[str, Any]) -> None:
        self.rng.setCurrentIndex(max(0, self.rng.findData(values.get("rng_source", "GPU"))))
        self.ensd.setValue(min(int(values.get("eta_noise_seed_delta", 0)), self.ensd.maximum()))
        self.emphasis.setCurrentIndex(max(0, self.emphasis.findData(values.get("emphasis", "Original"))))
        settings = SamplerSettings.model_validate(values.get("sampler_settings", {}))
        self.eta_default.setChecked(settings.eta is None)
        self.eta.setEnabled(settings.eta is not None)
        self.eta.setValue(1.0 if settings.eta is None else settings.eta)
        self.s_churn.setValue(settings.s_churn)
        self.s_tmin.setValue(settings.s_tmin)
        self.s_tmax.setValue(settings.s_tmax)
        self.s_noise.setValue(settings.s_noise)
        self.sgm.setChecked(settings.sgm_noise_multiplier)
        self.discard.setChecked(settings.always_discard_next_to_last_sigma)

    def values(self) -> dict[str, Any]:
        return {
            "rng_source": self.rng.currentData(),
            "eta_noise_seed_delta": self.ensd.value(),
            "emphasis": self.emphasis.currentData(),
            "sampler_settings": {
                "eta": None if self.eta_default.isChecked() else round(self.eta.value(), 4),
                "s_churn": round(self.s_churn.value(), 4),
                "s_tmin": round(self.s_tmin.value(), 4),
                "s_tmax": round(self.s_tmax.value(), 4),
                "s_noise": round(self.s_noise.value(), 4),
                "sgm_noise_multiplier": self.sgm.isChecked(),
                "always_discard_next_to_last_sigma": self.discard.isChecked(),
            },
        }

    def _on_restore_clicked(self) -> None:
        self.show_values(RunConfig().model_dump(mode="json"))


class SamplerSettingsEntry(QObject):
    """The "Sampler settings…" menu entry: opens the dialog on the window's config values, and on
    OK writes them into the config (so the next job carries them) and into the preferences.
    At start the saved preference is applied to the config."""

    def __init__(self, model: ConfigModel, prefs: Preferences, parent: QWidget) -> None:
        super().__init__(parent)
        self.model = model
        self.prefs = prefs
        self._window = parent
        self.dialog: SamplerSettingsDialog | None = None
        self.action = QAction("Sampler settings…", parent)
        self.action.setObjectName("menu.sampler_settings")
        self.action.setToolTip("RNG source, eta noise seed delta, emphasis and sampler parameters")
        self.action.triggered.connect(self.open_dialog)
        apply_values(model, usable_defaults(prefs.sampler_defaults))
        model.replaced.connect(self._on_model_replaced)

    def add_to(self, menu: QMenu) -> None:
        menu.addSeparator()
        menu.addAction(self.action)

    def open_dialog(self) -> SamplerSettingsDialog:
        """Show the dialog (modeless: the window stays live) on the config's current values."""
        if self.dialog is None:
            self.dialog = SamplerSettingsDialog(current_values(self.model), self._window)
            self.dialog.accepted.connect(self._on_dialog_accepted)
        else:
            self.dialog.show_values(current_values(self.model))
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def _on_model_replaced(self, _config: object) -> None:
        # A restored image brings its own values: an open dialog shows them.
        if self.dialog is not None and self.dialog.isVisible():
            self.dialog.show_values(current_values(self.model))

    def _on_dialog_accepted(self) -> None:
        assert self.dialog is not None
        values = self.dialog.values()
        apply_values(self.model, values)
        self.prefs.sampler_defaults = values
