"""ADetailer detectors: ultralytics offline, the trust list, real detections, files that are no detectors.

Detection tests use the committed output of ``tests/tools/make_tiny_face_detector.py``:
``tests/data/face_tiny.pt``, a yolov8n-shaped detector at width 0.125 trained from scratch on
synthetic drawn faces (about a minute on a 2-core CPU). A YOLO with random weights detects nothing
(``test_random_weight_yolo_loads_but_detects_nothing``), so the tests need a trained model, and
committing it spares every run the training. Regenerate it with::

    python tests/tools/make_tiny_face_detector.py tests/data/face_tiny.pt

The same script's ``draw_faces_image``/``random_scene`` draw the test images with faces at known boxes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from PIL import Image

from stablenew_qt.engine.adetailer.detector import (
    Detector,
    DetectorCache,
    DetectorTrust,
    UntrustedModelError,
    configure_ultralytics,
    load_detector,
)
from stablenew_qt.engine.errors import ModelError

FACE_MODEL = Path(__file__).parents[1] / "data" / "face_tiny.pt"
TOOL = Path(__file__).parents[1] / "tools" / "make_tiny_face_detector.py"
CONFIDENCE = 0.3


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_tiny_face_detector", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(autouse=True)
def ultralytics_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ultralytics configured offline; its settings folder (fixed at its first import).

    Function-scoped so that it runs after conftest's network guard: when this module is the first
    to import ultralytics, that import happens with sockets blocked.
    """
    configure_ultralytics(tmp_path_factory.getbasetemp() / "ultralytics-config")
    import ultralytics.utils

    return Path(ultralytics.utils.USER_CONFIG_DIR)


@pytest.fixture
def trust(tmp_path: Path) -> DetectorTrust:
    return DetectorTrust(tmp_path / "trusted-detectors.json")


_FACE_CACHE = DetectorCache()  # the committed detector is loaded once for the whole module


@pytest.fixture
def face_detector(tmp_path_factory: pytest.TempPathFactory, ultralytics_config: Path) -> Detector:
    trust = DetectorTrust(tmp_path_factory.getbasetemp() / "face-trust.json")
    trust.trust(FACE_MODEL)
    return load_detector(FACE_MODEL, trust, cache=_FACE_CACHE)


def _copy_model(folder: Path, name: str = "face.pt") -> Path:
    target = folder / name
    shutil.copyfile(FACE_MODEL, target)
    return target


def _torch_zip(pickle_bytes: bytes, name: str = "archive") -> bytes:
    """A zip laid out like torch.save's: data.pkl, version and byteorder under one folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/data.pkl", pickle_bytes)
        archive.writestr(f"{name}/byteorder", "little")
        archive.writestr(f"{name}/version", "3\n")
    return buffer.getvalue()


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


# -- offline configuration -----------------------------------------------------------------------


def test_configure_ultralytics_is_offline_with_seeded_fonts(ultralytics_config: Path) -> None:
    import matplotlib
    import ultralytics.utils
    from ultralytics.utils.checks import check_font

    configure_ultralytics(ultralytics_config.parent)  # idempotent
    settings = ultralytics.utils.SETTINGS
    assert os.environ["YOLO_OFFLINE"] == "1" and os.environ["YOLO_AUTOINSTALL"] == "0"
    assert ultralytics.utils.ONLINE is False and ultralytics.utils.AUTOINSTALL is False
    assert settings["sync"] is False
    assert not any(
        settings[key] for key in ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")
    )
    assert Path(settings["weights_dir"]).parent == ultralytics_config
    assert Image.open.__module__ == "PIL.Image"  # ultralytics' process-wide patch is undone
    dejavu = (Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf").read_bytes()
    for font in ("Arial.ttf", "Arial.Unicode.ttf"):
        assert (ultralytics_config / font).read_bytes() == dejavu
        assert Path(check_font(font)) == ultralytics_config / font  # found locally: no download


# -- detections with the committed tiny face detector --------------------------------------------


def test_detector_finds_drawn_faces(face_detector: Detector) -> None:
    assert (face_detector.task, face_detector.names) == ("detect", {0: "face"})
    faces = found = 0
    for image, truth in tool.evaluation_scenes(12, first_seed=20_000):
        detections = face_detector.predict(image, CONFIDENCE)
        assert all(d.confidence >= CONFIDENCE and d.label == "face" for d in detections)
        assert all(d.mask.mode == "L" and d.mask.size == image.size for d in detections)
        matched = tool.match(truth, [(d.bbox, d.confidence) for d in detections])  # IoU > 0.5
        faces, found = faces + len(truth), found + len(matched)
    assert found / faces >= 0.9, f"found {found} of {faces} faces"


def test_detection_leaves_torch_thread_count_alone(face_detector: Detector) -> None:
    # ultralytics sets torch's process-wide thread count when it picks the CPU; diffusion runs
    # after ADetailer must keep the threads they had.
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(before + 3)
    try:
        face_detector.predict(Image.new("RGB", (64, 64), (128, 128, 128)), CONFIDENCE, device="cpu")
        assert torch.get_num_threads() == before + 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("kind", ["blank", "noise", "shapes only"])
def test_images_without_faces_give_no_detections(face_detector: Detector, kind: str) -> None:
    if kind == "blank":
        image = Image.new("RGB", (160, 128), (128, 128, 128))
    elif kind == "noise":
        image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 160, 3), dtype=np.uint8))
    else:
        image = tool.draw_faces_image((160, 128), [], seed=3)
    assert face_detector.predict(image, CONFIDENCE) == []


def test_box_detector_masks_are_filled_boxes(face_detector: Detector) -> None:
    box = (60, 40, 120, 110)
    image = tool.draw_faces_image((200, 160), [box], seed=7)
    (detection,) = face_detector.predict(image, CONFIDENCE)
    assert tool.iou(detection.bbox, box) > 0.5
    mask = np.asarray(detection.mask)
    assert set(np.unique(mask)) == {0, 255}
    x1, y1, x2, y2 = detection.bbox
    rows, cols = np.nonzero(mask)
    assert abs(cols.min() - x1) <= 1 and abs(cols.max() - x2) <= 1
    assert abs(rows.min() - y1) <= 1 and abs(rows.max() - y2) <= 1
    assert mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].min() == 255  # filled


def test_confidence_outside_0_to_1_is_refused(face_detector: Detector) -> None:
    with pytest.raises(ValueError, match=r"0\.\.1"):
        face_detector.predict(Image.new("RGB", (64, 64)), 1.5)


# -- trust list ----------------------------------------------------------------------------------


def test_untrusted_file_is_refused_with_its_hash(tmp_path: Path, trust: DetectorTrust) -> None:
    model = _copy_model(tmp_path)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    with pytest.raises(UntrustedModelError) as caught:
        load_detector(model, trust, cache=DetectorCache())
    assert caught.value.sha256 == digest and caught.value.path == model
    assert digest in str(caught.value) and "face.pt" in str(caught.value)
    assert f"--trust-model {model}" in str(caught.value) and "dialog" in str(caught.value)
    assert not trust.is_trusted(model)


def test_trusted_file_loads_and_a_changed_file_needs_trust_again(
    tmp_path: Path, trust: DetectorTrust
) -> None:
    model = _copy_model(tmp_path)
    cache = DetectorCache()
    digest = trust.trust(model)
    assert trust.is_trusted(model)
    record = json.loads(trust.path.read_text(encoding="utf-8"))["trusted"][digest]
    assert record["name"] == "face.pt" and record["trusted_at"][:2] == "20"
    detector = load_detector(model, trust, cache=cache)
    assert load_detector(model, trust, cache=cache) is detector  # cached by (path, mtime)
    assert DetectorTrust(trust.path).is_trusted(model)  # persisted
    with model.open("ab") as stream:  # same file, new bytes: a new hash
        stream.write(b"\0")
    with pytest.raises(UntrustedModelError):
        load_detector(model, trust, cache=cache)


def test_allow_untrusted_loads_without_trust(tmp_path: Path, trust: DetectorTrust) -> None:
    detector = load_detector(_copy_model(tmp_path), trust, allow_untrusted=True, cache=DetectorCache())
    assert detector.task == "detect"


def test_missing_file_is_a_model_error(tmp_path: Path, trust: DetectorTrust) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_detector(tmp_path / "nope.pt", trust, cache=DetectorCache())


# -- the restricted loader: the hostile files are in test_adetailer_hostile_files.py ---------------


class _ReduceTo:
    """Pickles as ``func(*args)``: what a malicious checkpoint's objects do."""

    def __init__(self, func: Any, *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return self.func, self.args


def _marker_command(marker: Path) -> str:
    return f"\"{sys.executable}\" -c \"open(r'{marker}', 'w').close()\""


def test_trusted_file_calling_os_system_is_refused_without_running_it(
    tmp_path: Path, trust: DetectorTrust
) -> None:
    marker = tmp_path / "payload-ran"
    payload = b"\x80\x02cos\nsystem\n" + _unicode(_marker_command(marker)) + b"\x85R."
    evil = tmp_path / "evil.pt"
    evil.write_bytes(_torch_zip(payload))
    trust.trust(evil)
    with pytest.raises(ModelError, match=r"global os\.system") as caught:
        load_detector(evil, trust, cache=DetectorCache())
    assert not isinstance(caught.value, UntrustedModelError)
    assert not marker.exists()
    pickle.loads(payload)  # the control: the same bytes, unpickled, do run the payload
    assert marker.exists()


def test_torch_saved_checkpoint_with_a_system_call_is_refused(tmp_path: Path, trust: DetectorTrust) -> None:
    import torch

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _ReduceTo(os.system, _marker_command(marker))}, evil)
    trust.trust(evil)
    with pytest.raises(ModelError, match=rf"global {os.system.__module__}\.system"):  # posix.system on Linux
        load_detector(evil, trust, cache=DetectorCache())
    assert not marker.exists()


# -- files that are not detectors ----------------------------------------------------------------


def test_state_dict_is_not_a_detector(tmp_path: Path, trust: DetectorTrust) -> None:
    import torch

    weights = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2, 2)}, weights)
    trust.trust(weights)
    with pytest.raises(ModelError, match="not a detection or segmentation model"):
        load_detector(weights, trust, cache=DetectorCache())


def _save_from_yaml(yaml: Path, out: Path) -> Path:
    import torch
    from ultralytics.models import YOLO

    torch.manual_seed(0)  # the random weights
    YOLO(str(yaml)).save(out)
    return out


def test_segmentation_masks_are_image_sized_l_images(tmp_path: Path, trust: DetectorTrust) -> None:
    import ultralytics
    from ultralytics.utils import YAML as yaml_io

    yaml: Any = yaml_io  # untyped
    spec = yaml.load(Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / "yolov8-seg.yaml")
    spec.update(nc=1, scales={"n": [0.33, 0.125, 1024]})  # one class: random scores near 0.01, not 0
    yaml.save(tmp_path / "yolov8n-tinyseg.yaml", spec)
    segmenter = _save_from_yaml(tmp_path / "yolov8n-tinyseg.yaml", tmp_path / "person_yolov8n-seg.pt")
    trust.trust(segmenter)
    detector = load_detector(segmenter, trust, cache=DetectorCache())
    assert detector.task == "segment"
    image = tool.draw_faces_image((96, 80), [(20, 20, 60, 70)], seed=1)
    detections = detector.predict(image, 0.001)[:3]  # random weights: only near-zero scores
    assert detections
    for detection in detections:
        assert detection.mask.mode == "L" and detection.mask.size == image.size
        assert detection.label in detector.names.values()
    assert any(len(np.unique(np.asarray(d.mask))) > 2 for d in detections)  # resized masks, not boxes


def test_classifier_is_not_a_detector(tmp_path: Path, trust: DetectorTrust) -> None:
    import ultralytics

    yaml = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8" / "yolov8-cls.yaml"
    classifier = _save_from_yaml(yaml, tmp_path / "yolov8n-cls.pt")
    trust.trust(classifier)
    with pytest.raises(ModelError, match=r"not a detection or segmentation model.*'classify'"):
        load_detector(classifier, trust, cache=DetectorCache())


def test_random_weight_yolo_loads_but_detects_nothing(tmp_path: Path, trust: DetectorTrust) -> None:
    """Why the suite needs the trained face detector: an untrained YOLO finds nothing.

    Its scores stay near the head's initial class bias (about 0.01 for one class), far below
    ADetailer's default confidence 0.3.
    """
    untrained = _save_from_yaml(tool.write_model_yaml(tmp_path), tmp_path / "random.pt")
    trust.trust(untrained)
    detector = load_detector(untrained, trust, cache=DetectorCache())
    assert detector.task == "detect"
    image, faces = tool.random_scene(seed=11)
    assert faces
    assert detector.predict(image, CONFIDENCE) == []
    assert max(d.confidence for d in detector.predict(image, 0.001)) < 0.05
