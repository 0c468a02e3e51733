"""The ADetailer stage end to end: real YOLO detection and a real tiny-model inpaint.

Detection uses the committed output of ``tests/tools/make_tiny_face_detector.py``
(``tests/data/face_tiny.pt``, a tiny YOLO trained on drawn faces: a random-weight YOLO detects
nothing). Inpainting uses the demo SD1.5 model through ``from_pipe``.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import StageError
from stablenew_qt.core.executor import CancelToken, StagePayload
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.core.sequencer import StageExecution, StageName
from stablenew_qt.engine.adetailer.masks import blur_mask, preprocess_masks
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings

DATA = Path(__file__).parents[1] / "data"
TOOL = Path(__file__).parents[1] / "tools" / "make_tiny_face_detector.py"
FACES = [(30, 40, 110, 130), (150, 60, 230, 150)]


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tiny_face_detector", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def faces_image() -> Image.Image:
    image: Image.Image = _load_tool().draw_faces_image(256, FACES, seed=5)
    return image


@pytest.fixture(scope="module")
def engine(demo_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> DiffusersExecutor:
    models = tmp_path_factory.mktemp("models")
    (models / "adetailer").mkdir()
    shutil.copy(DATA / "face_tiny.pt", models / "adetailer" / "face_tiny.pt")
    settings = EngineSettings(
        models_dir=models,
        device="cpu",
        demo_dir=next(iter(demo_models.values())).parent,
        trusted_detectors=(models / "adetailer" / "face_tiny.pt",),
        trust_file=models / "trust.json",
    )
    return DiffusersExecutor(settings)


def _config(units: list[dict[str, Any]], **extra: Any) -> RunConfig:
    data: dict[str, Any] = {
        "prompt": "portrait photo",
        "seed": 9,
        "txt2img": {"enabled": False, "model": "demo-tiny-sd15"},
        "img2img": {"enabled": True, "steps": 4, "denoise": 0.3},
        "adetailer": {"enabled": True, "units": units},
        **extra,
    }
    return RunConfig.from_dict(data)


FACE_UNIT = {
    "adetailer_model": "face_tiny.pt",
    "adetailer_strength": 0.5,
    "adetailer_steps": 4,
    "adetailer_use_steps": True,
}


def _adetailer(engine: DiffusersExecutor, config: RunConfig, image: Image.Image):
    progress: list[tuple[int, int, str]] = []
    stage = StageExecution(StageName.ADETAILER, 1, config.adetailer)
    payload = StagePayload(config, config.prompt, config.negative_prompt, (config.seed,), (image,))
    result = engine.generate_images(
        stage, payload, lambda s, t, p=None, label="": progress.append((s, t, label)), CancelToken()
    )
    return result, progress


def _mask_union(engine: DiffusersExecutor, image: Image.Image) -> np.ndarray:
    """Where ADetailer may change pixels: the union of the blurred masks of what is detected."""
    detections = engine.context.detector("face_tiny.pt").predict(image, 0.3)
    masks = preprocess_masks(detections, 0, 0, 4, "None")
    union = np.zeros((image.height, image.width), dtype=bool)
    for prepared in masks:
        union |= np.asarray(blur_mask(prepared.mask, 4)) > 0
    return union


def test_faces_are_found_and_only_masked_pixels_change(
    engine: DiffusersExecutor, faces_image: Image.Image
) -> None:
    result, progress = _adetailer(engine, _config([FACE_UNIT]), faces_image)
    (out,) = result.images
    assert out.size == faces_image.size
    assert any("2 mask(s)" in note for note in result.info.notes), result.info.notes
    before, after = np.asarray(faces_image), np.asarray(out)
    changed = (before != after).any(axis=2)
    union = _mask_union(engine, faces_image)
    assert changed.any(), "the faces were repainted"
    assert not (changed & ~union).any(), "no pixel outside the blurred masks changed"
    labels = [label for _s, _t, label in progress]
    assert labels[0].startswith("ADetailer 1/1: face 1 of 2") and labels[-1].startswith(
        "ADetailer 1/1: face 2 of 2"
    )


def test_two_units_run_in_order(engine: DiffusersExecutor, faces_image: Image.Image) -> None:
    # Unit 1 repaints only the largest face (top k = 1), so unit 2 still finds the other one on
    # the image unit 1 left (a random-weight inpaint does not leave a detectable face behind).
    first = {**FACE_UNIT, "adetailer_mask_k": 1}
    second = {**FACE_UNIT, "adetailer_prompt": "smiling face"}
    result, progress = _adetailer(engine, _config([first, second]), faces_image)
    labels = [label for _s, _t, label in progress]
    first_of_2 = [i for i, label in enumerate(labels) if label.startswith("ADetailer 2/2")]
    assert first_of_2 and all(label.startswith("ADetailer 1/2") for label in labels[: first_of_2[0]])
    assert len(result.info.notes) == 2


def test_skip_prompt_skips_and_leaves_the_image(engine: DiffusersExecutor, faces_image: Image.Image) -> None:
    result, progress = _adetailer(engine, _config([{**FACE_UNIT, "adetailer_prompt": "[SKIP]"}]), faces_image)
    assert result.images[0].tobytes() == faces_image.tobytes()
    assert progress == []


def test_nothing_detected_is_byte_identical(engine: DiffusersExecutor) -> None:
    blank = Image.new("RGB", (128, 128), (90, 110, 130))
    result, _ = _adetailer(engine, _config([FACE_UNIT]), blank)
    assert result.images[0].tobytes() == blank.tobytes()
    assert any("nothing detected" in note for note in result.info.notes)


def test_runner_writes_adetailer_infotext(
    engine: DiffusersExecutor, faces_image: Image.Image, tmp_path: Path
) -> None:
    source = tmp_path / "faces.png"
    faces_image.save(source)
    config = _config([FACE_UNIT], input_image_path=str(source))
    events: list[object] = []
    result = PipelineRunner(engine, OutputSettings(tmp_path / "runs")).run(
        config, CancelToken(), emit=events.append
    )
    assert result.status == "COMPLETED", result.error
    assert [e.stage for e in events if isinstance(e, ev.StageFinished)] == [
        StageName.IMG2IMG,
        StageName.ADETAILER,
    ]
    with Image.open(result.image_paths[0]) as im:
        text = im.text["parameters"]
    assert "ADetailer model: face_tiny.pt" in text and "ADetailer denoising strength: 0.5" in text


def test_untrusted_detector_is_refused_and_nothing_written(
    demo_models: dict[str, Path], faces_image: Image.Image, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    (models / "adetailer").mkdir(parents=True)
    shutil.copy(DATA / "face_tiny.pt", models / "adetailer" / "face_tiny.pt")
    settings = EngineSettings(
        models_dir=models,
        device="cpu",
        demo_dir=next(iter(demo_models.values())).parent,
        trust_file=tmp_path / "t.json",
    )
    with pytest.raises(StageError, match=r"adetailer: .*face_tiny\.pt.*(SHA-256|sha256)"):
        _adetailer(DiffusersExecutor(settings), _config([FACE_UNIT]), faces_image)


def test_missing_detector_is_a_clear_error(engine: DiffusersExecutor, faces_image: Image.Image) -> None:
    with pytest.raises(StageError, match=r"adetailer: .*hand_yolov8n\.pt"):
        _adetailer(engine, _config([{**FACE_UNIT, "adetailer_model": "hand_yolov8n.pt"}]), faces_image)


def test_cancel_inside_an_inpaint_stops_within_one_step(
    engine: DiffusersExecutor, faces_image: Image.Image
) -> None:
    from stablenew_qt.core.errors import CancelRequested

    config = _config([FACE_UNIT])
    token = CancelToken()
    seen: list[int] = []

    def progress(step: int, total: int, preview: object = None, label: str = "") -> None:
        seen.append(step)
        if step == 2:
            token.cancel()

    stage = StageExecution(StageName.ADETAILER, 1, config.adetailer)
    payload = StagePayload(config, config.prompt, config.negative_prompt, (config.seed,), (faces_image,))
    with pytest.raises(CancelRequested):
        engine.generate_images(stage, payload, progress, token)
    assert seen == [1, 2], "no step is reported after the cancel"


@pytest.mark.parametrize("checkpoint", ["demo-tiny-sd15-inpaint", "demo-tiny-sdxl-inpaint"])
def test_inpainting_checkpoint_gets_image_conditioning_and_changes_only_masked_pixels(
    engine: DiffusersExecutor, faces_image: Image.Image, checkpoint: str
) -> None:
    """A 9-channel UNet needs A1111's image conditioning (mask + masked-image latents) at every
    call; the unit's own checkpoint is one, and still only the masked pixels change."""
    unit = {**FACE_UNIT, "adetailer_use_checkpoint": True, "adetailer_checkpoint": checkpoint}
    result, _ = _adetailer(engine, _config([unit]), faces_image)
    (out,) = result.images
    before, after = np.asarray(faces_image), np.asarray(out)
    changed = (before != after).any(axis=2)
    assert changed.any(), "the faces were repainted"
    assert not (changed & ~_mask_union(engine, faces_image)).any()


def test_unit_noise_multiplier_and_variation_seed_change_the_repaint(
    engine: DiffusersExecutor, faces_image: Image.Image
) -> None:
    plain = np.asarray(_adetailer(engine, _config([FACE_UNIT]), faces_image)[0].images[0])
    quiet = {**FACE_UNIT, "adetailer_use_noise_multiplier": True, "adetailer_noise_multiplier": 0.6}
    multiplied = np.asarray(_adetailer(engine, _config([quiet]), faces_image)[0].images[0])
    varied_config = _config([FACE_UNIT], subseed=77, subseed_strength=0.6)
    varied = np.asarray(_adetailer(engine, varied_config, faces_image)[0].images[0])
    assert not np.array_equal(plain, multiplied)
    assert not np.array_equal(plain, varied)


def test_adetailer_runs_after_an_img2img_inpaint(
    engine: DiffusersExecutor, faces_image: Image.Image, tmp_path: Path
) -> None:
    """img2img repaints a strip at the top through its mask, then ADetailer repaints the faces of
    that result: both stages run, the faces change, and rows far from both masks keep their bytes."""
    source, mask_path = tmp_path / "faces.png", tmp_path / "strip.png"
    faces_image.save(source)
    strip = Image.new("L", faces_image.size)
    strip.paste(255, (0, 0, 256, 24))
    strip.save(mask_path)
    inpaint = {"enabled": True, "steps": 4, "denoise": 0.75, "mask_path": str(mask_path)}

    def run(adetailer: bool) -> tuple[np.ndarray, list[StageName]]:
        events: list[object] = []
        config = _config([FACE_UNIT], input_image_path=str(source), img2img=inpaint)
        config = config.model_copy(
            update={"adetailer": config.adetailer.model_copy(update={"enabled": adetailer})}
        )
        result = PipelineRunner(engine, OutputSettings(tmp_path / "runs")).run(
            config, CancelToken(), events.append
        )
        assert result.status == "COMPLETED", result.error
        return np.asarray(result.images[0]), [e.stage for e in events if isinstance(e, ev.StageFinished)]

    both, stages = run(True)
    alone, _ = run(False)
    assert stages == [StageName.IMG2IMG, StageName.ADETAILER]
    original = np.asarray(faces_image.convert("RGB"))
    assert not np.array_equal(both[:24], original[:24]), "the strip is inpainted"
    assert np.array_equal(both[:24], alone[:24]), "ADetailer leaves the strip (no face there) alone"
    x1, y1, x2, y2 = FACES[0]
    assert not np.array_equal(both[y1:y2, x1:x2], alone[y1:y2, x1:x2]), "ADetailer repaints a face"
    assert np.array_equal(both[200:], original[200:]), "far from both masks nothing changes"
