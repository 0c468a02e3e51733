"""Bad input below the CLI: refused with a ConfigError that names the input and says what to do,
before anything is written, in bounded time (pytest-timeout) and memory (a child process under
an address-space limit).

Covers issue 18's cases that core reaches: ``input_image_path`` (huge, ``~nosuchuser``, folder,
FIFO, ``/dev/zero``, missing, NUL, header bombs of 30000² and 2³¹ pixels, too small for img2img),
config files (FIFO, ``/dev/zero``, folder, 50 MB, UTF-16/32, binary junk) and output folders (a
file, a dangling link, ``/proc``, a date folder linked outside, no free space), plus the rule that
a config restored from someone's image never keeps its ``input_image_path``.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from PIL import Image

from stablenew_qt.core import preflight as preflight_module
from stablenew_qt.core.config import MAX_CONFIG_BYTES, RunConfig, read_config_file
from stablenew_qt.core.errors import ConfigError, shorten
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.images import MAX_INPUT_SIDE, MIN_IMG2IMG_SIDE, load_input_image
from stablenew_qt.core.infotext import config_from_image, png_metadata, read_image_metadata
from stablenew_qt.core.metadata import read_generation_settings
from stablenew_qt.core.outputs import OutputSettings, encode_png
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.core.sequencer import StageSequencer

pytestmark = pytest.mark.timeout(30)  # a hang (a FIFO opened for reading) fails instead of blocking


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR declares ``width``×``height`` but whose data is a few bytes (a "bomb")."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def snapshot(root: Path) -> dict[str, int]:
    """Every path under ``root`` with its size (-1 for folders): what "nothing written" compares."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (-1 if p.is_dir() else p.stat().st_size)
        for p in root.rglob("*")
        if not p.is_fifo()
    }


# -- input images --------------------------------------------------------------------------------

ImageCase = Callable[[Path], str]


def _long_path(tmp: Path) -> str:
    return str(tmp / ("a" * 5000 + ".png"))


def _no_such_user(tmp: Path) -> str:
    return "~nosuchuser-stablenew/x.png"


def _folder(tmp: Path) -> str:
    (tmp / "folder.png").mkdir()
    return str(tmp / "folder.png")


def _fifo(tmp: Path) -> str:
    os.mkfifo(tmp / "pipe.png")
    return str(tmp / "pipe.png")


def _dev_zero(tmp: Path) -> str:
    return "/dev/zero"


def _missing(tmp: Path) -> str:
    return str(tmp / "missing.png")


def _nul(tmp: Path) -> str:
    return str(tmp / "a\0b.png")


def _header(width: int, height: int) -> ImageCase:
    def make(tmp: Path) -> str:
        path = tmp / f"bomb-{width}x{height}.png"
        path.write_bytes(png_with_header(width, height))
        return str(path)

    return make


def _real(width: int, height: int) -> ImageCase:
    def make(tmp: Path) -> str:
        path = tmp / f"small-{width}x{height}.png"
        Image.new("RGB", (width, height), (10, 20, 30)).save(path)
        return str(path)

    return make


def _text_named_png(tmp: Path) -> str:
    (tmp / "notes.png").write_text("not an image", encoding="utf-8")
    return str(tmp / "notes.png")


IMAGE_CASES: dict[str, tuple[ImageCase, str]] = {
    "5000-character path": (_long_path, "longer than 4096 characters"),
    "~nosuchuser": (_no_such_user, "there is no user 'nosuchuser-stablenew'"),
    "folder": (_folder, "it is a folder, not a regular file"),
    "FIFO": (_fifo, "it is a FIFO (named pipe), not a regular file"),
    "/dev/zero": (_dev_zero, "it is a device, not a regular file"),
    "missing": (_missing, "it does not exist"),
    "NUL in path": (_nul, "contains a NUL character"),
    "header 30000x30000": (_header(30000, 30000), "more than 178,956,970 pixels"),
    "header 2^31 wide": (_header(2**31, 1), "more than 178,956,970 pixels"),
    "header 10000x10000 (bomb warning range)": (_header(10000, 10000), "is 10000×10000 pixels"),
    "header 8200x100": (_header(MAX_INPUT_SIDE + 8, 100), f"at most {MAX_INPUT_SIDE} pixels on each side"),
    "1x1 img2img input": (_real(1, 1), f"img2img needs at least {MIN_IMG2IMG_SIDE} pixels"),
    "7x7 img2img input": (_real(7, 7), f"img2img needs at least {MIN_IMG2IMG_SIDE} pixels"),
    "text named .png": (_text_named_png, "is not a readable image"),
}
_NEEDS_POSIX = {"FIFO", "/dev/zero"}


def _image_case(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    name = request.param
    if name in _NEEDS_POSIX and sys.platform == "win32":
        pytest.skip("FIFOs and /dev/zero are POSIX")
    make, fragment = IMAGE_CASES[name]
    return make(tmp_path), fragment


@pytest.fixture(params=list(IMAGE_CASES))
def bad_image(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return _image_case(request, tmp_path)


def _img2img_first(path: str) -> RunConfig:
    return RunConfig.from_dict(
        {"input_image_path": path, "txt2img": {"enabled": False}, "img2img": {"enabled": True}}
    )


def _assert_names(error: ConfigError, value: str, fragment: str, field: str) -> None:
    (problem,) = error.problems
    assert problem.field == field
    assert fragment in problem.message
    assert repr(shorten(value)) in problem.message  # names the input, quoted, shortened when huge
    assert len(problem.message) < 400 and "\n" not in problem.message  # one line
    assert problem.message.rstrip().split(";")[-1].strip()  # ... and what to do after it


def test_plan_refuses_a_bad_input_image(bad_image: tuple[str, str], tmp_path: Path) -> None:
    path, fragment = bad_image
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as info:
        StageSequencer().build_execution_plan(_img2img_first(path))
    _assert_names(info.value, path, fragment, "input_image_path")
    assert snapshot(tmp_path) == before


def test_run_refuses_a_bad_input_image_before_anything_runs(
    bad_image: tuple[str, str], tmp_path: Path
) -> None:
    path, fragment = bad_image
    out = tmp_path / "out"
    out.mkdir()
    executor = FakeExecutor()
    with pytest.raises(ConfigError) as info:
        PipelineRunner(executor, OutputSettings(out, save_intermediates=True)).run(
            _img2img_first(path), CancelToken()
        )
    _assert_names(info.value, path, fragment, "input_image_path")
    assert executor.calls == [] and snapshot(out) == {}


@pytest.mark.parametrize("name", [n for n in IMAGE_CASES if "img2img" not in n])
def test_loading_a_bad_input_image_is_a_config_error(name: str, tmp_path: Path) -> None:
    if name in _NEEDS_POSIX and sys.platform == "win32":
        pytest.skip("FIFOs and /dev/zero are POSIX")
    make, fragment = IMAGE_CASES[name]
    path = make(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_input_image(path)
    _assert_names(info.value, path, fragment, "input_image_path")


_UNREADABLE = [
    "5000-character path",
    "~nosuchuser",
    "folder",
    "FIFO",
    "/dev/zero",
    "missing",
    "header 30000x30000",
    "header 2^31 wide",
]


@pytest.mark.parametrize("name", _UNREADABLE)
@pytest.mark.parametrize(
    "read", [read_image_metadata, read_generation_settings, config_from_image], ids=lambda f: f.__name__
)
def test_reading_metadata_of_a_bad_image_is_a_config_error(
    name: str, read: Callable[[str], object], tmp_path: Path
) -> None:
    """``info IMAGE``, "use these settings" and drops read metadata: a FIFO must not hang them."""
    if name in _NEEDS_POSIX and sys.platform == "win32":
        pytest.skip("FIFOs and /dev/zero are POSIX")
    path = IMAGE_CASES[name][0](tmp_path)
    with pytest.raises(ConfigError) as info:
        read(path)
    assert repr(shorten(path))[1:-1] in str(info.value) and "\n" not in str(info.value)


def test_metadata_of_a_large_image_is_still_read(tmp_path: Path) -> None:
    path = IMAGE_CASES["header 10000x10000 (bomb warning range)"][0](tmp_path)  # over 8192, no warning
    assert read_image_metadata(path).parameters is None


def test_a_tiny_image_may_start_an_upscale(tmp_path: Path) -> None:
    """Only img2img needs 64 px a side; upscaling a 7×7 icon is allowed (it becomes 14×14 at ×2)."""
    path = _real(7, 7)(tmp_path)
    config = RunConfig.from_dict(
        {"input_image_path": path, "txt2img": {"enabled": False}, "upscale": {"enabled": True}}
    )
    assert StageSequencer().build_execution_plan(config).input_image_path == path
    assert load_input_image(path).size == (7, 7)


# -- config files --------------------------------------------------------------------------------

ConfigCase = Callable[[Path], str]


def _write(name: str, data: bytes) -> ConfigCase:
    def make(tmp: Path) -> str:
        (tmp / name).write_bytes(data)
        return str(tmp / name)

    return make


def _sparse(tmp: Path) -> str:
    with (tmp / "huge.json").open("wb") as handle:
        handle.truncate(50 * 1024 * 1024)  # 50 MB that take no disk space
    return str(tmp / "huge.json")


_JSON = '{"prompt": "café"}'
CONFIG_CASES: dict[str, tuple[ConfigCase, str]] = {
    "FIFO": (lambda tmp: _fifo(tmp), "FIFO (named pipe)"),
    "/dev/zero": (_dev_zero, "it is a device"),
    "folder": (lambda tmp: str(tmp), "it is a folder"),
    "50 MB": (_sparse, f"the most this reads is {MAX_CONFIG_BYTES:,}"),
    "UTF-16 with BOM": (
        _write("u16.json", _JSON.encode("utf-16")),
        "UTF-16 or UTF-32 text; save it as UTF-8",
    ),
    "UTF-32 with BOM": (
        _write("u32.json", _JSON.encode("utf-32")),
        "UTF-16 or UTF-32 text; save it as UTF-8",
    ),
    "UTF-16 without BOM": (_write("u16le.json", _JSON.encode("utf-16-le")), "contains NUL bytes"),
    "binary junk": (_write("junk.json", bytes(range(256)) * 8), "contains NUL bytes"),
    "latin-1": (_write("latin1.json", _JSON.encode("latin-1")), "not UTF-8 text"),
    "missing": (lambda tmp: str(tmp / "nope.json"), "it does not exist"),
    "5000-character path": (lambda tmp: str(tmp / ("c" * 5000)), "longer than 4096 characters"),
    "~nosuchuser": (lambda tmp: "~nosuchuser-stablenew/c.json", "there is no user"),
}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_read_config_file_refuses(name: str, tmp_path: Path) -> None:
    if name in _NEEDS_POSIX and sys.platform == "win32":
        pytest.skip("FIFOs and /dev/zero are POSIX")
    make, fragment = CONFIG_CASES[name]
    path = make(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    _assert_names(info.value, path, fragment, "")
    assert info.value.problems[0].message.startswith(f"config file {shorten(path)!r}: ")
    assert snapshot(tmp_path) == before


def test_read_config_file_accepts_a_utf8_bom_and_field_errors_keep_their_field(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + _JSON.encode("utf-8"))
    assert read_config_file(path).prompt == "café"
    path.write_text('{"seed": -2}', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        read_config_file(path)
    assert [p.field for p in info.value.problems] == ["seed"]


# -- output folders ------------------------------------------------------------------------------


def _txt2img(**changes: object) -> RunConfig:
    return RunConfig.from_dict({"txt2img": {"width": 64, "height": 64, "steps": 1}, **changes})


def _run(
    out: Path, config: RunConfig | None = None
) -> tuple[FakeExecutor, pytest.ExceptionInfo[ConfigError]]:
    executor = FakeExecutor()
    with pytest.raises(ConfigError) as info:
        PipelineRunner(executor, OutputSettings(out)).run(config or _txt2img(), CancelToken())
    assert executor.calls == [], "nothing may run before the output folder is known to be usable"
    return executor, info


def test_output_folder_that_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("I am a file")
    _, info = _run(out)
    _assert_names(info.value, str(out), "is a file, not a folder", "output_dir")
    assert out.read_text() == "I am a file"


def test_dangling_output_link_is_refused_and_its_target_not_created(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.symlink_to(tmp_path / "gone" / "runs", target_is_directory=True)
    _, info = _run(out)
    _assert_names(info.value, str(out), "which does not exist", "output_dir")
    assert not (tmp_path / "gone").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_proc_as_output_folder(tmp_path: Path) -> None:
    _, info = _run(Path("/proc"))
    _assert_names(info.value, "/proc", "cannot write in the output folder", "output_dir")


@pytest.mark.skipif(os.name == "nt" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir(mode=0o555)
    try:
        _, info = _run(out)
    finally:
        out.chmod(0o755)
    _assert_names(info.value, str(out), "cannot write in the output folder", "output_dir")
    assert snapshot(out) == {}


def test_date_folder_linked_outside_the_output_folder(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / f"{datetime.now().astimezone():%Y-%m-%d}").symlink_to(elsewhere, target_is_directory=True)
    _, info = _run(out)
    (problem,) = info.value.problems
    assert problem.field == "output_dir" and "outside the output folder" in problem.message
    assert snapshot(elsewhere) == {}


def test_too_little_free_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    monkeypatch.setattr(preflight_module.shutil, "disk_usage", lambda _path: _Usage(4096))
    _, info = _run(out, _txt2img(batch_size=4))
    _assert_names(info.value, str(out), "has 0.0 MiB free, and this run needs up to", "output_dir")
    assert not out.exists()


class _Usage:
    def __init__(self, free: int) -> None:
        self.free, self.total, self.used = free, free, 0


def test_the_space_estimate_covers_real_pngs(tmp_path: Path) -> None:
    """The estimate (3 bytes a pixel + text) is at least what a noise PNG and its chunks take."""
    config = _txt2img(batch_size=2, prompt="p" * 5000)
    plan = StageSequencer().build_execution_plan(config)
    needed = preflight_module.estimate_output_bytes(plan, config, save_intermediates=False)
    noise = Image.effect_noise((64, 64), 128).convert("RGB")
    real = 2 * len(encode_png(noise, png_metadata("p" * 5000 + "\nSteps: 1", config)))
    assert real <= needed < 20 * real


# -- bounded memory ------------------------------------------------------------------------------

_CHILD = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))  # a decode of 30000² would need 2.5 GiB
from stablenew_qt.core.config import read_config_file
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.images import check_input_image, load_input_image
for kind, path in zip(sys.argv[1::2], sys.argv[2::2]):
    readers = [read_config_file] if kind == "config" else [check_input_image, load_input_image]
    for read in readers:
        try:
            read(path)
            print("accepted", path)
        except ConfigError:
            print("refused", path)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="uses RLIMIT_AS and /dev/zero")
def test_refusals_fit_in_one_gib_of_address_space(tmp_path: Path) -> None:
    bombs = [_header(30000, 30000)(tmp_path), _header(2**31, 1)(tmp_path), "/dev/zero"]
    args = [a for path in bombs for a in ("image", path)] + [
        "config",
        "/dev/zero",
        "config",
        _sparse(tmp_path),
    ]
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.split("\n")[:-1] == [f"refused {p}" for p in bombs for _ in range(2)] + [
        "refused /dev/zero",
        f"refused {tmp_path / 'huge.json'}",
    ]


# -- configs restored from images ----------------------------------------------------------------


def test_a_restored_config_never_keeps_its_input_image_path(tmp_path: Path) -> None:
    shared = _img2img_first("/home/someone/secret.png")
    path = tmp_path / "shared.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=png_metadata("a cat\nSteps: 20, Seed: 1", shared))
    restored = config_from_image(path)
    assert restored.input_image_path is None
    assert restored == shared.model_copy(update={"input_image_path": None})
    settings = read_generation_settings(path)
    assert settings.config.input_image_path is None
    (note,) = settings.notes
    assert "'/home/someone/secret.png'" in note and "choose the input image yourself" in note
    with pytest.raises(ConfigError, match="needs an input image"):
        StageSequencer().build_execution_plan(restored)
    assert json.loads(shared.to_json())["input_image_path"] == "/home/someone/secret.png"  # unchanged
