"""Test session set-up: offline, headless, and no network.

Environment variables are set before any test module imports Qt, diffusers or ultralytics.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator

import pytest

os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_AUTOINSTALL"] = "0"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# platformdirs follows the XDG variables: caches, data and logs written by the code under test go
# to a throw-away folder, never to the real home directory.
_SANDBOX = tempfile.mkdtemp(prefix="stablenew-tests-")
for _var, _sub in (("XDG_CACHE_HOME", "cache"), ("XDG_DATA_HOME", "data"), ("XDG_CONFIG_HOME", "config")):
    os.environ[_var] = os.path.join(_SANDBOX, _sub)
os.environ.pop("STABLENEW_MODELS_DIR", None)
atexit.register(shutil.rmtree, _SANDBOX, ignore_errors=True)


class NetworkBlocked(RuntimeError):
    """A test tried to reach the network."""


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _guard_address(sock: socket.socket, address: object) -> None:
    if sock.family == getattr(socket, "AF_UNIX", object()):
        return
    raise NetworkBlocked(f"test tried to open a network connection to {address!r}; tests must run offline")


def _guarded_connect(self: socket.socket, address: object) -> None:
    _guard_address(self, address)
    _real_connect(self, address)  # pragma: no cover - unreachable for inet sockets


def _guarded_connect_ex(self: socket.socket, address: object) -> int:
    _guard_address(self, address)
    return _real_connect_ex(self, address)  # pragma: no cover


def _guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
    if host not in (None, "localhost", "127.0.0.1", "::1", b"localhost"):
        raise NetworkBlocked(f"test tried to resolve {host!r}; tests must run offline")
    return _real_getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _block_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    yield


# -- shared factories -------------------------------------------------------------------------
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from PIL import Image  # noqa: E402

from stablenew_qt.core.config import RunConfig  # noqa: E402

SMALL: dict[str, Any] = {
    "prompt": "a lighthouse at dusk, oil painting",
    "negative_prompt": "blurry",
    "seed": 1234,
    "txt2img": {"model": "tiny-sd.safetensors", "width": 64, "height": 64, "steps": 3},
    "img2img": {"steps": 4, "denoise": 0.5},
    "upscale": {"upscale_factor": 2.0},
    "adetailer": {"units": [{"adetailer_model": "face_yolov8n.pt"}]},
}


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def make_config_dict(**overrides: Any) -> dict[str, Any]:
    """A small, fast config as a dict: 64x64, 3 steps, fixed seed; sections merged with overrides."""
    return _merge(SMALL, overrides)


@pytest.fixture
def make_config() -> Any:
    """Factory: ``make_config(txt2img={"hires_enabled": True}, ...)`` -> RunConfig."""

    def make(**overrides: Any) -> RunConfig:
        return RunConfig.from_dict(make_config_dict(**overrides))

    return make


@pytest.fixture
def input_image(tmp_path: Path) -> Path:
    """An 80x64 RGB PNG on disk to start img2img/upscale plans from (img2img needs 64 px a side)."""
    path = tmp_path / "input.png"
    Image.new("RGB", (80, 64), (200, 120, 40)).save(path)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests, with the reason printed, where there is no CUDA GPU."""
    gpu_items = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False on this machine")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every demo model (name -> diffusers folder), built once per session into a temp dir
    (the real engine's tests and journeys share them)."""
    from stablenew_qt.engine.demo import ensure_demo_models

    return ensure_demo_models(tmp_path_factory.mktemp("demo-models"))
