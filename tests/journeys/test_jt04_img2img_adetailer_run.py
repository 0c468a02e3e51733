"""JT04: img2img then ADetailer, through the AppController, with the real engine on tiny models.

The input image has drawn faces; detection uses the committed tiny face detector
(``tests/data/face_tiny.pt``, made by ``tests/tools/make_tiny_face_detector.py``).
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.controller import AppController
from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings

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
            "seed": 21,
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
