"""JT04: img2img then ADetailer, through the AppController with the real engine on tiny models,
and through the real window: with the FakeExecutor (the knobs set in the ADetailer card reach the
executor and the infotext) and with the real engine (trust dialog, only the detected faces change).

The input image has drawn faces; detection uses the committed tiny face detector
(``tests/data/face_tiny.pt``, made by ``tests/tools/make_tiny_face_detector.py``).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QCheckBox, QMessageBox
from pytestqt.qtbot import QtBot
from superqt import QCollapsible

from stablenew_qt import app
from stablenew_qt.core import events as ev
from stablenew_qt.core.config import ADetailerUnit, RunConfig
from stablenew_qt.core.controller import AppController
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.infotext_parse import parse_infotext
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.engine.adetailer.detector import DetectorTrust, file_sha256
from stablenew_qt.engine.adetailer.masks import blur_mask, preprocess_masks
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings
from stablenew_qt.gui import testing
from stablenew_qt.gui.adetailer_card import ADetailerCard
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.testing import (
    RUN_TIMEOUT_MS,
    MakeMainWindow,
    choose,
    drop_files,
    generate_and_wait,
    set_spin,
    type_text,
    widget,
)

make_main_window = testing.make_main_window  # the window fixture, shared with tests/gui

TESTS = Path(__file__).parents[1]


def _faces_image(path: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "make_tiny_face_detector", TESTS / "tools" / "make_tiny_face_detector.py"
    )
    assert spec is not None and spec.loader is not None
    tool = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, tool)
    spec.loader.exec_module(tool)
    tool.draw_faces_image(256, [(30, 40, 110, 130), (150, 60, 230, 150)], seed=5).save(path)
    return path


def test_jt04_img2img_then_adetailer(demo_models: dict[str, Path], tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "adetailer").mkdir(parents=True)
    detector = shutil.copy(TESTS / "data" / "face_tiny.pt", models / "adetailer" / "face_tiny.pt")
    engine = DiffusersExecutor(
        EngineSettings(
            models_dir=models,
            device="cpu",
            demo_dir=next(iter(demo_models.values())).parent,
            trusted_detectors=(Path(detector),),
            trust_file=tmp_path / "trust.json",
        )
    )
    controller = AppController(PipelineRunner(engine, OutputSettings(tmp_path / "runs")))
    seen: list[object] = []
    controller.subscribe(seen.append)
    config = RunConfig.from_dict(
        {
            "prompt": "portrait photo, soft light",
            "seed": REAL_ENGINE_SEED,
            "input_image_path": str(_faces_image(tmp_path / "faces.png")),
            "txt2img": {"enabled": False, "model": "demo-tiny-sd15"},
            "img2img": {"enabled": True, "steps": 4, "denoise": 0.25},
            "adetailer": {
                "enabled": True,
                "units": [
                    {"adetailer_model": "face_tiny.pt", "adetailer_steps": 4, "adetailer_use_steps": True}
                ],
            },
        }
    )

    result = controller.run_pipeline(config)

    assert result.status is LifecycleState.COMPLETED, result.error
    assert controller.state is LifecycleState.COMPLETED
    stages = [e.stage for e in seen if isinstance(e, ev.StageStarted)]
    assert stages == [StageName.IMG2IMG, StageName.ADETAILER]
    labels = {
        e.label.split(",")[0]
        for e in seen
        if isinstance(e, ev.StepProgress) and e.stage is StageName.ADETAILER
    }
    assert any(label.startswith("ADetailer 1/1: face") for label in labels), labels
    (path,) = result.image_paths
    with Image.open(path) as im:
        assert im.size == (256, 256)
    meta = read_image_metadata(path)
    assert meta.parameters is not None and "ADetailer model: face_tiny.pt" in meta.parameters
    assert meta.run_config is not None and meta.run_config.adetailer.enabled


# -- through the real window --------------------------------------------------------------------------

#: A cold start (torch, diffusers and ultralytics imports) on a slow CPU; generous on purpose.
REAL_RUN_TIMEOUT_MS = 180_000

#: The ADetailer knobs test_jt04_..._through_the_window sets in the card, unit by unit.
FACE_KNOBS = {
    "adetailer_model": "face_yolov8s.pt",
    "adetailer_confidence": 0.45,
    "adetailer_strength": 0.55,
    "adetailer_mask_blur": 8,
    "adetailer_dilate_erode": 6,
}
HAND_KNOBS = {
    "adetailer_model": "hand_yolov8n.pt",
    "adetailer_prompt": "detailed hands",
    "adetailer_negative_prompt": "extra fingers",
    "adetailer_use_steps": True,
    "adetailer_steps": 12,
}
#: ... and the infotext keys they must become (the second unit's with A1111's " 2nd" suffix).
KNOB_KEYS = {
    "ADetailer model": "face_yolov8s.pt",
    "ADetailer confidence": "0.45",
    "ADetailer denoising strength": "0.55",
    "ADetailer mask blur": "8",
    "ADetailer dilate erode": "6",
    "ADetailer model 2nd": "hand_yolov8n.pt",
    "ADetailer prompt 2nd": "detailed hands",
    "ADetailer negative prompt 2nd": "extra fingers",
    "ADetailer use separate steps 2nd": "True",
    "ADetailer steps 2nd": "12",
}
#: The demo models' random VAE turns the drawn faces into coloured noise, so whether the detector
#: still "sees" faces after img2img depends on the noise: about half the seeds leave some. This one
#: does with A1111's sampling loop (DPM++ 2M Karras, 4 steps at 0.25).
REAL_ENGINE_SEED = 18
#: What the real engine's final image says about its img2img and ADetailer passes.
REAL_ENGINE_KEYS = {
    "Model": "demo-tiny-sd15",
    "Size": "256x256",
    "Seed": str(REAL_ENGINE_SEED),
    "Denoising strength": "0.25",
    "ADetailer model": "face_tiny.pt",
    "ADetailer confidence": "0.3",
    "ADetailer denoising strength": "0.5",
    "ADetailer use separate steps": "True",
    "ADetailer steps": "4",
}
COMPLETED_RUN = [LifecycleState.RUNNING, LifecycleState.COMPLETED, LifecycleState.IDLE]
FAILED_RUN = [LifecycleState.RUNNING, LifecycleState.FAILED, LifecycleState.IDLE]


def _record_lifecycle(window: MainWindow) -> list[LifecycleState]:
    """The states the window's lifecycle goes through from now on (what the status bar shows)."""
    states: list[LifecycleState] = []
    window.bridge.lifecycleChanged.connect(lambda event: states.append(event.new))
    return states


def _wait_idle(qtbot: QtBot, window: MainWindow) -> None:
    """Wait for the finished run's state to go back to IDLE in the status bar."""
    qtbot.waitUntil(
        lambda: window.lifecycle_label.text() == LifecycleState.IDLE.value, timeout=RUN_TIMEOUT_MS
    )


def _type_prompt_and_seed(qtbot: QtBot, window: MainWindow, seed: int = 21) -> None:
    type_text(qtbot, window, "prompt", "portrait photo, soft light")
    window.prompt_panel.seed.clear()
    qtbot.keyClicks(window.prompt_panel.seed, str(seed))


def _img2img_then_adetailer(qtbot: QtBot, window: MainWindow, image: Path) -> None:
    """Switch txt2img off and img2img and ADetailer on, then drop ``image`` on the input panel."""
    window.cards["txt2img"].setChecked(False)
    window.cards["img2img"].setChecked(True)
    window.cards["adetailer"].setChecked(True)
    assert window.input_panel.isEnabled()
    assert "needs an input image" in window.input_panel.error_label.text()
    assert not window.generate_button.isEnabled()
    assert drop_files(window.input_panel.thumbnail, image) is window.input_panel
    assert window.input_panel.path.text() == str(image)
    # The preview is read off the GUI thread.
    qtbot.waitUntil(lambda: not window.input_panel.thumbnail.pixmap().isNull(), timeout=5000)
    assert window.input_panel.error_label.isHidden()
    assert window.generate_button.isEnabled(), window.error_label.text()


def _adetailer_card(window: MainWindow) -> ADetailerCard:
    card = window.cards["adetailer"]
    assert isinstance(card, ADetailerCard)
    return card


def _use_separate_steps(qtbot: QtBot, window: MainWindow, unit: int, steps: int) -> None:
    """Open the unit's "Advanced" section, tick its Steps override and type ``steps``."""
    (advanced,) = _adetailer_card(window).page(unit).findChildren(QCollapsible)
    advanced.expand(animate=False)
    use_steps = widget(window, f"adetailer.units.{unit}.adetailer_use_steps.Steps")
    assert isinstance(use_steps, QCheckBox) and not use_steps.isChecked()
    use_steps.click()
    set_spin(qtbot, window, f"adetailer.units.{unit}.adetailer_steps", steps)


def test_jt04_img2img_then_adetailer_through_the_window(
    qtbot: QtBot, make_main_window: MakeMainWindow, input_image: Path
) -> None:
    fake = FakeExecutor()
    window = make_main_window(fake)
    states = _record_lifecycle(window)
    _type_prompt_and_seed(qtbot, window)
    _img2img_then_adetailer(qtbot, window, input_image)
    set_spin(qtbot, window, "img2img.denoise", 0.35)
    set_spin(qtbot, window, "img2img.steps", 6)
    # Unit 1: another face detector, with its own threshold, strength, blur and dilation.
    choose(window, "adetailer.units.0.adetailer_model", "face_yolov8s.pt")
    set_spin(qtbot, window, "adetailer.units.0.adetailer_confidence", 0.45)
    set_spin(qtbot, window, "adetailer.units.0.adetailer_strength", 0.55)
    set_spin(qtbot, window, "adetailer.units.0.adetailer_mask_blur", 8)
    set_spin(qtbot, window, "adetailer.units.0.adetailer_dilate_erode", 6)
    # Unit 2 (a new tab): hands, with prompts and a step count of its own.
    card = _adetailer_card(window)
    card.add_button.click()
    assert card.tabs.currentIndex() == 1
    choose(window, "adetailer.units.1.adetailer_model", "hand_yolov8n.pt")
    type_text(qtbot, window, "adetailer.units.1.adetailer_prompt", "detailed hands")
    type_text(qtbot, window, "adetailer.units.1.adetailer_negative_prompt", "extra fingers")
    _use_separate_steps(qtbot, window, 1, 12)

    generate_and_wait(qtbot, window)
    _wait_idle(qtbot, window)

    assert states == COMPLETED_RUN
    assert fake.stages_called == [StageName.IMG2IMG, StageName.ADETAILER]
    img2img, adetailer = fake.calls
    assert img2img.input_sizes == adetailer.input_sizes == ((80, 64),)
    assert img2img.payload.prompt == "portrait photo, soft light" and img2img.payload.seeds == (21,)
    config = adetailer.payload.config
    assert config.input_image_path == str(input_image)
    assert (config.txt2img.enabled, config.img2img.enabled, config.adetailer.enabled) == (False, True, True)
    assert (config.img2img.denoise, config.img2img.steps) == (0.35, 6)
    face, hands = config.adetailer.units
    assert face.model_dump(include=set(FACE_KNOBS)) == FACE_KNOBS
    assert hands.model_dump(include=set(HAND_KNOBS)) == HAND_KNOBS
    assert not face.adetailer_use_steps and hands.adetailer_confidence == 0.3  # each unit its own

    [output] = window.results_panel.image_paths()
    assert window.results_panel.selected == output
    with Image.open(output) as image:
        assert image.size == (80, 64)
    meta = read_image_metadata(output)
    assert meta.parameters is not None
    parameters = window.results_panel.parameters  # read off the GUI thread: it arrives a moment later
    qtbot.waitUntil(lambda: parameters.toPlainText() == meta.parameters, timeout=RUN_TIMEOUT_MS)
    params = parse_infotext(meta.parameters).params
    assert {key: params.get(key) for key in KNOB_KEYS} == KNOB_KEYS
    assert (params["Steps"], params["Denoising strength"], params["Seed"]) == ("6", "0.35", "21")
    assert meta.run_config is not None and meta.run_config.adetailer.units == config.adetailer.units


class TrustDialogAnswer:
    """The user at the trust dialog: clicks ``button`` on the first modal message box that opens
    (polled from the event loop, which keeps running inside the box's own loop)."""

    def __init__(self, button: str) -> None:
        self.button = button
        self.questions: list[str] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._on_timeout)
        self.timer.start()

    def _on_timeout(self) -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            return
        self.timer.stop()
        self.questions.append(box.text())
        [button] = [b for b in box.buttons() if b.text() == self.button]
        button.click()


def _prepared_masks(engine: DiffusersExecutor, image: Image.Image, unit: ADetailerUnit) -> list[np.ndarray]:
    """Where ``unit`` may repaint ``image``: the blurred mask of each detection, as booleans."""
    detections = engine.context.detector(unit.adetailer_model).predict(image, unit.adetailer_confidence)
    masks = preprocess_masks(
        detections,
        unit.adetailer_x_offset,
        unit.adetailer_y_offset,
        unit.adetailer_dilate_erode,
        unit.adetailer_mask_merge_invert,
    )
    return [np.asarray(blur_mask(m.mask, unit.adetailer_mask_blur)) > 0 for m in masks]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jt04_window_real_engine_repaints_only_the_detected_faces(
    qtbot: QtBot, make_main_window: MakeMainWindow, demo_models: dict[str, Path], tmp_path: Path
) -> None:
    models = tmp_path / "models"  # the window's models folder (make_main_window)
    (models / "adetailer").mkdir(parents=True)
    detector = Path(shutil.copy(TESTS / "data" / "face_tiny.pt", models / "adetailer" / "face_tiny.pt"))
    trust_list = tmp_path / "trusted-detectors.json"
    engine = DiffusersExecutor(
        EngineSettings(
            models_dir=models,
            device="cpu",
            demo_dir=next(iter(demo_models.values())).parent,
            trust_file=trust_list,
        )
    )
    # The app's own services: model listing, and the trust dialog's trusting.
    window = make_main_window(
        engine,
        list_models=app.list_models,
        trust_detector=lambda path, sha256: app.trust_detector(path, sha256, trust_list),
    )
    states = _record_lifecycle(window)
    labels: list[str] = []
    window.bridge.stepProgress.connect(lambda event: labels.append(event.label))
    _type_prompt_and_seed(qtbot, window, REAL_ENGINE_SEED)
    _img2img_then_adetailer(qtbot, window, _faces_image(tmp_path / "faces.png"))
    set_spin(qtbot, window, "img2img.denoise", 0.25)
    set_spin(qtbot, window, "img2img.steps", 4)
    choose(window, "adetailer.units.0.adetailer_model", "face_tiny.pt")  # listed from models/adetailer
    set_spin(qtbot, window, "adetailer.units.0.adetailer_strength", 0.5)
    _use_separate_steps(qtbot, window, 0, 4)

    # img2img alone first: the image ADetailer will start from. The demo models' random VAE turns
    # the drawn faces into coloured noise, so the detector's "faces" are what it sees in that noise
    # and the output can only be checked against this image. (That the img2img inside the ADetailer
    # run repeats it exactly relies on detection leaving torch's thread count alone; see
    # test_detection_leaves_torch_thread_count_alone.)
    card = _adetailer_card(window)
    card.setChecked(False)
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=REAL_RUN_TIMEOUT_MS) as done:
        window.generate_button.click()
    [img2img_only] = done.args[0].image_paths
    _wait_idle(qtbot, window)
    card.setChecked(True)
    labels.clear()

    # First use of the detector: the run stops at ADetailer and the window asks to trust the file;
    # the user answers "Trust and run again" and the same settings run again.
    answer = TrustDialogAnswer("Trust and run again")
    try:
        with qtbot.waitSignal(window.bridge.runCompleted, timeout=REAL_RUN_TIMEOUT_MS) as done:
            window.generate_button.click()
    finally:
        answer.timer.stop()
    _wait_idle(qtbot, window)

    assert states == COMPLETED_RUN + FAILED_RUN + COMPLETED_RUN
    [question] = answer.questions
    assert f"Trust face_tiny.pt (sha256 {file_sha256(detector)})?" in question
    assert DetectorTrust(trust_list).is_trusted(detector)
    [final] = done.args[0].image_paths
    assert window.results_panel.image_paths() == [final, img2img_only]  # the failed run saved nothing

    unit = window.model.config.adetailer.units[0]
    before, after = _pixels(img2img_only), _pixels(final)
    masks = _prepared_masks(engine, Image.fromarray(before), unit)
    assert masks, "the detector finds nothing in the img2img image"
    found = {label.split(",")[0] for label in labels if label.startswith("ADetailer")}
    assert found == {f"ADetailer 1/1: face {i} of {len(masks)}" for i in range(1, len(masks) + 1)}
    changed = (before != after).any(axis=2)
    assert all((changed & mask).any() for mask in masks), "every detected face is repainted"
    assert not (changed & ~np.logical_or.reduce(masks)).any(), "no pixel outside the masks changes"

    meta = read_image_metadata(final)
    assert meta.parameters is not None
    params = parse_infotext(meta.parameters).params
    assert {key: params.get(key) for key in REAL_ENGINE_KEYS} == REAL_ENGINE_KEYS
    assert meta.run_config is not None and meta.run_config.adetailer.units == (unit,)
