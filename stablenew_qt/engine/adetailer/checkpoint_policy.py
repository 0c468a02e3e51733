"""What an ultralytics detector checkpoint may contain, and how each piece is built without running it.

``read_checkpoint`` reads a ``torch.save`` archive (``torch_archive``) and interprets its pickle with
``restricted_pickle`` under ``CheckpointPolicy``, whose allow-list is:

- **module classes**: the torch ``nn`` classes in ``TORCH_MODULE_CLASSES`` and every ``nn.Module``
  subclass defined in ``ultralytics.nn.modules.*`` or ``ultralytics.nn.tasks`` (as installed; the
  old names ``Silence``, ``YOLOv10DetectionModel``, ``v10DetectLoss`` map to their successors),
  plus the classes of ``ultralytics.utils.loss``/``ultralytics.utils.tal`` that training leaves in
  ``model.criterion``, and ``IterableSimpleNamespace``. An object of these is made with
  ``object.__new__`` (no ``__init__``) and its state goes straight into its ``__dict__`` (no
  ``__setstate__``, no ``__setattr__``); a state value may not put a callable object in place of
  a method of the class. What the ``__setstate__`` of some classes adds to old files (torch's
  ``padding_mode``, ultralytics' ``all_head_dim``...) is redone as plain defaults (``UPGRADES``);
- **data helpers**, re-implemented rather than called: torch's ``_rebuild_tensor(_v2)`` and
  ``_rebuild_parameter`` (bounds-checked views of the archive's storages, no backward hooks, no
  metadata), ``collections.OrderedDict()`` with no arguments, ``set``/``frozenset`` of plain values,
  ``torch.Size``, ``torch.device``, ``_codecs.encode`` (protocol 2 bytes), ``pathlib`` paths (as
  strings), numpy scalars (as Python numbers), ``dill._dill._load_type`` for ``set``/``frozenset``,
  torch storage types and dtypes as values, and ``getattr(<model class or object>, "forward" |
  "forward_fuse")``, whose result may only be stored where ultralytics keeps one (a fused
  ``Conv``'s ``forward``, an old head's ``detect``).

Anything else the pickle names is refused by name. ``finish`` then fills the defaults torch's
``Module.__setstate__`` would, and checks every module: parameters, buffers and submodules of the
right types under string names, and every hook table empty (hooks are callables).

Why not torch's ``weights_only`` unpickler with these classes added (``add_safe_globals``), as
ultralytics' opt-in ``ULTRALYTICS_SAFE_LOAD`` does: it calls an allow-listed class on REDUCE with
the file's arguments (``DetectionModel(cfg)`` runs ``parse_model``, which sets ``Conv.default_act``
process-wide and, outside ultralytics' restricted mode, ``eval``s the config), and its BUILD calls
the class's ``__setstate__``; its allow-list is process-global state too.
"""

from __future__ import annotations

import inspect
import math
import ntpath
import posixpath
import re
import sys
import types
from collections.abc import Callable
from functools import cache
from typing import Any

from .checkpoint_objects import (
    NUMPY_FORMATS,
    UPGRADES,
    NumpyDType,
    Storage,
    StorageType,
    check_module,
    checked_attribute,
    dims,
    empty_table,
    encode,
    exactly,
    listed_items,
    module_defaults,
    numpy_scalar,
    ordered_dict,
    path_function,
    set_numpy_byteorder,
)
from .restricted_pickle import Global, MethodRef, PickleRefused, RestrictedUnpickler
from .torch_archive import TorchArchive

TORCH_MODULE_CLASSES = (
    "Sequential", "ModuleList", "ModuleDict", "Identity", "Linear", "Conv1d", "Conv2d",
    "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "SiLU", "ReLU", "ReLU6",
    "LeakyReLU", "Sigmoid", "Tanh", "GELU", "Hardswish", "Hardsigmoid", "Mish", "Softplus", "PReLU",
    "ELU", "Softmax", "MultiheadAttention", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d", "Upsample", "Dropout", "Dropout2d", "Embedding", "BCEWithLogitsLoss",
    "CrossEntropyLoss",
)  # fmt: skip
"""The ``torch.nn`` classes ultralytics detection and segmentation models are built from."""

_ULTRALYTICS_MODEL_MODULES = ("ultralytics.nn.modules", "ultralytics.nn.tasks")
_ULTRALYTICS_LOSS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal")
_RENAMED_MODULES = {"ultralytics.yolo.utils": "ultralytics.utils"}  # before ultralytics 8.0.44
_RENAMED_GLOBALS = {
    "ultralytics.nn.modules.block.Silence": "torch.nn.modules.linear.Identity",
    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
}
_NAMESPACES = ("ultralytics.utils.IterableSimpleNamespace",)
_PATHS = {
    f"{module}.{name}": join
    for module in ("pathlib", "pathlib._local")
    for name, join in (
        ("PosixPath", posixpath.join),
        ("PurePosixPath", posixpath.join),
        ("WindowsPath", ntpath.join),
        ("PureWindowsPath", ntpath.join),
    )
}
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": "bfloat16",
    "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32", "ShortStorage": "int16",
    "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
}  # fmt: skip
_DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")
_DILL_TYPES = {"set": "builtins.set", "frozenset": "builtins.frozenset"}
_METHOD_NAMES = ("forward", "forward_fuse")
_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|meta)(:\d{1,3})?")
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def read_checkpoint(data: bytes) -> object:
    """The root object of a ``torch.save`` checkpoint, built under the allow-list above.

    Raises ``ArchiveRefused`` or ``PickleRefused`` with a one-line reason.
    """
    archive = TorchArchive(data)
    policy = CheckpointPolicy(archive)
    root = RestrictedUnpickler(archive.pickle, policy).load()
    policy.finish()
    return root


def allowed_globals() -> list[str]:
    """The fixed part of the allow-list (ultralytics' own model classes are added by rule)."""
    fixed = set(_fixed_globals()) | set(_PATHS) | set(_NAMESPACES) | set(_RENAMED_GLOBALS)
    return sorted(fixed | {f"torch.{name}" for name in (*_STORAGE_DTYPES, *_DTYPES)})


@cache
def _fixed_globals() -> dict[str, Global]:
    import torch

    table = {
        f"{cls.__module__}.{cls.__qualname__}": Global(f"{cls.__module__}.{cls.__qualname__}", "module", cls)
        for cls in (getattr(torch.nn, name) for name in TORCH_MODULE_CLASSES)
    }
    linear = torch.nn.modules.linear.NonDynamicallyQuantizableLinear  # MultiheadAttention.out_proj
    linear_name = f"{linear.__module__}.{linear.__qualname__}"
    table[linear_name] = Global(linear_name, "module", linear)
    for name in (
        "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor", "torch._utils._rebuild_parameter",
        "collections.OrderedDict", "builtins.set", "builtins.frozenset", "torch.Size", "torch.device",
        "_codecs.encode", "builtins.getattr", "numpy.dtype", "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar", "dill._dill._load_type", *_PATHS,
    ):  # fmt: skip
        table[name] = Global(name, "function", None)
    return table


def _ultralytics_class(full_name: str) -> Global | None:
    module, _, name = full_name.rpartition(".")
    for old, new in _RENAMED_MODULES.items():
        if module == old or module.startswith(old + "."):
            module = new + module[len(old) :]
    in_models = any(module == root or module.startswith(root + ".") for root in _ULTRALYTICS_MODEL_MODULES)
    namespace = f"{module}.{name}" in _NAMESPACES
    if not (in_models or module in _ULTRALYTICS_LOSS_MODULES or namespace) or name.startswith("_"):
        return None
    loaded = sys.modules.get(module)  # never imported here: only what ultralytics.nn.tasks loaded
    cls = vars(loaded).get(name) if loaded is not None else None
    if not isinstance(cls, type) or not _ultralytics_home(cls.__module__):
        return None
    if f"{cls.__module__}.{cls.__qualname__}" in _NAMESPACES:
        return Global(full_name, "namespace", cls)
    import torch

    if issubclass(cls, torch.nn.Module):
        return Global(full_name, "module", cls)
    if module in _ULTRALYTICS_LOSS_MODULES and cls.__module__ == module:
        return Global(full_name, "object", cls)
    return None


def _ultralytics_home(module: str) -> bool:
    """Whether ``module`` is one whose classes may be built (a name re-exported there may live elsewhere)."""
    in_models = any(module == root or module.startswith(root + ".") for root in _ULTRALYTICS_MODEL_MODULES)
    return in_models or module in _ULTRALYTICS_LOSS_MODULES or module == "ultralytics.utils"


class CheckpointPolicy:
    """The restricted unpickler's policy for ultralytics checkpoints (see the module docstring)."""

    def __init__(self, archive: TorchArchive) -> None:
        import torch
        import ultralytics.nn.tasks  # noqa: F401  (imports every model, block and loss module)

        self._torch = torch
        self._archive = archive
        self._unbuilt: dict[int, object] = {}
        self.modules: list[Any] = []
        self._storages: dict[str, Storage] = {}
        self._elements = 0
        self._element_cap = archive.storage_bytes + 4096
        self._calls: dict[str, Callable[[tuple[Any, ...]], object]] = {
            "torch._utils._rebuild_tensor_v2": self._rebuild_tensor_v2,
            "torch._utils._rebuild_tensor": lambda args: self._tensor(*exactly(args, 4, "_rebuild_tensor")),
            "torch._utils._rebuild_parameter": self._rebuild_parameter,
            "collections.OrderedDict": ordered_dict,
            "builtins.set": lambda args: set(listed_items(args, "set")),
            "builtins.frozenset": lambda args: frozenset(listed_items(args, "frozenset")),
            "torch.Size": self._size,
            "torch.device": self._device,
            "_codecs.encode": encode,
            "builtins.getattr": self._getattr,
            "numpy.dtype": self._numpy_dtype,
            "numpy.core.multiarray.scalar": numpy_scalar,
            "numpy._core.multiarray.scalar": numpy_scalar,
            "dill._dill._load_type": self._dill_type,
            **{name: path_function(join) for name, join in _PATHS.items()},
        }

    # -- Policy -------------------------------------------------------------------------------

    def find(self, module: str, name: str) -> object:
        full_name = _RENAMED_GLOBALS.get(f"{module}.{name}", f"{module}.{name}")
        if module == "torch" and name in _STORAGE_DTYPES:
            return StorageType(getattr(self._torch, _STORAGE_DTYPES[name]))
        if module == "torch" and name in _DTYPES:
            return getattr(self._torch, name)
        found = _fixed_globals().get(full_name) or _ultralytics_class(full_name)
        if found is None:
            raise PickleRefused(
                f"it references the global {module}.{name}, which ultralytics detector checkpoints never need"
            )
        return found

    def reduce(self, func: Global, args: tuple[Any, ...]) -> object:
        if func.kind == "function":
            return self._calls[func.name](args)
        if func.kind == "namespace":  # SimpleNamespace pickles as cls() + BUILD
            return self.new(func, args)
        raise PickleRefused(
            f"its pickle calls {func.name} (torch.save creates model objects, never calls them)"
        )

    def new(self, cls: Global, args: tuple[Any, ...]) -> object:
        if cls.kind not in ("module", "object", "namespace"):
            raise PickleRefused(f"its pickle creates an object of {cls.name}, which is not a class")
        if args:
            raise PickleRefused(f"its pickle creates {cls.name} with arguments")
        klass = cls.target
        if cls.kind == "namespace":
            obj = types.SimpleNamespace.__new__(klass)
        elif klass.__new__ is object.__new__:
            obj = object.__new__(klass)
        else:
            raise PickleRefused(f"{cls.name} has its own __new__, which the loader will not call")
        self._unbuilt[id(obj)] = obj
        if cls.kind == "module":
            self.modules.append(obj)
        return obj

    def build(self, obj: object, state: object) -> None:
        if self._unbuilt.pop(id(obj), None) is not obj:
            raise PickleRefused(
                f"its pickle sets the state of a {type(obj).__qualname__} it did not just create"
            )
        if isinstance(obj, NumpyDType):
            set_numpy_byteorder(obj, state)
            return
        if type(state) is tuple and len(state) == 2 and state[1] is None:
            state = state[0]  # (dict, no slot state)
        if type(state) is not dict:
            raise PickleRefused(f"its pickle gives a {type(obj).__qualname__} a state that is not a dict")
        attributes = {key: checked_attribute(obj, key, value) for key, value in state.items()}
        object.__getattribute__(obj, "__dict__").update(attributes)

    def persistent(self, pid: object) -> object:
        if type(pid) is not tuple or len(pid) != 5 or pid[0] not in ("storage", b"storage"):
            raise PickleRefused("its pickle loads a persistent object that is not a tensor storage")
        _, storage_type, key, location, numel = pid
        if not isinstance(storage_type, StorageType) or type(key) is not str or not _KEY.fullmatch(key):
            raise PickleRefused("its pickle names a tensor storage in an unknown way")
        if type(location) is not str or type(numel) is not int or numel < 0:
            raise PickleRefused(f"its pickle describes tensor storage {key} in an unknown way")
        dtype = storage_type.dtype
        cached = self._storages.get(key)
        if cached is not None:
            if cached.dtype != dtype:
                raise PickleRefused(f"its pickle reads tensor storage {key} with two dtypes")
            return cached
        untyped = self._archive.storage(key, numel * dtype.itemsize)
        if not self._archive.native_byteorder:
            untyped.byteswap(dtype)
        storage = self._storages[key] = Storage(untyped, dtype, numel)
        return storage

    def finish(self) -> None:
        """Fill the defaults ``Module.__setstate__`` would and check every module built."""
        defaults = module_defaults()
        for module in self.modules:
            attributes = object.__getattribute__(module, "__dict__")
            for key, make in defaults.items():
                if key not in attributes:
                    attributes[key] = make()
            check_module(module, attributes)
            for cls, upgrade in UPGRADES:
                if isinstance(module, cls()):
                    upgrade(attributes)

    # -- re-implemented helpers -----------------------------------------------------------------

    def _rebuild_tensor_v2(self, args: tuple[Any, ...]) -> Any:
        if len(args) not in (6, 7):
            raise PickleRefused("its pickle calls _rebuild_tensor_v2 with the wrong arguments")
        storage, offset, size, stride, requires_grad, hooks, *metadata = args
        if not empty_table(hooks) or (metadata and metadata[0] not in (None, {})):
            raise PickleRefused("its pickle gives a tensor backward hooks or metadata")
        tensor = self._tensor(storage, offset, size, stride)
        if type(requires_grad) is not bool:
            raise PickleRefused("its pickle gives a tensor a requires_grad that is not a bool")
        tensor.requires_grad = requires_grad
        return tensor

    def _rebuild_parameter(self, args: tuple[Any, ...]) -> Any:
        data, requires_grad, hooks = exactly(args, 3, "_rebuild_parameter")
        if type(data) is not self._torch.Tensor or type(requires_grad) is not bool or not empty_table(hooks):
            raise PickleRefused("its pickle calls _rebuild_parameter with the wrong arguments")
        return self._torch.nn.Parameter(data, requires_grad)

    def _tensor(self, storage: object, offset: object, size: object, stride: object) -> Any:
        if not isinstance(storage, Storage) or type(offset) is not int or offset < 0:
            raise PickleRefused("its pickle builds a tensor from something that is not a storage")
        sizes, strides = dims(size), dims(stride)
        if len(sizes) != len(strides):
            raise PickleRefused("its pickle gives a tensor sizes and strides of different lengths")
        numel = math.prod(sizes)
        last = offset + sum((n - 1) * s for n, s in zip(sizes, strides, strict=True)) if numel else offset - 1
        if last >= storage.numel:
            raise PickleRefused("its pickle builds a tensor that reaches past the end of its storage")
        self._elements += numel
        if self._elements > self._element_cap:
            raise PickleRefused("its tensors hold more elements than the archive holds bytes")
        tensor = self._torch.empty((0,), dtype=storage.dtype)
        tensor.set_(storage.untyped, offset, sizes, strides)
        return tensor

    def _size(self, args: tuple[Any, ...]) -> Any:
        (shape,) = exactly(args, 1, "torch.Size")
        return self._torch.Size(dims(shape))

    def _device(self, args: tuple[Any, ...]) -> Any:
        if not 1 <= len(args) <= 2 or type(args[0]) is not str or not _DEVICE.fullmatch(args[0]):
            raise PickleRefused(f"its pickle names the device {str(args)[:60]}")
        if len(args) == 2 and (type(args[1]) is not int or not 0 <= args[1] < 256):
            raise PickleRefused(f"its pickle names the device {str(args)[:60]}")
        return self._torch.device(*args)

    def _getattr(self, args: tuple[Any, ...]) -> MethodRef:
        target, name = exactly(args, 2, "getattr")
        if name not in _METHOD_NAMES:
            raise PickleRefused(
                f"its pickle calls getattr with {str(name)[:40]!r}; only 'forward' is ever needed"
            )
        if isinstance(target, Global) and target.kind == "module":
            function = inspect.getattr_static(target.target, name, None)
            if isinstance(function, types.FunctionType):
                return MethodRef(function)
        elif any(module is target for module in self.modules):
            function = inspect.getattr_static(type(target), name, None)
            if isinstance(function, types.FunctionType):
                return MethodRef(types.MethodType(function, target))
        raise PickleRefused(f"its pickle calls getattr on {type(target).__qualname__} for {name}")

    def _numpy_dtype(self, args: tuple[Any, ...]) -> NumpyDType:
        code, *flags = args
        if (
            type(code) is not str
            or code not in NUMPY_FORMATS
            or any(type(flag) is not bool for flag in flags)
        ):
            raise PickleRefused(f"its pickle creates the numpy dtype {str(code)[:20]!r}")
        dtype = NumpyDType(code)
        self._unbuilt[id(dtype)] = dtype
        return dtype

    def _dill_type(self, args: tuple[Any, ...]) -> Global:
        (name,) = exactly(args, 1, "dill._dill._load_type")
        if name not in _DILL_TYPES:
            raise PickleRefused(f"its pickle loads the type {str(name)[:40]!r} through dill")
        return _fixed_globals()[_DILL_TYPES[name]]
