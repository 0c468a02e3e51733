"""The static scan of an ultralytics checkpoint's pickle, done without unpickling it.

An ultralytics ``.pt`` file is a pickle of whole ``nn.Module`` objects, and ultralytics loads it with
``torch.load(weights_only=False)``, which runs any callable the file names. Before a trusted
detector is loaded (see ``detector.py``), ``scan_checkpoint`` walks the pickle's opcodes
symbolically and refuses the file unless every global is on ``ALLOWED_GLOBALS`` or is a model class
(``MODEL_CLASS_MODULES``), model classes are only created the way ``torch.save`` writes them
(``NEWOBJ``, never called with arguments), no global is modified, and ``getattr`` only fetches
``forward``. ``os.system`` and friends are refused even in a trusted file. The scan is a second
fence, not a sandbox: the trust decision is the user's.
"""

from __future__ import annotations

import _compat_pickle
import importlib
import io
import pickletools
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import ModelError

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
