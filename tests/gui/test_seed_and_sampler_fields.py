"""The window's controls for A1111's seed extras, hires overrides, img2img noise multiplier and the
Sampler settings dialog: each changes the RunConfig the window queues, a restored image sets them,
and the dialog's choices are saved as preferences. FakeExecutor engine, real JobQueue file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSlider, QWidget
from superqt import QCollapsible

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.gui.config_model import ConfigModel
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.preferences import Preferences
from stablenew_qt.gui.sampler_settings_dialog import SamplerSettingsDialog, SamplerSettingsEntry
from stablenew_qt.gui.testing import (
    MakeMainWindow,
    choose,
    generate_and_wait,
    restore_and_wait,
    set_spin,
    small_txt2img,
    type_text,
    widget,
)


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


def queued(qtbot: Any, window: MainWindow, queue: JobQueue) -> RunConfig:
    """Press "Add to queue" and return the config of the job it added."""
    before = len(queue.list())
    assert window.add_to_queue_button.isEnabled(), window.error_label.text()
    window.add_to_queue_button.click()
    qtbot.waitUntil(lambda: len(queue.list()) == before + 1, timeout=5000)
    return queue.list()[-1].config


def test_seed_extras_are_hidden_until_extra_is_ticked(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    extras = widget(window, "seed.extras")
    extra = widget(window, "seed.extra")
    assert isinstance(extra, QCheckBox)
    assert not extras.isVisibleTo(window)
    extra.setChecked(True)
    assert extras.isVisibleTo(window)


def test_seed_extras_reach_the_queued_config(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    widget(window, "seed.extra").setProperty("checked", True)
    type_text(qtbot, window, "subseed", "4242")
    set_spin(qtbot, window, "subseed_strength", 0.35)
    set_spin(qtbot, window, "seed_resize_from_w", 512)
    set_spin(qtbot, window, "seed_resize_from_h", 640)
    config = queued(qtbot, window, queue)
    assert (config.subseed, config.subseed_strength) == (4242, 0.35)
    assert (config.seed_resize_from_w, config.seed_resize_from_h) == (512, 640)


def test_strength_slider_and_box_follow_each_other(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    slider = widget(window, "subseed_strength.slider")
    assert isinstance(slider, QSlider)
    slider.setValue(60)
    assert window.model.config.subseed_strength == 0.6
    set_spin(qtbot, window, "subseed_strength", 0.25)
    assert slider.value() == 25


def test_variation_seed_random_and_reuse(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    extras = window.prompt_panel.seed_extras
    type_text(qtbot, window, "subseed", "77")
    assert window.model.config.subseed == 77
    extras.random_button.click()
    assert window.model.config.subseed == -1
    subseed = widget(window, "subseed")
    assert isinstance(subseed, QLineEdit) and subseed.text() == "-1"
    assert not extras.reuse_button.isEnabled()
    extras.remember_subseed(99)
    extras.reuse_button.click()
    assert (window.model.config.subseed, subseed.text()) == (99, "99")


def test_reuse_takes_the_last_run_s_variation_seed(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    small_txt2img(qtbot, window)
    widget(window, "seed.extra").setProperty("checked", True)
    set_spin(qtbot, window, "subseed_strength", 0.5)
    assert window.model.config.subseed == -1  # random: drawn by the run
    generate_and_wait(qtbot, window)
    extras = window.prompt_panel.seed_extras
    assert extras.reuse_button.isEnabled()
    extras.reuse_button.click()
    assert window.model.config.subseed == extras.last_subseed and extras.last_subseed is not None
    assert extras.last_subseed >= 0


def test_a_variation_seed_out_of_range_is_an_error_in_words(
    qtbot: Any, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    type_text(qtbot, window, "subseed", "9999999999")
    assert not window.generate_button.isEnabled()
    assert "Variation seed" in window.prompt_panel.error_label.text()
    assert "4294967295" in window.prompt_panel.error_label.text()


def test_hires_overrides_reach_the_queued_config(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    sampler = widget(window, "txt2img.hires_sampler")
    schedule = widget(window, "txt2img.hires_scheduler")
    assert isinstance(sampler, QComboBox) and isinstance(schedule, QComboBox)
    assert (sampler.currentText(), schedule.currentText()) == ("Use same sampler", "Use same scheduler")
    prompts = window.findChild(QCollapsible, "txt2img.hires_prompt_section")
    assert prompts is not None and not prompts.isExpanded()
    choose(window, "txt2img.hires_sampler", "DPM++ 2M SDE")
    choose(window, "txt2img.hires_scheduler", "Exponential")
    type_text(qtbot, window, "txt2img.hires_prompt", "sharp details")
    type_text(qtbot, window, "txt2img.hires_negative_prompt", "blur")
    t2i = queued(qtbot, window, queue).txt2img
    assert (t2i.hires_sampler, t2i.hires_scheduler) == ("DPM++ 2M SDE", "Exponential")
    assert (t2i.hires_prompt, t2i.hires_negative_prompt) == ("sharp details", "blur")
    choose(window, "txt2img.hires_sampler", "Use same sampler")
    choose(window, "txt2img.hires_scheduler", "Use same scheduler")
    assert (window.model.config.txt2img.hires_sampler, window.model.config.txt2img.hires_scheduler) == (
        None,
        None,
    )


def test_img2img_noise_multiplier_reaches_the_queued_config(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    window.cards["img2img"].setChecked(True)
    set_spin(qtbot, window, "img2img.noise_multiplier", 1.05)
    assert queued(qtbot, window, queue).img2img.noise_multiplier == 1.05


A1111_PNG_TEXT = (
    "a (lighthouse:1.2)\nNegative prompt: lowres\n"
    "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 3, Size: 512x512, "
    "Model: v1-5-pruned-emaonly, Variation seed: 42, Variation seed strength: 0.3, "
    "Seed resize from: 448x448, "
    'Denoising strength: 0.5, ENSD: 31337, RNG: CPU, Hires sampler: DPM++ 2M, Hires prompt: "a, b", '
    "Hires schedule type: Karras, Hires upscale: 2, Hires upscaler: Latent, Emphasis: No norm, "
    "Eta: 0.67, Sigma noise: 0.9, Version: v1.10.1"
)


def test_restoring_an_a1111_png_sets_every_control(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    path = tmp_path / "a1111.png"
    info = PngInfo()
    info.add_text("parameters", A1111_PNG_TEXT)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    restore_and_wait(qtbot, window, path)
    assert widget(window, "seed.extras").isVisibleTo(window)  # opened: the image uses them
    assert widget(window, "subseed").property("text") == "42"
    assert widget(window, "subseed_strength").property("value") == 0.3
    assert widget(window, "subseed_strength.slider").property("value") == 30
    assert widget(window, "seed_resize_from_w").property("value") == 448
    assert widget(window, "txt2img.hires_sampler").property("currentText") == "DPM++ 2M"
    assert widget(window, "txt2img.hires_scheduler").property("currentText") == "Karras"
    assert widget(window, "txt2img.hires_prompt").property("plainText") == "a, b"
    dialog = window.sampler_settings.open_dialog()
    assert dialog.values() == {
        "rng_source": "CPU",
        "eta_noise_seed_delta": 31337,
        "emphasis": "No norm",
        "sampler_settings": {
            "eta": 0.67,
            "s_churn": 0.0,
            "s_tmin": 0.0,
            "s_tmax": 0.0,
            "s_noise": 0.9,
            "sgm_noise_multiplier": False,
            "always_discard_next_to_last_sigma": False,
        },
    }
    dialog.reject()


def test_an_open_dialog_shows_the_values_a_restored_image_brings(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    dialog = window.sampler_settings.open_dialog()
    assert dialog.values()["rng_source"] == "GPU"
    path = tmp_path / "a1111.png"
    info = PngInfo()
    info.add_text("parameters", A1111_PNG_TEXT)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    restore_and_wait(qtbot, window, path)
    assert (dialog.values()["rng_source"], dialog.values()["emphasis"]) == ("CPU", "No norm")
    dialog.reject()


def _choose_data(box: object, data: str) -> None:
    assert isinstance(box, QComboBox)
    box.setCurrentIndex(box.findData(data))


def test_sampler_settings_dialog_sets_the_config_and_the_preferences(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    menu_actions = [a.objectName() for a in window.models_menu.actions()]
    assert "menu.sampler_settings" in menu_actions
    window.sampler_settings.action.trigger()
    dialog = window.findChild(SamplerSettingsDialog, "sampler_settings.dialog")
    assert dialog is not None and dialog.isVisible()
    _choose_data(dialog.rng, "NV")
    dialog.ensd.setValue(31337)
    _choose_data(dialog.emphasis, "Ignore")
    dialog.eta_default.setChecked(False)
    dialog.eta.setValue(0.5)
    dialog.s_churn.setValue(0.2)
    dialog.s_tmax.setValue(20)
    dialog.s_noise.setValue(0.95)
    dialog.sgm.setChecked(True)
    dialog.discard.setChecked(True)
    dialog.accept()
    config = queued(qtbot, window, queue)
    assert (config.rng_source, config.eta_noise_seed_delta, config.emphasis) == ("NV", 31337, "Ignore")
    settings = config.sampler_settings
    assert (settings.eta, settings.s_churn, settings.s_tmin, settings.s_tmax, settings.s_noise) == (
        0.5,
        0.2,
        0.0,
        20.0,
        0.95,
    )
    assert settings.sgm_noise_multiplier and settings.always_discard_next_to_last_sigma
    saved = window.prefs.sampler_defaults
    assert saved["rng_source"] == "NV" and saved["sampler_settings"]["eta"] == 0.5


def test_cancel_changes_nothing(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    dialog = window.sampler_settings.open_dialog()
    _choose_data(dialog.rng, "CPU")
    dialog.reject()
    assert window.model.config.rng_source == "GPU"
    assert window.prefs.sampler_defaults == {}


def test_restore_defaults_button_shows_a1111_s_defaults(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window(
        config=RunConfig.from_dict({"rng_source": "CPU", "sampler_settings": {"eta": 0.1}})
    )
    dialog = window.sampler_settings.open_dialog()
    assert dialog.values()["rng_source"] == "CPU"
    dialog._on_restore_clicked()
    assert dialog.values() == SamplerSettingsDialog(RunConfig().model_dump(mode="json")).values()
    assert dialog.values()["sampler_settings"]["eta"] is None
    dialog.reject()


def _prefs(tmp_path: Path) -> Preferences:
    settings = QSettings(str(tmp_path / "prefs.ini"), QSettings.Format.IniFormat)
    return Preferences(settings, models_dir=tmp_path / "models", output_dir=tmp_path / "runs")


def test_saved_preferences_apply_to_the_config_at_start(qtbot: Any, tmp_path: Path) -> None:
    prefs = _prefs(tmp_path)
    prefs.sampler_defaults = {
        "rng_source": "CPU",
        "emphasis": "No norm",
        "sampler_settings": {"s_noise": 0.9},
    }
    again = _prefs(tmp_path)  # a new session reads the same file
    model = ConfigModel(RunConfig())
    parent = QWidget()
    qtbot.addWidget(parent)
    SamplerSettingsEntry(model, again, parent)
    assert (model.config.rng_source, model.config.emphasis) == ("CPU", "No norm")
    assert model.config.sampler_settings.s_noise == 0.9


def test_unusable_saved_preferences_are_dropped(qtbot: Any, tmp_path: Path) -> None:
    prefs = _prefs(tmp_path)
    prefs.qsettings.setValue("engine/sampler_settings", '{"rng_source": "TPU"}')
    model = ConfigModel(RunConfig(rng_source="CPU"))
    parent = QWidget()
    qtbot.addWidget(parent)
    SamplerSettingsEntry(model, prefs, parent)
    assert model.config.rng_source == "CPU" and model.error is None
    prefs.qsettings.setValue("engine/sampler_settings", "not json")
    assert prefs.sampler_defaults == {}


def test_batch_count_reaches_the_queued_config(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    set_spin(qtbot, window, "batch_size", 2)
    set_spin(qtbot, window, "batch_count", 3)
    config = queued(qtbot, window, queue)
    assert (config.batch_size, config.batch_count) == (2, 3)
    assert window.prompt_panel.batch_count.maximum() == 100
