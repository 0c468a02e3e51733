"""A pickle interpreter that builds data and allow-listed objects and never calls anything else.

Python's unpickler (and so ``torch.load(weights_only=False)``) calls whatever callable a pickle
names, with whatever arguments it gives; BUILD calls ``__setstate__`` or ``setattr`` on whatever
object is on the stack, APPEND calls that object's ``append``. ``RestrictedUnpickler`` interprets
the opcodes itself (decoded by ``pickletools.genops``, which only parses) and keeps these rules:

- plain data (None, bools, numbers, strings, bytes, tuples, lists, dicts, sets) is built directly;
  APPEND(S) works on real lists only, SETITEM(S) on real dicts only, ADDITEMS on real sets only,
  and dict keys and set items must be plain immutable values (their hashing runs no user code);
- GLOBAL/STACK_GLOBAL push only what the ``Policy`` resolves from its allow-list: a ``Global``
  marker (never the class or function itself) or an inert value such as a torch dtype;
- a ``Global`` can only be the callable of REDUCE or the class of NEWOBJ, which the policy turns
  into an object without calling anything from the file; it can never be stored in a container,
  an argument list or an attribute, and BUILD on it (setting attributes of a class) is refused;
- BUILD hands the state to the policy, which accepts it only for objects it has just created;
- the text protocol's opcodes, INST, OBJ, extensions and out-of-band buffers are refused;
- the work is bounded: every opcode and every element copied counts towards ``max_work``.

A refusal raises ``PickleRefused`` with a one-line reason and the byte position.
"""

from __future__ import annotations

import _compat_pickle
import codecs
import pickletools
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

MAX_WORK = 4_000_000
"""Opcodes plus copied elements allowed per pickle (a yolov8x-seg checkpoint needs about 0.2 M)."""

_PLAIN_KEYS = (str, int, float, bool, bytes, type(None))
_CONTAINERS = (tuple, list, dict, set, frozenset)
_GENOPS_CODECS = ("raw-unicode-escape", "utf-8", "latin-1", "ascii")  # what pickletools decodes with
_MAX_KEY_DEPTH = 8


class PickleRefused(Exception):
    """The pickle does something the restricted unpickler does not allow; says what and where."""


@dataclass(frozen=True, slots=True)
class Global:
    """An allow-listed global named by the pickle: only the policy can turn it into an object."""

    name: str
    kind: str
    target: Any


@dataclass(frozen=True, slots=True)
class MethodRef:
    """A function fetched with ``getattr`` (a module's ``forward``): inert, it has no ``__call__``;
    the policy unwraps it only where ultralytics stores one."""

    function: Any


class Policy(Protocol):
    """What the unpickler may build: the allow-list and the constructors that bypass the file."""

    def find(self, module: str, name: str) -> object:
        """A ``Global`` or an immutable value for ``module.name``; raises PickleRefused otherwise."""
        ...

    def reduce(self, func: Global, args: tuple[Any, ...]) -> object: ...

    def new(self, cls: Global, args: tuple[Any, ...]) -> object: ...

    def build(self, obj: object, state: object) -> None: ...

    def persistent(self, pid: object) -> object: ...


class RestrictedUnpickler:
    """Interprets one pickle under a ``Policy``; ``load()`` returns the root object."""

    def __init__(self, payload: bytes, policy: Policy, max_work: int = MAX_WORK) -> None:
        self._payload = payload
        self._policy = policy
        self._max_work = max_work
        self._work = 0
        self._stack: list[Any] = []
        self._metastack: list[list[Any]] = []
        self._memo: dict[int, Any] = {}
        self._protocol = 0
        self._holding: dict[int, tuple[Any, ...]] = {}  # tuples that contain a Global or MethodRef
        self._handlers = self._opcode_handlers()
        for codec in _GENOPS_CODECS:  # imported now, not by a file's opcode halfway through reading it
            codecs.lookup(codec)

    def load(self) -> object:
        position = 0
        try:
            for count, (opcode, arg, at) in enumerate(pickletools.genops(self._payload)):
                position = at or 0
                if count + self._work > self._max_work:
                    self._spend(count)
                if opcode.name == "STOP":
                    return self._pop()
                handler = self._handlers.get(opcode.name)
                if handler is None:
                    raise PickleRefused(
                        f"its pickle uses the {opcode.name} opcode, which torch.save never writes"
                    )
                handler(arg)
        except PickleRefused as exc:
            raise PickleRefused(f"{exc} (pickle byte {position})") from None
        except RecursionError:
            raise PickleRefused(f"its pickle nests too deeply (pickle byte {position})") from None
        except Exception as exc:  # genops and the checks reject malformed pickles in many ways
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise PickleRefused(f"its pickle is malformed ({reason}; pickle byte {position})") from None
        raise PickleRefused("its pickle has no STOP opcode")

    # -- the stack ----------------------------------------------------------------------------

    def _spend(self, units: int) -> None:
        self._work += units
        if self._work > self._max_work:
            raise PickleRefused(f"its pickle takes more than {self._max_work} steps to load")

    def _push(self, value: object) -> None:
        self._stack.append(value)

    def _pop(self) -> Any:
        if not self._stack:
            raise PickleRefused("its pickle pops an empty stack")
        return self._stack.pop()

    def _top(self) -> Any:
        if not self._stack:
            raise PickleRefused("its pickle reads an empty stack")
        return self._stack[-1]

    def _mark(self, _: object) -> None:
        self._metastack.append(self._stack)
        self._stack = []

    def _pop_mark(self) -> list[Any]:
        if not self._metastack:
            raise PickleRefused("its pickle pops a mark it never set")
        items = self._stack
        self._stack = self._metastack.pop()
        self._spend(len(items))
        return items

    def _pop_many(self, count: int) -> list[Any]:
        if len(self._stack) < count:
            raise PickleRefused("its pickle pops an empty stack")
        items = self._stack[len(self._stack) - count :]
        del self._stack[len(self._stack) - count :]
        return items

    # -- handlers -----------------------------------------------------------------------------

    def _opcode_handlers(self) -> dict[str, Callable[[Any], object]]:
        value = self._push
        handlers: dict[str, Callable[[Any], object]] = {
            "PROTO": self._proto,
            "FRAME": lambda _: None,
            "MARK": self._mark,
            "POP": lambda _: self._pop(),
            "POP_MARK": lambda _: self._pop_mark(),
            "DUP": lambda _: self._push(self._top()),
            "NONE": lambda _: value(None),
            "NEWTRUE": lambda _: value(True),
            "NEWFALSE": lambda _: value(False),
            "EMPTY_TUPLE": lambda _: value(()),
            "TUPLE": lambda _: value(self._tuple(self._pop_mark())),
            "TUPLE1": lambda _: value(self._tuple(self._pop_many(1))),
            "TUPLE2": lambda _: value(self._tuple(self._pop_many(2))),
            "TUPLE3": lambda _: value(self._tuple(self._pop_many(3))),
            "EMPTY_LIST": lambda _: value([]),
            "LIST": lambda _: value(self._extend([], self._pop_mark())),
            "APPEND": lambda _: self._append(),
            "APPENDS": lambda _: self._appends(),
            "EMPTY_DICT": lambda _: value({}),
            "DICT": lambda _: value(self._set_items({}, self._pop_mark())),
            "SETITEM": lambda _: self._setitem(),
            "SETITEMS": lambda _: self._setitems(),
            "EMPTY_SET": lambda _: value(set()),
            "ADDITEMS": lambda _: self._additems(),
            "FROZENSET": lambda _: value(frozenset(self._plain_keys(self._pop_mark()))),
            "MEMOIZE": lambda _: self._memo.__setitem__(len(self._memo), self._top()),
            "GLOBAL": self._global,
            "STACK_GLOBAL": lambda _: self._stack_global(),
            "REDUCE": lambda _: self._reduce(),
            "NEWOBJ": lambda _: self._newobj(),
            "NEWOBJ_EX": lambda _: self._newobj_ex(),
            "BUILD": lambda _: self._build(),
            "BINPERSID": lambda _: self._push(self._policy.persistent(self._plain(self._pop()))),
        }
        for name in ("BININT", "BININT1", "BININT2", "LONG1", "LONG4", "BINFLOAT"):
            handlers[name] = value
        for name in ("BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING"):
            handlers[name] = value
        for name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8"):
            handlers[name] = value
        for name in ("BINPUT", "LONG_BINPUT"):
            handlers[name] = lambda index: self._memo.__setitem__(index, self._top())
        for name in ("BINGET", "LONG_BINGET"):
            handlers[name] = self._get
        return handlers

    def _proto(self, protocol: int) -> None:
        if not 2 <= protocol <= 5:
            raise PickleRefused(f"its pickle uses protocol {protocol}; torch.save writes protocol 2")
        self._protocol = protocol

    def _get(self, index: int) -> None:
        if index not in self._memo:
            raise PickleRefused(f"its pickle reads memo entry {index}, which was never stored")
        self._push(self._memo[index])

    def _plain(self, item: object) -> Any:
        # Globals and method references stay out of every container, attribute and persistent id;
        # a tuple may hold them only to pass them as arguments (getattr(Detect, "forward")).
        if isinstance(item, Global | MethodRef):
            raise PickleRefused(f"its pickle stores {_describe(item)} as data")
        if type(item) is tuple and id(item) in self._holding:
            raise PickleRefused("its pickle stores a tuple holding a global as data")
        return item

    def _tuple(self, items: list[Any]) -> tuple[Any, ...]:
        result = tuple(items)
        if any(isinstance(item, Global | MethodRef) or id(item) in self._holding for item in items):
            self._holding[id(result)] = result  # kept alive, so the id stays this tuple's
        return result

    def _top_of(self, kind: type, action: str) -> Any:
        target = self._top()
        if type(target) is not kind:
            raise PickleRefused(f"its pickle tries to {action} {_describe(target)}")
        return target

    def _extend(self, target: list[Any], items: list[Any]) -> list[Any]:
        target.extend(self._plain(item) for item in items)
        return target

    def _append(self) -> None:
        items = self._pop_many(1)
        self._extend(self._top_of(list, "append to"), items)

    def _appends(self) -> None:
        items = self._pop_mark()
        self._extend(self._top_of(list, "append to"), items)

    def _setitem(self) -> None:
        key, item = self._pop_many(2)
        self._set_items(self._dict_on_top(), [key, item])

    def _setitems(self) -> None:
        items = self._pop_mark()
        self._set_items(self._dict_on_top(), items)

    def _dict_on_top(self) -> dict[Any, Any]:
        target = self._top()
        if type(target) not in (dict, OrderedDict):
            raise PickleRefused(f"its pickle tries to set items on {_describe(target)}")
        return target  # type: ignore[no-any-return]

    def _set_items(self, target: dict[Any, Any], items: list[Any]) -> dict[Any, Any]:
        if len(items) % 2:
            raise PickleRefused("its pickle sets a dict item without a value")
        for index in range(0, len(items), 2):
            key, item = items[index], items[index + 1]
            _check_key(key)
            if not isinstance(item, MethodRef):  # the policy checks these where it builds an object
                self._plain(item)
            target[key] = item
        return target

    def _additems(self) -> None:
        items = self._pop_mark()
        target = self._top_of(set, "add items to")
        target.update(self._plain_keys(items))

    def _plain_keys(self, items: list[Any]) -> list[Any]:
        for item in items:
            _check_key(item)
        return items

    def _global(self, arg: str) -> None:
        module, _, name = arg.partition(" ")
        if self._protocol < 3:  # what pickle.Unpickler.find_class does for Python 2 names
            module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        self._push(self._find(module, name))

    def _stack_global(self) -> None:
        module, name = self._pop_many(2)
        if type(module) is not str or type(name) is not str:
            raise PickleRefused("its pickle computes the name of a global at load time")
        self._push(self._find(module, name))

    def _find(self, module: str, name: str) -> object:
        if not all(part.isidentifier() for part in (*module.split("."), *name.split("."))):
            raise PickleRefused(f"its pickle names the global {module[:60]!r}.{name[:60]!r}")
        return self._policy.find(module, name)

    def _reduce(self) -> None:
        func, args = self._pop_many(2)
        arguments = self._arguments(args)
        self._spend(sum(len(arg) for arg in arguments if type(arg) in _CONTAINERS))  # set(list) copies
        self._push(self._policy.reduce(self._callable(func, "call"), arguments))

    def _newobj(self) -> None:
        cls, args = self._pop_many(2)
        self._push(self._policy.new(self._callable(cls, "create an object of"), self._arguments(args)))

    def _newobj_ex(self) -> None:
        cls, args, kwargs = self._pop_many(3)
        if kwargs != {} or type(kwargs) is not dict:
            raise PickleRefused("its pickle creates an object with keyword arguments")
        self._push(self._policy.new(self._callable(cls, "create an object of"), self._arguments(args)))

    def _build(self) -> None:
        state = self._pop()
        target = self._top()
        if isinstance(target, Global | MethodRef):
            raise PickleRefused(f"its pickle modifies {_describe(target)}")
        self._policy.build(target, state)

    def _callable(self, item: object, action: str) -> Global:
        if not isinstance(item, Global):
            raise PickleRefused(
                f"its pickle tries to {action} {_describe(item)}, which is not an allowed global"
            )
        return item

    def _arguments(self, args: object) -> tuple[Any, ...]:
        if type(args) is not tuple:
            raise PickleRefused(f"its pickle passes {_describe(args)} as an argument list")
        return args


def _check_key(key: object, depth: int = 0) -> None:
    """Dict keys and set items: immutable plain values, so hashing them runs no code of the file's."""
    if type(key) in _PLAIN_KEYS:
        return
    if type(key) is tuple and depth < _MAX_KEY_DEPTH:
        for item in key:
            _check_key(item, depth + 1)
        return
    raise PickleRefused(f"its pickle uses {_describe(key)} as a dict key or set item")


def _describe(item: object) -> str:
    if isinstance(item, Global):
        return f"the global {item.name}"
    if isinstance(item, MethodRef):
        return f"a reference to {getattr(item.function, '__qualname__', 'a method')}"
    return f"a {type(item).__module__}.{type(item).__qualname__}"
