"""Hostile detector files: refused with one line, nothing run, no state changed, memory bounded.

The five files of issue 18 passed the old static scan and ran code (or changed classes) when
ultralytics loaded them; each is built here from opcodes and zip layouts (``checkpoint_files``).
``test_hostile_files_attack_plain_loading`` shows, in a subprocess, that each really does so under
``torch.load(weights_only=False)``, so that the refusals below are refusals of real attacks.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from checkpoint_files import (
    FACE_MODEL,
    PROTO2,
    deflate_bomb,
    gapped_zip,
    glob,
    hostile_files,
    snapshot_differences,
    state_snapshot,
    system_call,
    torch_zip,
    two_central_directories,
    unicode,
    watching_calls,
)

from stablenew_qt.engine.adetailer.detector import (
    DetectorCache,
    DetectorTrust,
    UntrustedModelError,
    configure_ultralytics,
    load_detector,
)
from stablenew_qt.engine.adetailer.torch_archive import MAX_PICKLE_BYTES, ArchiveRefused, TorchArchive
from stablenew_qt.engine.errors import ModelError


@pytest.fixture(autouse=True)
def ultralytics_config(tmp_path_factory: pytest.TempPathFactory) -> None:
    configure_ultralytics(tmp_path_factory.getbasetemp() / "ultralytics-config")


@pytest.fixture
def trust(tmp_path: Path) -> DetectorTrust:
    return DetectorTrust(tmp_path / "trusted-detectors.json")


@pytest.fixture(scope="module", autouse=True)
def warm_loader(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One clean load first, so that the state snapshots see every module a load imports."""
    configure_ultralytics(tmp_path_factory.getbasetemp() / "ultralytics-config")
    load_detector(FACE_MODEL, DetectorTrust(Path("unused.json")), allow_untrusted=True, cache=DetectorCache())


def _refusal(tmp_path: Path, trust: DetectorTrust, data: bytes, name: str = "evil.pt") -> str:
    """Load ``data`` as a trusted detector; the one-line refusal, after checking nothing happened."""
    path = tmp_path / name
    path.write_bytes(data)
    trust.trust(path)  # trusting the bytes must not mean trusting code
    before = state_snapshot()
    with watching_calls() as calls, pytest.raises(ModelError) as caught:
        load_detector(path, trust, cache=DetectorCache())
    assert calls == []
    assert snapshot_differences(before, state_snapshot()) == []
    assert not isinstance(caught.value, UntrustedModelError)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"refusing to load detector {name}: ")
    return message


HOSTILE_REASONS = {
    "two central directories": "zip64 locator does not point to the record just before it",
    "BUILD append then APPEND": "stores the global ultralytics.nn.tasks.DetectionModel as data",
    "DUP global BUILD PosixPath": "modifies the global pathlib.PosixPath",
    "DUP global BUILD IterableSimpleNamespace.__getattr__": "stores the global ultralytics.nn.tasks.DetectionModel",  # noqa: E501
    "OrderedDict(instance)": "stores the global ultralytics.nn.tasks.DetectionModel as data",
}


@pytest.mark.parametrize("case", list(HOSTILE_REASONS))
def test_issue_18_hostile_files_are_refused_and_change_nothing(
    tmp_path: Path, trust: DetectorTrust, case: str
) -> None:
    marker = tmp_path / "payload-ran"
    message = _refusal(tmp_path, trust, hostile_files(marker)[case])
    assert HOSTILE_REASONS[case] in message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("case", "payload", "reason"),
    [
        # the same attacks with plain data where the global was, so the next rule is the one that holds
        (
            "BUILD on a global",
            PROTO2 + glob("pathlib", "PosixPath") + b"2N}" + unicode("x") + b"\x88s\x86b0.",
            "modifies the global pathlib.PosixPath",
        ),
        (
            "append to a module",
            PROTO2 + glob("torch.nn.modules.container", "ModuleList") + b")\x81K\x01a.",
            "tries to append to a torch.nn.modules.container.ModuleList",
        ),
        (
            "OrderedDict of an object",
            PROTO2
            + glob("collections", "OrderedDict")
            + glob("ultralytics.utils", "IterableSimpleNamespace")
            + b")R\x85R.",
            "calls collections.OrderedDict with arguments",
        ),
        (
            "model class called",
            PROTO2 + glob("ultralytics.nn.tasks", "DetectionModel") + b"}\x85R.",
            "calls ultralytics.nn.tasks.DetectionModel (torch.save creates model objects, never calls them)",
        ),
        (
            "os.system",
            system_call(Path("marker")),
            "references the global os.system, which ultralytics detector checkpoints never need",
        ),
        ("eval", PROTO2 + glob("builtins", "eval") + unicode("1") + b"\x85R.", "global builtins.eval"),
        (
            "getattr of a dunder",
            PROTO2
            + glob("builtins", "getattr")
            + glob("ultralytics.nn.modules.head", "Detect")
            + unicode("__init__")
            + b"\x86R.",
            "getattr with '__init__'; only 'forward' is ever needed",
        ),
        (
            "computed global name",
            b"\x80\x04\x8c\x02os" + glob("_codecs", "encode") + b"(\x8c\x06system\x8c\x06latin1tR\x93.",
            "computes the name of a global",
        ),
        ("INST opcode", b"(" + unicode("true") + b"ios\nsystem\n.", "INST opcode"),
        (
            "a method changed",
            PROTO2
            + glob("builtins", "getattr")
            + glob("ultralytics.nn.modules.head", "Detect")
            + unicode("forward")
            + b"\x86RN}"
            + unicode("__defaults__")
            + b")s\x86b.",
            "modifies a reference to Detect.forward",
        ),
        (
            "a module as a hook",
            PROTO2
            + glob("torch.nn.modules.activation", "SiLU")
            + b")\x81}"
            + unicode("_forward_hooks")
            + b"}K\x00"
            + glob("torch.nn.modules.linear", "Identity")
            + b")\x81ssb.",
            "gives SiLU hooks (_forward_hooks)",
        ),
        (
            "a module in place of a method",
            PROTO2
            + glob("torch.nn.modules.activation", "SiLU")
            + b")\x81}"
            + unicode("train")
            + glob("torch.nn.modules.linear", "Identity")
            + b")\x81sb.",
            "replaces the method SiLU.train with a callable object",
        ),
        (
            "a state for an old object",
            PROTO2 + glob("torch.nn.modules.activation", "SiLU") + b")\x81}b}b.",
            "sets the state of a SiLU it did not just create",
        ),
        ("tensor beyond its storage", None, "reaches past the end of its storage"),
        ("tensor repeating its storage", None, "more elements than the archive holds bytes"),
    ],
)  # fmt: skip
def test_restricted_loader_rules(
    tmp_path: Path, trust: DetectorTrust, case: str, payload: bytes, reason: str
) -> None:
    data = torch_zip(payload) if payload is not None else _tensor_case(case)
    assert reason in _refusal(tmp_path, trust, data)


def _tensor_case(case: str) -> bytes:
    """A four-float storage, and a tensor on it that reaches past it or repeats it 10^9 times."""
    offset, size, stride = (0, 8, 1) if case == "tensor beyond its storage" else (0, 10**9, 0)
    storage = (
        b"(" + unicode("storage") + glob("torch", "FloatStorage") + unicode("0") + unicode("cpu") + b"K\x04tQ"
    )
    payload = (
        PROTO2
        + glob("torch._utils", "_rebuild_tensor_v2")
        + b"("
        + storage
        + b"J" + offset.to_bytes(4, "little")
        + b"J" + size.to_bytes(4, "little") + b"\x85"
        + b"J" + stride.to_bytes(4, "little") + b"\x85"
        + b"\x89"
        + glob("collections", "OrderedDict")
        + b")RtR."
    )  # fmt: skip
    return torch_zip(payload, {"data/0": bytes(16)})


# -- the archive ---------------------------------------------------------------------------------


def test_two_central_directories_show_zipfile_and_torch_different_files() -> None:
    """The control for the first hostile file: the two readers really disagree."""
    import torch

    data = two_central_directories(PROTO2 + unicode("hidden") + b".", PROTO2 + unicode("shown") + b".")
    assert pickle.loads(zipfile.ZipFile(io.BytesIO(data)).read("archive/data.pkl")) == "shown"
    assert pickle.loads(torch._C.PyTorchFileReader(io.BytesIO(data)).get_record("data.pkl")) == "hidden"
    with pytest.raises(ArchiveRefused, match="zip64 locator"):
        TorchArchive(data)


def _central_directory_edit(data: bytes, edit: str) -> bytes:
    if edit == "comment":
        return data[:-2] + b"\x04\x00" + b"PK\x05\x06"
    if edit == "gap":
        return gapped_zip(PROTO2 + b"}.")
    if edit == "trailing data":
        return data + b"\0"
    raise AssertionError(edit)


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        ("comment", "does not end with a plain end-of-central-directory record"),
        ("gap", "does not start where the previous one ends"),
        ("trailing data", "does not end with a plain end-of-central-directory record"),
    ],
)
def test_archive_layout_is_exact(tmp_path: Path, trust: DetectorTrust, edit: str, reason: str) -> None:
    data = _central_directory_edit(torch_zip(PROTO2 + b"}."), edit)
    assert reason in _refusal(tmp_path, trust, data)


def test_repeated_names_and_extra_pickles_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr("archive/data.pkl", PROTO2 + b"}.")
        archive.writestr("archive/data.pkl", PROTO2 + b"}.")
    with pytest.raises(ArchiveRefused, match="repeats a file name"):
        TorchArchive(buffer.getvalue())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", PROTO2 + b"}.")
        archive.writestr("archive/constants.pkl", PROTO2 + b"}.")
    with pytest.raises(ArchiveRefused, match="TorchScript files are not models"):
        TorchArchive(buffer.getvalue())


def test_a_clean_checkpoint_behind_a_pickle_is_refused(tmp_path: Path, trust: DetectorTrust) -> None:
    # torch.load unpickles a file that does not start with a zip header; zipfile finds the zip anyway
    data = system_call(tmp_path / "payload-ran")[:-1] + b"0" + FACE_MODEL.read_bytes()
    assert zipfile.is_zipfile(io.BytesIO(data))
    assert "not a torch zip checkpoint" in _refusal(tmp_path, trust, data)


def test_an_oversized_pickle_is_refused_before_it_is_read(tmp_path: Path, trust: DetectorTrust) -> None:
    big = PROTO2 + b"X" + (MAX_PICKLE_BYTES).to_bytes(4, "little") + b"a" * MAX_PICKLE_BYTES + b"."
    assert "data.pkl is" in _refusal(tmp_path, trust, torch_zip(big))


# -- the decompression bomb ------------------------------------------------------------------------


def test_decompression_bomb_is_refused_within_bounded_memory(tmp_path: Path, trust: DetectorTrust) -> None:
    bomb = deflate_bomb()
    info = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("archive/data.pkl")
    assert len(bomb) < 4 * 2**20 and info.file_size == 3 * 2**30
    with zipfile.ZipFile(io.BytesIO(bomb)).open(info) as stream:  # the control: it really inflates
        assert len(stream.read(64 * 2**20)) == 64 * 2**20
    tracemalloc.start()
    try:
        message = _refusal(tmp_path, trust, bomb, "bomb.pt")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert "record archive/data.pkl is compressed" in message
    print(f"peak Python allocations while refusing the bomb: {peak / 2**20:.1f} MiB")
    assert peak < 32 * 2**20  # the 3 MiB file read twice (trust, load), nothing inflated


_RSS_SCRIPT = """
import json, resource, sys, tempfile
from pathlib import Path
from stablenew_qt.engine.adetailer import detector
from stablenew_qt.engine.errors import ModelError
folder = Path(tempfile.mkdtemp())
detector.configure_ultralytics(folder)
trust = detector.DetectorTrust(folder / "t.json")
detector.load_detector(Path(sys.argv[2]), trust, allow_untrusted=True, cache=detector.DetectorCache())
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    detector.load_detector(Path(sys.argv[1]), trust, allow_untrusted=True, cache=detector.DetectorCache())
    message = ""
except ModelError as exc:
    message = str(exc)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"growth_kib": after - before, "message": message}))
"""


@pytest.mark.slow
def test_decompression_bomb_leaves_peak_rss_alone(tmp_path: Path) -> None:
    """The process's peak resident memory (ru_maxrss) does not grow while the bomb is refused."""
    bomb = tmp_path / "bomb.pt"
    bomb.write_bytes(deflate_bomb())
    result = _run_python(_RSS_SCRIPT, str(bomb), str(FACE_MODEL))
    print(f"peak RSS growth while refusing the bomb: {result['growth_kib']} KiB")
    assert "is compressed" in result["message"]
    assert result["growth_kib"] < 64 * 1024  # 64 MiB, against 3 GiB inflated


# -- the controls: these files are real attacks --------------------------------------------------

_CONTROL_SCRIPT = """
import json, pathlib, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from stablenew_qt.engine.adetailer.detector import configure_ultralytics
configure_ultralytics(Path(tempfile.mkdtemp()))
import torch
import ultralytics.nn.tasks as tasks
from ultralytics.utils import IterableSimpleNamespace
from checkpoint_files import hostile_files
built = []
real = tasks.parse_model
tasks.parse_model = lambda *args, **kwargs: (built.append(1), real(*args, **kwargs))[1]
marker = Path(sys.argv[1])
original_getattr = IterableSimpleNamespace.__dict__["__getattr__"]
effects = {}
for name, data in hostile_files(marker).items():
    path = marker.parent / "hostile.pt"
    path.write_bytes(data)
    built.clear()
    try:
        torch.load(path, weights_only=False, map_location="cpu")  # what ultralytics does
    except Exception:
        pass
    effects[name] = {
        "marker": marker.exists(),
        "model built": bool(built),
        "PosixPath changed": hasattr(pathlib.PosixPath, "stablenew_pwned"),
        "namespace changed": IterableSimpleNamespace.__dict__.get("__getattr__") is tasks.DetectionModel,
    }
    marker.unlink(missing_ok=True)  # undo what the file did before the next one runs
    if hasattr(pathlib.PosixPath, "stablenew_pwned"):
        del pathlib.PosixPath.stablenew_pwned
    IterableSimpleNamespace.__getattr__ = original_getattr
print(json.dumps(effects))
"""


@pytest.mark.slow
def test_hostile_files_attack_plain_loading(tmp_path: Path) -> None:
    """``torch.load(weights_only=False)``, ultralytics' load, runs or changes what each file aims at."""
    effects = _run_python(_CONTROL_SCRIPT, str(tmp_path / "payload-ran"), str(Path(__file__).parent))
    assert effects["two central directories"]["marker"]
    assert (
        effects["BUILD append then APPEND"]["marker"] and effects["BUILD append then APPEND"]["model built"]
    )
    assert effects["DUP global BUILD PosixPath"]["PosixPath changed"]
    assert effects["DUP global BUILD IterableSimpleNamespace.__getattr__"]["namespace changed"]
    assert effects["OrderedDict(instance)"]["model built"]


def _run_python(script: str, *args: str) -> dict[str, object]:
    root = Path(__file__).parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
