"""The restricted detector loader gives what ultralytics' own load gives, and only ever that.

Fidelity: for our tiny trained face detector and for models ultralytics builds from its own yaml
files and saves, the objects equal those of ``torch.load(weights_only=False)`` attribute by
attribute, and the detector predicts exactly (bit for bit) what ultralytics' ``YOLO(path)``
predicts. Older checkpoint shapes (training leftovers, legacy module names, dill, numpy metrics,
fused layers) load too. The fuzz tests mutate a real checkpoint and require that nothing runs,
nothing changes and nothing but ``ModelError`` comes out.
"""

from __future__ import annotations

import importlib.util
import io
import pathlib
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from checkpoint_files import FACE_MODEL, repack, snapshot_differences, state_snapshot, watching_calls
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stablenew_qt.engine.adetailer.checkpoint_objects import UPGRADES
from stablenew_qt.engine.adetailer.checkpoint_policy import (
    TORCH_MODULE_CLASSES,
    allowed_globals,
    read_checkpoint,
)
from stablenew_qt.engine.adetailer.detector import (
    DetectorCache,
    DetectorTrust,
    configure_ultralytics,
    load_detector,
)
from stablenew_qt.engine.adetailer.yolo_model import yolo_from_checkpoint
from stablenew_qt.engine.errors import ModelError

TOOL = Path(__file__).parents[1] / "tools" / "make_tiny_face_detector.py"


def _load_tool() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("make_tiny_face_detector", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(autouse=True)
def ultralytics_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    configure_ultralytics(tmp_path_factory.getbasetemp() / "ultralytics-config")


def _torch_load(path: Path) -> Any:
    """What ultralytics does; only ever on files these tests made or committed."""
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def assert_same(ours: Any, theirs: Any, where: str = "checkpoint", seen: set[int] | None = None) -> None:
    """``ours`` equals ``theirs`` in type and value, attribute by attribute, tensors bit for bit.

    Differences by design: pathlib paths come back as strings, numpy scalars as Python numbers.
    """
    import torch

    seen = set() if seen is None else seen
    if isinstance(theirs, pathlib.PurePath):
        assert ours == str(theirs), where
    elif isinstance(theirs, np.generic):
        assert type(ours) is type(theirs.item()) and ours == theirs.item(), where
    elif isinstance(theirs, torch.Tensor):
        assert type(ours) is type(theirs) and ours.dtype == theirs.dtype, where
        assert (ours.shape, ours.stride(), ours.requires_grad) == (
            theirs.shape,
            theirs.stride(),
            theirs.requires_grad,
        )
        assert torch.equal(ours, theirs), where
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), where
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}[{key!r}]", seen)
    elif isinstance(theirs, list | tuple):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            assert_same(a, b, f"{where}[{index}]", seen)
    elif isinstance(theirs, types.MethodType):
        assert ours.__func__ is theirs.__func__ and type(ours.__self__) is type(theirs.__self__), where
    elif isinstance(theirs, types.FunctionType | type):
        assert ours is theirs, where
    elif hasattr(theirs, "__dict__"):
        assert type(ours) is type(theirs), where
        if id(theirs) in seen:
            return
        seen.add(id(theirs))
        assert list(vars(ours)) == list(vars(theirs)), where
        for key, value in vars(theirs).items():
            assert_same(vars(ours)[key], value, f"{where}.{key}", seen)
    else:
        assert type(ours) is type(theirs) and ours == theirs, where


def _predictions(model: Any, image: Any) -> tuple[Any, Any]:
    result = model.predict(image, conf=0.001, device="cpu", verbose=False)[0]
    masks = None if result.masks is None else result.masks.data
    return result.boxes.data, masks


def _assert_same_predictions(path: Path, scenes: int = 3) -> int:
    """Our detector and ultralytics' YOLO(path) find the same boxes (and masks); how many in all."""
    import torch
    from ultralytics.models import YOLO

    ours = load_detector(
        path, DetectorTrust(path.parent / "t.json"), allow_untrusted=True, cache=DetectorCache()
    )
    theirs = YOLO(str(path))
    found = 0
    for seed in range(scenes):
        image, _ = tool.random_scene(seed=300 + seed, size=(224, 160))
        (our_boxes, our_masks), (their_boxes, their_masks) = (
            _predictions(ours._model, image),
            _predictions(theirs, image),
        )
        assert torch.equal(our_boxes, their_boxes)
        assert (our_masks is None and their_masks is None) or torch.equal(our_masks, their_masks)
        found += len(our_boxes)
    return found


# -- fidelity ------------------------------------------------------------------------------------


def test_face_detector_objects_equal_torch_load() -> None:
    assert_same(read_checkpoint(FACE_MODEL.read_bytes()), _torch_load(FACE_MODEL))


@pytest.mark.slow
def test_face_detector_predicts_what_ultralytics_predicts() -> None:
    assert _assert_same_predictions(FACE_MODEL) > 20  # low confidence: many boxes, all equal


def _saved_from_yaml(folder: Path, name: str, fuse: bool = False) -> Path:
    """ultralytics' own ``name`` yaml with one class (so that random weights still score boxes), saved."""
    import torch
    import ultralytics
    from ultralytics.models import YOLO
    from ultralytics.utils import YAML

    family = "11" if name.startswith("yolo11") else "v8"
    base = name.replace("yolov8n", "yolov8").replace("yolo11n", "yolo11")
    spec: Any = YAML.load(Path(ultralytics.__file__).parent / "cfg" / "models" / family / base)
    spec["nc"] = 1
    config = folder / name
    YAML.save(config, spec)
    torch.manual_seed(0)
    model = YOLO(str(config))
    if fuse:
        model.fuse()
    out = folder / name.replace(".yaml", "-fused.pt" if fuse else ".pt")
    model.save(out)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["yolov8n.yaml", "yolo11n.yaml", "yolov8n-seg.yaml", "yolo11n-seg.yaml"])
def test_ultralytics_saved_models_load_and_predict_as_ultralytics(tmp_path: Path, name: str) -> None:
    path = _saved_from_yaml(tmp_path, name)
    assert_same(read_checkpoint(path.read_bytes()), _torch_load(path))
    assert _assert_same_predictions(path, scenes=1) > 0


def test_fused_model_keeps_its_fused_forward(tmp_path: Path) -> None:
    path = _saved_from_yaml(tmp_path, "yolov8n.yaml", fuse=True)
    root: Any = read_checkpoint(path.read_bytes())
    conv = root["model"].model[0]
    assert conv.forward.__func__ is type(conv).forward_fuse and conv.forward.__self__ is conv
    assert_same(root, _torch_load(path))
    assert _assert_same_predictions(path, scenes=1) > 0


def _old_style_checkpoint(folder: Path) -> tuple[Path, bytes]:
    """face_tiny.pt with what older or training-time checkpoints hold, and its pickle in old names.

    Returns the file saved by torch.save (current names) and a pickle that names the same objects
    as ultralytics < 8.0.44 (``ultralytics.yolo.utils``), pre-split ``ultralytics.nn.modules.Conv``
    and dill (``_load_type('set')``) did.
    """
    import torch
    from ultralytics.utils import DEFAULT_CFG_DICT, IterableSimpleNamespace

    checkpoint = _torch_load(FACE_MODEL)
    model = checkpoint["model"]
    model.args = IterableSimpleNamespace(**DEFAULT_CFG_DICT)
    model.criterion = model.init_criterion()  # v8DetectionLoss, TaskAlignedAssigner, BboxLoss, a device
    model.model[-1].detect = type(model.model[-1]).forward  # heads of ultralytics < 8.1
    checkpoint["train_metrics"] = {"metrics/mAP50(B)": np.float64(0.75), "epoch": np.int64(3)}
    checkpoint["train_args"] = {
        **checkpoint["train_args"],
        "save_dir": pathlib.PosixPath("runs/detect/train"),
    }
    checkpoint["device"] = torch.device("cpu")
    path = folder / "old.pt"
    torch.save(checkpoint, path)
    payload = zipfile.ZipFile(path).read("old/data.pkl")
    renames = {
        b"cultralytics.utils\nIterableSimpleNamespace": b"cultralytics.yolo.utils\nIterableSimpleNamespace",
        b"cultralytics.nn.modules.conv\nConv\n": b"cultralytics.nn.modules\nConv\n",
        b"c__builtin__\nset\n": b"cdill._dill\n_load_type\nX\x03\x00\x00\x00set\x85R",
    }
    old_names = payload
    for new, old in renames.items():
        assert payload.count(new) == 1
        old_names = old_names.replace(new, old)
    return path, repack(path.read_bytes(), old_names)


def test_older_checkpoint_shapes_load(tmp_path: Path) -> None:
    import torch

    path, old_names = _old_style_checkpoint(tmp_path)
    expected = _torch_load(path)
    assert_same(read_checkpoint(path.read_bytes()), expected)
    assert_same(read_checkpoint(old_names), expected)
    detector = yolo_from_checkpoint(old_names, tmp_path / "old.pt")
    image, _ = tool.random_scene(seed=5, size=(160, 160))
    trust = DetectorTrust(tmp_path / "t.json")
    reference = load_detector(FACE_MODEL, trust, allow_untrusted=True, cache=DetectorCache())
    assert torch.equal(_predictions(detector, image)[0], _predictions(reference._model, image)[0])


# -- the allow-list --------------------------------------------------------------------------------


def test_allow_list_is_the_documented_one() -> None:
    import torch

    torch_classes = {f"{getattr(torch.nn, n).__module__}.{n}" for n in TORCH_MODULE_CLASSES}
    fixed = (
        set(allowed_globals()) - torch_classes - {"torch.nn.modules.linear.NonDynamicallyQuantizableLinear"}
    )
    classes = ("PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath")
    paths = {f"pathlib{module}.{name}" for module in ("", "._local") for name in classes}
    kinds = ("Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool")
    dtypes = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
    torch_values = {f"torch.{kind}Storage" for kind in kinds} | {f"torch.{dtype}" for dtype in dtypes}
    assert fixed == paths | torch_values | {
        "_codecs.encode", "builtins.frozenset", "builtins.getattr", "builtins.set", "collections.OrderedDict",
        "dill._dill._load_type", "numpy._core.multiarray.scalar", "numpy.core.multiarray.scalar",
        "numpy.dtype", "torch.Size", "torch.device", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_tensor", "torch._utils._rebuild_tensor_v2",
        "ultralytics.utils.IterableSimpleNamespace", "ultralytics.nn.modules.block.Silence",
        "ultralytics.nn.tasks.YOLOv10DetectionModel", "ultralytics.utils.loss.v10DetectLoss",
    }  # fmt: skip


def _admitted_classes() -> list[type]:
    """Every class the rule admits: torch's listed ones and ultralytics' model and loss classes."""
    import torch
    import ultralytics.nn.tasks  # noqa: F401

    from stablenew_qt.engine.adetailer.checkpoint_policy import _fixed_globals, _ultralytics_class

    classes = [g.target for g in _fixed_globals().values() if g.kind == "module"]
    for name, module in list(sys.modules.items()):
        if name.startswith(
            (
                "ultralytics.nn.modules",
                "ultralytics.nn.tasks",
                "ultralytics.utils.loss",
                "ultralytics.utils.tal",
            )
        ):
            for attr, value in vars(module).items():
                found = _ultralytics_class(f"{name}.{attr}") if isinstance(value, type) else None
                if found is not None:
                    classes.append(found.target)
    assert torch.nn.Conv2d in classes and len(classes) > 100
    return classes


def test_admitted_classes_are_built_without_their_code() -> None:
    """No admitted class has its own ``__new__``; each ``__setstate__`` of theirs is redone in UPGRADES."""
    import torch

    upgraded = tuple(resolve() for resolve, _ in UPGRADES)
    for cls in _admitted_classes():
        new = types.SimpleNamespace.__new__ if issubclass(cls, types.SimpleNamespace) else object.__new__
        assert cls.__new__ is new, cls
        own_setstate = [k for k in cls.__mro__ if "__setstate__" in vars(k) and k is not torch.nn.Module]
        if own_setstate:
            assert issubclass(cls, upgraded), f"{cls.__qualname__}.__setstate__ is not redone in UPGRADES"


@pytest.mark.parametrize("index", range(len(UPGRADES)))
def test_upgrades_do_what_setstate_does(index: int) -> None:
    import torch
    from ultralytics.nn.modules.block import AAttn

    resolve, upgrade = UPGRADES[index]
    cls = resolve()
    samples = {
        "_ConvNd": lambda: torch.nn.Conv2d(2, 2, 1),
        "MultiheadAttention": lambda: torch.nn.MultiheadAttention(4, 2),
        "Softmax": lambda: torch.nn.Softmax(1),
        "Upsample": lambda: torch.nn.Upsample(scale_factor=2),
        "AAttn": lambda: AAttn(8, 2),
    }
    module = samples[cls.__name__]()
    added = {"_ConvNd": "padding_mode", "MultiheadAttention": "_qkv_same_embed_dim", "Softmax": "dim",
             "Upsample": "recompute_scale_factor", "AAttn": "all_head_dim"}[cls.__name__]  # fmt: skip
    state = {k: v for k, v in vars(module).items() if k != added}
    theirs = object.__new__(cls if cls.__name__ != "_ConvNd" else type(module))
    theirs.__setstate__(dict(state))
    ours = dict(state)
    upgrade(ours)
    assert ours[added] == vars(theirs)[added]


# -- fuzzing ---------------------------------------------------------------------------------------

_FACE_PICKLE = zipfile.ZipFile(FACE_MODEL).read("best/data.pkl")
_OPCODE_BYTES = sorted({op.code.encode("latin-1") for op in __import__("pickletools").opcodes})


@st.composite
def _mutated_pickle(draw: st.DrawFn) -> bytes:
    payload = bytearray(_FACE_PICKLE)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(payload) - 1))
        kind = draw(st.sampled_from(["opcode", "byte", "cut", "copy"]))
        if kind == "opcode":
            payload[at : at + 1] = draw(st.sampled_from(_OPCODE_BYTES))
        elif kind == "byte":
            payload[at] = draw(st.integers(0, 255))
        elif kind == "cut":
            del payload[at : at + draw(st.integers(1, 64))]
        else:
            payload[at:at] = payload[at : at + draw(st.integers(1, 64))]
    return bytes(payload)


@pytest.fixture(scope="module")
def warm() -> None:
    yolo_from_checkpoint(FACE_MODEL.read_bytes(), FACE_MODEL)  # imports what any load imports


def _load_changes_nothing(data: bytes) -> None:
    before = state_snapshot()
    with watching_calls() as calls:
        try:
            yolo_from_checkpoint(data, Path("fuzzed.pt"))
        except ModelError as exc:
            assert "\n" not in str(exc)
    assert calls == []
    assert snapshot_differences(before, state_snapshot()) == []


@pytest.mark.slow
@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_mutated_pickle())
def test_fuzzed_pickles_run_nothing_and_fail_only_with_model_errors(payload: bytes, warm: None) -> None:
    _load_changes_nothing(repack(FACE_MODEL.read_bytes(), payload))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(at=st.integers(0, 2**31), value=st.integers(0, 255), tail=st.booleans())
def test_fuzzed_archives_fail_only_with_model_errors(at: int, value: int, tail: bool) -> None:
    data = bytearray(_small_archive())
    # the zip structures live at both ends: mutate there, mostly
    index = (len(data) - 1 - at % 400) if tail else at % len(data)
    data[index] = value
    with pytest.raises(ModelError) as caught:  # a mutation in the tensor bytes still holds no detector
        yolo_from_checkpoint(bytes(data), Path("fuzzed.pt"))
    assert "\n" not in str(caught.value)


def _small_archive() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"weights": torch.arange(6, dtype=torch.float16).view(2, 3), "names": {0: "face"}}, buffer)
    return buffer.getvalue()
