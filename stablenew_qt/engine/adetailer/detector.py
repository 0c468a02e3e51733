"""ADetailer detectors: ultralytics YOLO models run offline, loaded only from trusted, clean pickles.

Detection follows spec stage-semantics §1.3 step 2 (ADetailer's ``adetailer/ultralytics.py``):
``YOLO(path)``, ``set_classes`` for ``-world`` models only, predict on the RGB image with
``conf=confidence`` at the ``imgsz`` stored in the checkpoint, boxes in image pixels, segmentation
masks resized to the image with PIL's default filter, and a white rectangle per box otherwise.

Why a trust list: an ultralytics ``.pt`` file is a pickle of whole ``nn.Module`` objects, and
ultralytics loads it with ``torch.load(weights_only=False)``, which runs any callable the file
names. So a detector loads only when (1) the user has trusted its exact bytes once (SHA-256 in
``DetectorTrust``; GUI: a confirmation dialog, CLI: ``--trust-model FILE``) and (2) a static scan
of the archive's pickle, done without unpickling, passes ``scan_checkpoint``: every global is on
``ALLOWED_GLOBALS`` or is a model class (``MODEL_CLASS_MODULES``), model classes are only created
the way ``torch.save`` writes them (``NEWOBJ``, never called with arguments), no global is modified,
and ``getattr`` only fetches ``forward``. ``os.system`` and friends are refused even in a trusted
file. The scan is a second fence, not a sandbox: the trust decision is the user's.

``configure_ultralytics`` must run before ultralytics is first imported: it switches ultralytics
offline (no DNS probe, no auto-install, no settings sync, no experiment trackers) and seeds the
fonts ultralytics would otherwise download.
"""

from __future__ import annotations

import _compat_pickle
import hashlib
import importlib
import io
import json
import logging
import os
import pickletools
import shutil
import tempfile
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from ..errors import ModelError
from .masks import Detection, bbox_mask

logger = logging.getLogger(__name__)

DETECTION_TASKS = frozenset({"detect", "segment"})
"""ultralytics tasks ADetailer can use: boxes, or boxes with masks."""

ALLOWED_GLOBALS = frozenset(
    {
        # Seen in the tiny detector tests/tools/make_tiny_face_detector.py trains (ultralytics 8.4):
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch.FloatStorage",
        "torch.HalfStorage",
        "torch.LongStorage",
        "torch.Size",
        "collections.OrderedDict",
        "builtins.set",  # written "__builtin__.set" by pickle protocol 2
        # Storages of other dtypes and the device of a tensor
        "torch.DoubleStorage",
        "torch.BFloat16Storage",
        "torch.IntStorage",
        "torch.ByteStorage",
        "torch.BoolStorage",
        "torch.device",
        # Segment heads of older ultralytics hold ``Detect.forward`` (pickled as getattr(Detect, "forward"))
        "builtins.getattr",
        # training arguments and metrics of older checkpoints (ultralytics < 8.0.44 used ultralytics.yolo.*)
        "ultralytics.utils.IterableSimpleNamespace",
        "ultralytics.yolo.utils.IterableSimpleNamespace",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "numpy.dtype",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "_codecs.encode",  # bytes under pickle protocol 2
    }
)
"""Globals besides model classes that an ultralytics detection/segmentation checkpoint may reference."""

MODEL_CLASS_MODULES = ("ultralytics.nn.modules", "ultralytics.nn.tasks", "torch.nn.modules")
"""A global from these modules or their submodules passes the scan if it is an ``nn.Module`` class."""

_CRITERION_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")  # classes defined there
_LEGACY_CLASSES = frozenset(  # renamed since; ultralytics maps them while loading
    {
        "ultralytics.nn.modules.block.Silence",
        "ultralytics.nn.tasks.YOLOv10DetectionModel",
        "ultralytics.utils.loss.v10DetectLoss",
    }
)
_GETATTR_NAMES = frozenset({"forward", "forward_fuse"})
_CHECKPOINT_CLASS_MODULE = "ultralytics.nn.tasks"  # the pickled root model lives here

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_TRACKERS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


class UntrustedModelError(ModelError):
    """The detector file has not been trusted yet; ``path`` and ``sha256`` let a dialog ask the user."""

    def __init__(self, path: Path, sha256: str) -> None:
        self.path = path
        self.sha256 = sha256
        super().__init__(
            f"detector {path.name} is not trusted yet (SHA-256 {sha256}). YOLO .pt files are pickles "
            f"that can run code when loaded, so each file must be trusted once: confirm it in the "
            f"dialog (GUI) or pass --trust-model {path} (CLI). Trust only files from sources you trust."
        )


# -- offline configuration ---------------------------------------------------------------------


def configure_ultralytics(config_dir: Path) -> None:
    """Make ultralytics work offline with its settings and fonts in ``config_dir``.

    Sets ``YOLO_OFFLINE`` (no DNS probe at import), ``YOLO_AUTOINSTALL=0`` (no pip installs) and
    ``YOLO_CONFIG_DIR``; ultralytics reads them once, at its first import, so call this before
    anything imports ultralytics. Then turns settings sync and every experiment-tracker
    integration off, points the weights/datasets/runs folders into ``config_dir`` and seeds
    ``Arial.ttf``/``Arial.Unicode.ttf`` so ultralytics never downloads fonts. Idempotent; if
    ultralytics was imported earlier with another folder, that folder gets the settings and fonts.

    Importing ultralytics also replaces ``PIL.Image.open`` for the whole process (an unreadable file
    then raises ModuleNotFoundError for ``pi_heif`` instead of ``UnidentifiedImageError``, after
    trying to install it) and ``torch.save`` (retries with sleeps); both are put back.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    import ultralytics.utils as yolo_utils  # reads the variables above on first import

    user_dir = Path(yolo_utils.USER_CONFIG_DIR)  # config_dir / "Ultralytics" unless imported before
    if user_dir.parent.resolve() != config_dir.resolve():
        logger.info("ultralytics was configured earlier; it keeps its config folder %s", user_dir)
    _seed_fonts(user_dir)
    _update_settings(yolo_utils.SETTINGS, user_dir)
    _undo_global_patches()


def _undo_global_patches() -> None:
    import torch
    from ultralytics.utils import patches

    if Image.open is patches.image_open:
        Image.open = patches._image_open
    if torch.save is patches.torch_save:
        torch.save = patches._torch_save


def _update_settings(settings: Any, user_dir: Path) -> None:
    wanted: dict[str, object] = {"sync": False, **dict.fromkeys(_TRACKERS, False)}
    for key, folder in (("weights_dir", "weights"), ("datasets_dir", "datasets"), ("runs_dir", "runs")):
        wanted[key] = str(user_dir / folder)
    changed = {key: value for key, value in wanted.items() if settings.get(key) != value}
    if changed:  # each update rewrites settings.json
        settings.update(changed)


def _seed_fonts(user_dir: Path) -> None:
    source = _font_source()
    if source is None:
        logger.warning("no font file found to seed %s; ultralytics may try to download Arial", user_dir)
        return
    user_dir.mkdir(parents=True, exist_ok=True)
    for name in _FONT_NAMES:
        target = user_dir / name
        if not target.exists():
            shutil.copyfile(source, target)


def _font_source() -> Path | None:
    try:
        import matplotlib
    except ImportError:
        pass
    else:
        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if font.is_file():
            return font
    from PIL import ImageFont

    default = getattr(ImageFont.load_default(), "path", None)  # a file only on some Pillow builds
    return Path(default) if isinstance(default, str) and Path(default).is_file() else None


# -- trust list --------------------------------------------------------------------------------


class DetectorTrust:
    """The detector files the user trusted, by SHA-256, in a JSON file (``path``) in the app data dir.

    A changed file has another hash and must be trusted again. A missing or corrupt list counts as
    empty; writes are atomic (temp file + replace). Safe to share between threads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def is_trusted(self, file: Path) -> bool:
        """Whether the current bytes of ``file`` were trusted. Raises ModelError if it is unreadable."""
        return self.is_trusted_hash(file_sha256(file))

    def is_trusted_hash(self, sha256: str) -> bool:
        """Whether a file with this SHA-256 hex digest was trusted."""
        with self._lock:
            return sha256 in self._read()

    def trust(self, file: Path) -> str:
        """Trust the current bytes of ``file``: record its SHA-256, name and the date; returns the hash."""
        digest = file_sha256(file)
        with self._lock:
            entries = self._read()
            entries[digest] = {
                "name": file.name,
                "trusted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _write_json_atomic(self.path, {"version": 1, "trusted": entries})
        return digest

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        trusted = data.get("trusted") if isinstance(data, dict) else None
        return dict(trusted) if isinstance(trusted, dict) else {}


def file_sha256(file: Path) -> str:
    """The SHA-256 hex digest of ``file``'s bytes; ModelError if it cannot be read."""
    return hashlib.sha256(_read_bytes(file)).hexdigest()


def _read_bytes(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read detector {file}: {exc.strerror or exc}") from exc


def _write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- static pickle scan ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Global:
    name: str

    def __repr__(self) -> str:
        return self.name


class _Refused(Exception):
    pass


class _NotAModel(_Refused):
    pass


_UNKNOWN = object()  # any value the scan does not track
_MARK = object()
_STRING_OPS = frozenset(
    {"UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "STRING", "BINSTRING", "SHORT_BINSTRING"}
)
_NEVER_WRITTEN_BY_TORCH = frozenset({"INST", "OBJ", "EXT1", "EXT2", "EXT4"})


def scan_checkpoint(data: bytes, name: str) -> frozenset[str]:
    """Every global the pickle of a torch zip checkpoint references, checked without unpickling.

    ``data`` is the whole file, ``name`` names it in errors. Raises ModelError naming the
    forbidden global or construct, or saying the file is no torch zip checkpoint.
    """
    try:
        payload = _data_pkl(data)
        return frozenset(_PickleScan(payload).run())
    except _NotAModel as exc:
        raise ModelError(f"{name} is not a detection or segmentation model: {exc}") from None
    except _Refused as exc:
        raise ModelError(f"refusing to load detector {name}: {exc}") from None


def _data_pkl(data: bytes) -> bytes:
    # torch.load reads a file as a zip only when it starts with a local file header; anything else it
    # unpickles directly, so a zip appended to a pickle must not pass as a clean archive.
    if not data.startswith(b"PK\x03\x04"):
        raise _Refused("it is not a torch zip checkpoint (old torch format or not a model)")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            pickles = [info for info in infos if info.filename.endswith(".pkl")]
            if len({info.filename for info in infos}) != len(infos):
                raise _Refused("its zip archive repeats a file name")
            if len(pickles) != 1 or not pickles[0].filename.endswith("/data.pkl"):
                found = ", ".join(info.filename for info in pickles) or "none"
                raise _Refused(
                    f"expected one data.pkl in the archive (TorchScript files are not models), found {found}"
                )
            return archive.read(pickles[0])
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _Refused(f"its zip archive is unreadable ({exc})") from None


class _PickleScan:
    """A symbolic run of a pickle's opcodes that tracks globals, strings and tuples, never objects."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.stack: list[object] = []
        self.memo: dict[int, object] = {}
        self.protocol = 0
        self.globals: set[str] = set()
        self.handlers: dict[str, Callable[[Any], None]] = {
            "PROTO": self._proto,
            "GLOBAL": self._global,
            "STACK_GLOBAL": self._stack_global,
            "MARK": lambda _: self.stack.append(_MARK),
            "MEMOIZE": lambda _: self.memo.__setitem__(len(self.memo), self._top()),
            "EMPTY_TUPLE": lambda _: self.stack.append(()),
            "TUPLE": lambda _: self.stack.append(tuple(self._pop_to_mark())),
            "TUPLE1": lambda _: self.stack.append(tuple(self._pop(1))),
            "TUPLE2": lambda _: self.stack.append(tuple(self._pop(2))),
            "TUPLE3": lambda _: self.stack.append(tuple(self._pop(3))),
            "REDUCE": self._reduce,
            "NEWOBJ": lambda _: self._new_object(2),
            "NEWOBJ_EX": lambda _: self._new_object(3),
            "BUILD": self._build,
            "APPEND": lambda _: self._fill(self._pop(1)),
            "SETITEM": lambda _: self._fill(self._pop(2)),
        }
        self.handlers.update(
            dict.fromkeys(("APPENDS", "SETITEMS", "ADDITEMS"), lambda _: self._fill(self._pop_to_mark()))
        )
        self.handlers.update(dict.fromkeys(_STRING_OPS, self.stack.append))
        self.handlers.update(dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT"), self._put))
        self.handlers.update(dict.fromkeys(("GET", "BINGET", "LONG_BINGET"), self._get))

    def run(self) -> set[str]:
        try:
            for opcode, arg, _ in pickletools.genops(self.payload):
                if opcode.name in _NEVER_WRITTEN_BY_TORCH:
                    raise _Refused(f"its pickle uses the {opcode.name} opcode, which torch.save never writes")
                handler = self.handlers.get(opcode.name)
                if handler is None:
                    self._generic(opcode)
                else:
                    handler(arg)
        except _Refused:
            raise
        except Exception as exc:  # genops and the symbolic stack reject malformed pickles in many ways
            raise _Refused(f"its pickle is malformed ({exc})") from None
        if not any(name.startswith(_CHECKPOINT_CLASS_MODULE + ".") for name in self.globals):
            raise _NotAModel("it holds no ultralytics YOLO model (a bare state dict or another kind of file)")
        return self.globals

    def _generic(self, opcode: pickletools.OpcodeInfo) -> None:
        before = opcode.stack_before
        if pickletools.markobject in before:
            self._pop_to_mark()
            self._pop(before.index(pickletools.markobject))
        else:
            self._pop(len(before))
        self.stack.extend([_UNKNOWN] * len(opcode.stack_after))

    def _pop(self, count: int) -> list[object]:
        if count > len(self.stack) or _MARK in self.stack[len(self.stack) - count :]:
            raise ValueError("stack underflow")
        items = self.stack[len(self.stack) - count :]
        del self.stack[len(self.stack) - count :]
        return items

    def _pop_to_mark(self) -> list[object]:
        marks = [i for i, item in enumerate(self.stack) if item is _MARK]
        if not marks:
            raise ValueError("no mark on the stack")
        items = self.stack[marks[-1] + 1 :]
        del self.stack[marks[-1] :]
        return items

    def _top(self) -> object:
        if not self.stack or self.stack[-1] is _MARK:
            raise ValueError("stack underflow")
        return self.stack[-1]

    def _proto(self, arg: int) -> None:
        self.protocol = arg

    def _put(self, arg: int) -> None:
        self.memo[arg] = self._top()

    def _get(self, arg: int) -> None:
        self.stack.append(self.memo[arg])

    def _global(self, arg: str) -> None:
        module, _, attr = arg.partition(" ")
        if self.protocol < 3:  # what Unpickler.find_class does for Python 2 names
            module, attr = _compat_pickle.NAME_MAPPING.get((module, attr), (module, attr))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        self._push_global(module, attr)

    def _stack_global(self, _: None) -> None:
        module, attr = self._pop(2)
        if not (isinstance(module, str) and isinstance(attr, str)):
            raise _Refused("its pickle computes the name of a global at load time")
        self._push_global(module, attr)

    def _push_global(self, module: str, attr: str) -> None:
        name = f"{module}.{attr}"
        if name not in ALLOWED_GLOBALS and not _is_model_class(module, attr):
            raise _Refused(f"it references the global {name}, which ultralytics checkpoints never need")
        self.globals.add(name)
        self.stack.append(_Global(name))

    def _reduce(self, _: None) -> None:
        func, args = self._pop(2)
        if not isinstance(func, _Global):
            raise _Refused("its pickle calls an object that is not a plain global")
        if func.name == "builtins.getattr":
            if not (isinstance(args, tuple) and len(args) == 2 and args[1] in _GETATTR_NAMES):
                raise _Refused(f"its pickle calls getattr with {args!r}; only 'forward' is ever needed")
            self.stack.append(_Global(f"{args[0]!r}.{args[1]}"))  # a method: never called or modified
            return
        if func.name not in ALLOWED_GLOBALS:
            raise _Refused(
                f"its pickle calls {func.name} (torch.save only creates model objects, never calls them)"
            )
        self.stack.append(_UNKNOWN)

    def _new_object(self, operands: int) -> None:
        if not isinstance(self._pop(operands)[0], _Global):  # cls.__new__(cls, ...): no __init__ runs
            raise _Refused("its pickle creates an object of a class that is not a plain global")
        self.stack.append(_UNKNOWN)

    def _build(self, _: None) -> None:
        self._fill(self._pop(1))

    def _fill(self, _items: list[object]) -> None:
        # BUILD, APPEND(S), SETITEM(S) and ADDITEMS change the object below their operands
        target = self._top()
        if isinstance(target, _Global):
            raise _Refused(f"its pickle modifies the global {target.name}")


def _is_model_class(module: str, attr: str) -> bool:
    name = f"{module}.{attr}"
    if name in _LEGACY_CLASSES:
        return True
    in_package = any(module == root or module.startswith(root + ".") for root in MODEL_CLASS_MODULES)
    defining = module in _CRITERION_MODULES
    if not (in_package or defining) or attr.startswith("_"):
        return False
    try:
        obj = getattr(importlib.import_module(module), attr, None)
    except Exception:  # a module name made up by the file: not one of ours
        return False
    if not isinstance(obj, type):
        return False
    if defining:
        return obj.__module__ == module
    import torch

    return issubclass(obj, torch.nn.Module)


# -- loading -----------------------------------------------------------------------------------


class Detector:
    """A loaded ultralytics detection or segmentation model, used as ADetailer uses it.

    Not thread-safe: run it on the engine's worker thread.
    """

    def __init__(self, model: Any, path: Path) -> None:
        self._model = model
        self.path = path
        self.task: str = model.task
        self.names: dict[int, str] = dict(model.names)
        self._classes = ""

    @property
    def is_world(self) -> bool:
        """Whether this is a YOLO-World model (ADetailer: "-world" in the file stem); it takes classes."""
        return "-world" in self.path.stem

    def predict(
        self, image: Image.Image, confidence: float, classes: str = "", device: str = ""
    ) -> list[Detection]:
        """Detect objects in ``image`` with score >= ``confidence`` (0..1), best first.

        ``classes`` (comma-separated) applies to YOLO-World models only; others ignore it. ``device``
        "" picks the GPU when there is one, "cpu" forces the CPU (A1111's lowvram/medvram).
        Boxes are in ``image`` pixels; each Detection's mask is an "L" image of ``image``'s size:
        the segmentation mask, or the filled box for box-only models. Nothing found: ``[]``.
        """
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"detection confidence must be within 0..1, got {confidence}")
        if self.is_world:
            self._apply_classes(classes)
        rgb = image.convert("RGB")
        results = self._model.predict(rgb, conf=confidence, device=device, verbose=False)
        return _detections(results[0], rgb.size)

    def _apply_classes(self, classes: str) -> None:
        if classes == self._classes:
            return
        wanted = [name.strip() for name in classes.split(",") if name.strip()]
        self._model.set_classes(wanted or list(self.names.values()))
        self._classes = classes


def _detections(result: Any, size: tuple[int, int]) -> list[Detection]:
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = [(float(a), float(b), float(c), float(d)) for a, b, c, d in boxes.xyxy.cpu().tolist()]
    scores = [float(score) for score in boxes.conf.cpu().tolist()]
    labels = [str(result.names.get(int(index), "")) for index in boxes.cls.cpu().tolist()]
    if result.masks is not None:
        masks = [_mask_image(mask, size) for mask in result.masks.data]
    else:
        masks = [bbox_mask(box, size) for box in xyxy]
    return [
        Detection(bbox=box, confidence=score, mask=mask, label=label)
        for box, score, mask, label in zip(xyxy, scores, masks, labels, strict=True)
    ]


def _mask_image(mask: Any, size: tuple[int, int]) -> Image.Image:
    # torchvision's to_pil_image(mask, mode="L") as ADetailer does it: x * 255 truncated to uint8
    pixels = (mask.float().cpu().numpy() * 255).astype("uint8")
    return Image.fromarray(pixels, mode="L").resize(size)


class DetectorCache:
    """Loaded detectors, least recently used first out, keyed by (file, modification time, size).

    A cached detector is still only returned when its file is trusted (or untrusted files are
    allowed); an edited file (new mtime or size) is hashed, scanned and loaded afresh.
    """

    def __init__(self, max_entries: int = 2) -> None:
        """Keep at most ``max_entries`` detectors loaded (each may hold device memory)."""
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[str, int, int], tuple[str, Detector]] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, path: Path, trust: DetectorTrust, allow_untrusted: bool = False) -> Detector:
        """The detector in ``path``, from the cache or loaded as ``load_detector`` describes."""
        key = _file_key(path)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                digest, detector = cached
                _check_trust(path, digest, trust, allow_untrusted)
                self._entries.move_to_end(key)
                return detector
            digest, detector = _load_checked(path, trust, allow_untrusted)
            self._entries[key] = (digest, detector)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
            return detector

    def clear(self) -> None:
        """Drop every loaded detector (e.g. to free device memory)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_DEFAULT_CACHE = DetectorCache()


def load_detector(
    path: Path, trust: DetectorTrust, allow_untrusted: bool = False, *, cache: DetectorCache | None = None
) -> Detector:
    """Load the ultralytics detector in ``path`` if it is trusted and its pickle is clean.

    Raises ``UntrustedModelError`` (with the file's SHA-256) when ``trust`` does not list the file
    and ``allow_untrusted`` is off, and ``ModelError`` when the file is missing, its pickle
    references a forbidden global (even if trusted), or it is not a detection or segmentation
    model. Detectors come from ``cache`` (the module's two-entry cache by default).
    Call ``configure_ultralytics`` first.
    """
    return (cache if cache is not None else _DEFAULT_CACHE).load(path, trust, allow_untrusted)


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"detector {path} not found: {exc.strerror or exc}") from exc
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def _check_trust(path: Path, digest: str, trust: DetectorTrust, allow_untrusted: bool) -> None:
    if not allow_untrusted and not trust.is_trusted_hash(digest):
        raise UntrustedModelError(path, digest)


def _load_checked(path: Path, trust: DetectorTrust, allow_untrusted: bool) -> tuple[str, Detector]:
    # Hash and scan the same bytes; ultralytics then reads the file again (a swap in between needs
    # write access to the models folder, which already means full control).
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    _check_trust(path, digest, trust, allow_untrusted)
    scan_checkpoint(data, path.name)
    return digest, Detector(_load_yolo(path), path)


def _load_yolo(path: Path) -> Any:
    from ultralytics.models import YOLO

    try:
        model = YOLO(str(path))
    except Exception as exc:  # ultralytics raises many kinds for files it cannot use
        raise ModelError(f"cannot load detector {path.name}: {exc}") from exc
    if model.task not in DETECTION_TASKS:
        raise ModelError(
            f"{path.name} is not a detection or segmentation model (ultralytics task {model.task!r}); "
            f"ADetailer needs a YOLO model whose task is {' or '.join(sorted(DETECTION_TASKS))}"
        )
    return model
