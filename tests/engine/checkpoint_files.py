"""Detector files for the loader tests, built from raw pickle opcodes and zip layouts.

Nothing here comes from outside the test suite: the hostile files are written byte by byte as the
attacks of issue 18 describe them, the real ones are ``tests/data/face_tiny.pt`` or models that
ultralytics saves from its own yaml files in the test.
"""

from __future__ import annotations

import io
import os
import pathlib
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FACE_MODEL = Path(__file__).parents[1] / "data" / "face_tiny.pt"

PROTO2 = b"\x80\x02"


def unicode(text: str) -> bytes:
    """BINUNICODE ``text``."""
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def glob(module: str, name: str) -> bytes:
    """GLOBAL ``module.name``."""
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def torch_zip(pickle_bytes: bytes, extra: dict[str, bytes] | None = None, folder: str = "archive") -> bytes:
    """A zip laid out like torch.save's (stored records under one folder) around ``pickle_bytes``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", pickle_bytes)
        archive.writestr(f"{folder}/byteorder", "little")
        for name, record in (extra or {}).items():
            archive.writestr(f"{folder}/{name}", record)
        archive.writestr(f"{folder}/version", "3\n")
    return buffer.getvalue()


def records(data: bytes) -> dict[str, bytes]:
    """Every record of a torch archive, read with torch's reader, by name without the top folder."""
    import torch

    reader = torch._C.PyTorchFileReader(io.BytesIO(data))
    return {name: bytes(reader.get_record(name)) for name in reader.get_all_records()}


def repack(data: bytes, pickle_bytes: bytes) -> bytes:
    """The torch archive ``data`` with its data.pkl replaced, written by torch's own zip writer."""
    import torch

    buffer = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(buffer)
    for name, record in records(data).items():
        if name in ("version", ".data/version", ".data/serialization_id"):
            continue  # the writer adds its own
        record = pickle_bytes if name == "data.pkl" else record
        writer.write_record(name, record, len(record))
    writer.write_end_of_file()
    return buffer.getvalue()


# -- zip layouts -------------------------------------------------------------------------------


def _stored_parts(files: list[tuple[str, bytes]], start: int) -> tuple[bytes, bytes]:
    local, central = bytearray(), bytearray()
    for name, data in files:
        raw, crc, at = name.encode(), zlib.crc32(data), start + len(local)
        local += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), len(raw), 0
        )
        local += raw + data
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, 0, 0, 0, crc, len(data), len(data), len(raw),
            0, 0, 0, 0, 0, at,
        )  # fmt: skip
        central += raw
    return bytes(local), bytes(central)


def gapped_zip(pickle_bytes: bytes) -> bytes:
    """A consistent zip with one unlisted byte between its first and second record."""
    files = _torch_files(pickle_bytes)
    first_local, first_dir = _stored_parts(files[:1], 0)
    rest_local, rest_dir = _stored_parts(files[1:], len(first_local) + 1)
    body = first_local + b"\0" + rest_local
    directory = first_dir + rest_dir
    return (
        body + directory + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 3, 3, len(directory), len(body), 0)
    )


def _torch_files(pickle_bytes: bytes) -> list[tuple[str, bytes]]:
    return [("archive/data.pkl", pickle_bytes), ("archive/byteorder", b"little"), ("archive/version", b"3\n")]


def _zip64_end(count: int, size: int, offset: int) -> bytes:
    return struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, offset)


def two_central_directories(hidden: bytes, shown: bytes) -> bytes:
    """A zip in which Python's ``zipfile`` reads ``shown`` as data.pkl and torch's reader ``hidden``.

    Two central directories, each with its zip64 end record. ``zipfile`` takes the zip64 record
    just before the locator (and ignores the locator's offset); miniz follows the locator's offset
    to the other record and its directory.
    """
    hidden_local, hidden_dir = _stored_parts(_torch_files(hidden), 0)
    shown_local, shown_dir = _stored_parts(_torch_files(shown), len(hidden_local))
    body = hidden_local + shown_local
    hidden_dir_at = len(body)
    body += hidden_dir
    hidden_end_at = len(body)
    body += _zip64_end(3, len(hidden_dir), hidden_dir_at)
    shown_dir_at = len(body)
    body += shown_dir + _zip64_end(3, len(shown_dir), shown_dir_at)
    body += struct.pack("<4sIQI", b"PK\x06\x07", 0, hidden_end_at, 1)
    return body + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)


def deflate_bomb(inflated: int = 3 * 2**30) -> bytes:
    """A torch-like archive whose data.pkl is deflated: about ``inflated / 1000`` bytes on disk."""
    chunk_size = 2**20
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = packer.compress(bytes(chunk_size)) + packer.flush(zlib.Z_FULL_FLUSH)  # the same bytes each time
    stream = chunk * (inflated // chunk_size) + zlib.compressobj(9, zlib.DEFLATED, -15).flush()
    raw = b"archive/data.pkl"
    header = struct.pack(
        "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0, 0, len(stream), inflated, len(raw), 0
    )
    rest_local, rest_dir = _stored_parts(
        [("archive/byteorder", b"little"), ("archive/version", b"3\n")], len(header) + len(raw) + len(stream)
    )
    first_dir = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, 0, len(stream), inflated, len(raw),
        0, 0, 0, 0, 0, 0,
    ) + raw  # fmt: skip
    body = header + raw + stream + rest_local
    directory = first_dir + rest_dir
    return (
        body + directory + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, 3, 3, len(directory), len(body), 0)
    )


# -- the hostile pickles of issue 18 -------------------------------------------------------------


def system_call(marker: Path) -> bytes:
    """``os.system(<create marker>)``."""
    command = f"\"{sys.executable}\" -c \"open(r'{marker}', 'w').close()\""
    return PROTO2 + glob("os", "system") + unicode(command) + b"\x85R."


def _config_dict(items: dict[str, Any]) -> bytes:
    # A dict built with EMPTY_DICT/SETITEMS from pickle.dumps output of each value (protocol 2).
    body = b"}("
    for key, value in items.items():
        body += unicode(key) + pickle.dumps(value, protocol=2)[2:-1]
    return body + b"u"


def append_builds_a_model(marker: Path) -> bytes:
    """NEWOBJ of an allowed class, BUILD {"append": DetectionModel}, APPEND of a model config.

    Python's unpickler then calls ``obj.append(cfg)``: ``DetectionModel(cfg)``, whose
    ``parse_model`` runs ``eval(cfg["activation"])``, which writes ``marker``.
    """
    activation = f"(open(r'{marker}', 'w').close(), __import__('torch').nn.SiLU())[1]"
    config = {"nc": 1, "activation": activation, "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": []}
    return (
        PROTO2
        + glob("torch.nn.modules.activation", "SiLU")  # no extend(), which APPEND would prefer
        + b")\x81"  # EMPTY_TUPLE NEWOBJ
        + b"}"
        + unicode("append")
        + glob("ultralytics.nn.tasks", "DetectionModel")
        + b"sb"  # SETITEM BUILD
        + _config_dict(config)
        + b"a."  # APPEND STOP
    )


def class_attribute_set(module: str, name: str, attribute: str, value: bytes) -> bytes:
    """DUP of a global, then BUILD with slot state ``{attribute: value}``: ``setattr(cls, ...)``."""
    return (
        PROTO2
        + glob(module, name)
        + b"2N}"  # DUP NONE EMPTY_DICT
        + unicode(attribute)
        + value
        + b"s\x86b0."  # SETITEM TUPLE2 BUILD POP STOP
    )


def posix_path_attribute() -> bytes:
    """Sets ``pathlib.PosixPath.stablenew_pwned = True`` for the whole process."""
    return class_attribute_set("pathlib", "PosixPath", "stablenew_pwned", b"\x88")


def namespace_getattr() -> bytes:
    """Replaces ``IterableSimpleNamespace.__getattr__`` with ``DetectionModel``."""
    return class_attribute_set(
        "ultralytics.utils",
        "IterableSimpleNamespace",
        "__getattr__",
        glob("ultralytics.nn.tasks", "DetectionModel"),
    )


def ordered_dict_of_instance() -> bytes:
    """``OrderedDict(ns)`` where ``ns.keys`` is ``DetectionModel``: building the dict builds a model."""
    return (
        PROTO2
        + glob("collections", "OrderedDict")
        + glob("ultralytics.utils", "IterableSimpleNamespace")
        + b")R}"  # EMPTY_TUPLE REDUCE EMPTY_DICT
        + unicode("keys")
        + glob("ultralytics.nn.tasks", "DetectionModel")
        + b"sb\x85R."  # SETITEM BUILD TUPLE1 REDUCE STOP
    )


def hostile_files(marker: Path) -> dict[str, bytes]:
    """The five files of issue 18 that got past the old pickle scan, by name."""
    clean = PROTO2 + b"}."
    return {
        "two central directories": two_central_directories(system_call(marker), clean),
        "BUILD append then APPEND": torch_zip(append_builds_a_model(marker)),
        "DUP global BUILD PosixPath": torch_zip(posix_path_attribute()),
        "DUP global BUILD IterableSimpleNamespace.__getattr__": torch_zip(namespace_getattr()),
        "OrderedDict(instance)": torch_zip(ordered_dict_of_instance()),
    }


# -- watching for effects ------------------------------------------------------------------------


def state_snapshot() -> dict[str, dict[str, int]]:
    """Identity of every attribute of the classes and modules a hostile file could change."""
    import torch
    import ultralytics.nn.modules.conv
    import ultralytics.nn.tasks
    import ultralytics.utils

    watched: dict[str, Any] = {
        "pathlib.PosixPath": pathlib.PosixPath,
        "pathlib.PurePath": pathlib.PurePath,
        "IterableSimpleNamespace": ultralytics.utils.IterableSimpleNamespace,
        "Conv": ultralytics.nn.modules.conv.Conv,
        "DetectionModel": ultralytics.nn.tasks.DetectionModel,
        "torch.nn.Module": torch.nn.Module,
        "ModuleList": torch.nn.ModuleList,
        "module ultralytics.nn.tasks": ultralytics.nn.tasks,
        "module ultralytics.nn.modules.conv": ultralytics.nn.modules.conv,
        "module ultralytics.utils": ultralytics.utils,
        "module torch.nn.modules.module": torch.nn.modules.module,
        "module os": os,
        "module pathlib": pathlib,
    }
    snapshot = {name: {key: id(value) for key, value in vars(obj).items()} for name, obj in watched.items()}
    snapshot["sys.modules"] = {name: id(module) for name, module in sys.modules.items()}
    snapshot["environment"] = {
        key: hash(value) for key, value in os.environ.items() if key != "PYTEST_CURRENT_TEST"
    }
    return snapshot


@contextmanager
def watching_calls() -> Iterator[list[str]]:
    """Records calls of ``os.system``, ``subprocess.Popen``, ``eval``/``exec`` and ``parse_model``."""
    import builtins

    import ultralytics.nn.tasks

    calls: list[str] = []
    originals = {
        (os, "system"): os.system,
        (os, "popen"): os.popen,
        (subprocess, "Popen"): subprocess.Popen,
        (builtins, "eval"): builtins.eval,
        (builtins, "exec"): builtins.exec,
        (ultralytics.nn.tasks, "parse_model"): ultralytics.nn.tasks.parse_model,
    }

    def recorder(name: str) -> Any:
        def record(*args: object, **kwargs: object) -> None:
            calls.append(f"{name}{args!r:.300}")

        return record

    for (owner, name), _ in originals.items():
        setattr(owner, name, recorder(name))
    try:
        yield calls
    finally:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)


def snapshot_differences(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> list[str]:
    """What changed between two ``state_snapshot``s, as readable lines."""
    changes = []
    for group in before.keys() | after.keys():
        old, new = before.get(group, {}), after.get(group, {})
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                state = "added" if key not in old else "removed" if key not in new else "changed"
                changes.append(f"{group}: {key} {state}")
    return changes
