"""How the pieces an ultralytics checkpoint may hold are built and checked, without running any.

Used by ``checkpoint_policy``; every function raises ``PickleRefused`` with a one-line reason.
"""

from __future__ import annotations

import inspect
import struct
import sys
import types
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, cast

from .restricted_pickle import MethodRef, PickleRefused

NUMPY_FORMATS = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b", "u8": "Q",
                 "u4": "I", "u2": "H", "u1": "B", "b1": "?"}  # fmt: skip
"""numpy dtype codes a checkpoint's scalars may have, and their ``struct`` formats."""

_MAX_DIMS = 16


@dataclass(frozen=True, slots=True)
class StorageType:
    """A torch storage class named in a persistent id: only its dtype matters."""

    dtype: Any


@dataclass(frozen=True, slots=True)
class Storage:
    untyped: Any
    dtype: Any
    numel: int


@dataclass(slots=True)
class NumpyDType:
    code: str
    byteorder: str = "="


# -- values ------------------------------------------------------------------------------------


def exactly(args: tuple[Any, ...], count: int, name: str) -> tuple[Any, ...]:
    if len(args) != count:
        raise PickleRefused(f"its pickle calls {name} with {len(args)} arguments")
    return args


def listed_items(args: tuple[Any, ...], name: str) -> list[Any]:
    if not args:
        return []
    (items,) = exactly(args, 1, name)
    if type(items) not in (list, tuple, set):
        raise PickleRefused(f"its pickle calls {name} on a {type(items).__qualname__}")
    return list(items)  # the unpickler checked the items are plain values


def ordered_dict(args: tuple[Any, ...]) -> OrderedDict[Any, Any]:
    if args:  # OrderedDict(x) would call x.keys(): torch.save writes OrderedDict() + SETITEMS
        raise PickleRefused("its pickle calls collections.OrderedDict with arguments")
    return OrderedDict()


def encode(args: tuple[Any, ...]) -> bytes:
    text, encoding = exactly(args, 2, "_codecs.encode")
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise PickleRefused("its pickle calls _codecs.encode other than for protocol 2 bytes")
    return text.encode("latin-1")


def path_function(join: Callable[..., str]) -> Callable[[tuple[Any, ...]], str]:
    def path(args: tuple[Any, ...]) -> str:
        if not args or any(type(part) is not str for part in args):
            raise PickleRefused("its pickle builds a path from something that is not text")
        return join(*args)

    return path


def numpy_scalar(args: tuple[Any, ...]) -> object:
    dtype, raw = exactly(args, 2, "numpy scalar")
    if not isinstance(dtype, NumpyDType) or type(raw) is not bytes:
        raise PickleRefused("its pickle builds a numpy scalar from unknown parts")
    order = ">" if dtype.byteorder == ">" else "<"
    layout = struct.Struct(order + NUMPY_FORMATS[dtype.code])
    if len(raw) != layout.size:
        raise PickleRefused("its pickle builds a numpy scalar of the wrong size")
    return layout.unpack(raw)[0]


def set_numpy_byteorder(dtype: NumpyDType, state: object) -> None:
    if type(state) is not tuple or len(state) < 2 or state[1] not in ("<", ">", "|", "="):
        raise PickleRefused("its pickle gives a numpy dtype an unknown state")
    dtype.byteorder = state[1]


def dims(value: object) -> tuple[int, ...]:
    if type(value) is not tuple and not _is_torch_size(value):
        raise PickleRefused("its pickle gives a tensor shape that is not a tuple")
    shape = tuple(cast(Iterable[int], value))
    if len(shape) > _MAX_DIMS or any(type(d) is not int or not 0 <= d < 2**48 for d in shape):
        raise PickleRefused("its pickle gives a tensor an impossible shape")
    return shape


def _is_torch_size(value: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and type(value) is torch.Size


def empty_table(value: object) -> bool:
    return type(value) in (dict, OrderedDict) and not value


# -- objects -----------------------------------------------------------------------------------


def checked_attribute(obj: object, key: object, value: object) -> object:
    """``value`` checked for ``obj.<key>``: data only, never in place of the class's code."""
    cls = type(obj)
    if type(key) is not str or not key.isidentifier() or key.startswith("__"):
        raise PickleRefused(f"its pickle sets the attribute {str(key)[:40]!r} of {cls.__qualname__}")
    if isinstance(value, MethodRef):
        function = value.function
        if key == "forward" and isinstance(function, types.MethodType) and function.__self__ is obj:
            return function  # a fused Conv: forward = forward_fuse, bound to itself
        if key == "detect" and isinstance(function, types.FunctionType):
            return function  # heads of ultralytics < 8.1 kept Detect.forward
        raise PickleRefused(f"its pickle stores a method as {cls.__qualname__}.{key}")
    # A method may be shadowed by data (ultralytics stores the layer's class name as ``type``,
    # hiding Module.type); calling it then fails. Shadowing it with something callable (a module)
    # would make the call run other code, so that is refused.
    if callable(value) and _is_code(inspect.getattr_static(cls, key, None)):
        raise PickleRefused(f"its pickle replaces the method {cls.__qualname__}.{key} with a callable object")
    return value


def _is_code(value: object) -> bool:
    return callable(value) or hasattr(type(value), "__get__")


@cache
def module_defaults() -> dict[str, Callable[[], object]]:
    import torch

    # training is always pickled (torch's __setstate__ adds no default); the rest are tables or None
    fresh = {key: value for key, value in vars(torch.nn.Module()).items() if key != "training"}
    return {key: _factory(value) for key, value in fresh.items()}


def _factory(value: object) -> Callable[[], object]:
    kind = type(value)
    return (lambda: None) if value is None else kind


_TABLES = ("_parameters", "_buffers", "_modules")


def check_module(module: object, attributes: dict[str, Any]) -> None:
    import torch

    name = type(module).__qualname__
    wanted = {"_parameters": torch.nn.Parameter, "_buffers": torch.Tensor, "_modules": torch.nn.Module}
    for table, kind in wanted.items():
        entries = attributes[table]
        if type(entries) not in (dict, OrderedDict):
            raise PickleRefused(f"its pickle gives a {name} a {table} that is not a dict")
        for key, value in entries.items():
            if type(key) is not str or not (value is None or isinstance(value, kind)):
                raise PickleRefused(f"its pickle puts a {type(value).__qualname__} into {name}.{table}")
    if type(attributes.get("training", False)) is not bool:
        raise PickleRefused(f"its pickle sets {name}.training to something that is not a bool")
    for key, value in attributes.items():
        if key in _TABLES or key not in module_defaults():
            continue
        if key == "_is_full_backward_hook":
            if value not in (None, True, False):
                raise PickleRefused(f"its pickle sets {name}.{key} to a {type(value).__qualname__}")
        elif key == "_non_persistent_buffers_set":
            if type(value) is not set or any(type(item) is not str for item in value):
                raise PickleRefused(f"its pickle sets {name}.{key} to something that is not a set of names")
        elif type(value) not in (dict, OrderedDict) or value:  # hook tables hold callables
            raise PickleRefused(f"its pickle gives {name} hooks ({key})")


def _torch_class(name: str) -> Callable[[], type]:
    def resolve() -> type:
        import torch

        cls: type = getattr(torch.nn.modules, name.rpartition(".")[0]).__dict__[name.rpartition(".")[2]]
        return cls

    return resolve


def _ultralytics_attention() -> type:
    from ultralytics.nn.modules.block import AAttn

    cls: type = AAttn
    return cls


def _upgrade_attention(attributes: dict[str, Any]) -> None:
    heads, dim = attributes.get("num_heads"), attributes.get("head_dim")
    if "all_head_dim" not in attributes and type(heads) is int and type(dim) is int:
        attributes["all_head_dim"] = heads * dim


def _defaults(**values: object) -> Callable[[dict[str, Any]], None]:
    def upgrade(attributes: dict[str, Any]) -> None:
        for key, value in values.items():
            attributes.setdefault(key, value)

    return upgrade


UPGRADES: tuple[tuple[Callable[[], type], Callable[[dict[str, Any]], None]], ...] = (
    # What the __setstate__ of these classes adds to files saved before the attribute existed.
    (_torch_class("conv._ConvNd"), _defaults(padding_mode="zeros")),
    (_torch_class("activation.MultiheadAttention"), _defaults(_qkv_same_embed_dim=True)),
    (_torch_class("activation.Softmax"), _defaults(dim=None)),
    (_torch_class("upsampling.Upsample"), _defaults(recompute_scale_factor=True)),
    (_ultralytics_attention, _upgrade_attention),
)
