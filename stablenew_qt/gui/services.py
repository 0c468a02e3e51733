"""What the window is given by the composition root (``stablenew_qt.app``) or by a test.

The GUI may not import the engine, so the engine arrives here as core's Executor protocol and
plain callables. Building an executor must be cheap (no torch import): the engine loads itself on
its first run, on the engine thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.executor import Executor
from ..core.samplers import BUILTIN_PIXEL_UPSCALERS, LATENT_UPSCALERS

MEMORY_MODES: tuple[tuple[str, str], ...] = (
    ("gpu", "Everything on the GPU (fastest)"),
    ("model_offload", "Model CPU offload (less VRAM)"),
    ("sequential_offload", "Sequential CPU offload (least VRAM, slow)"),
)


@dataclass(frozen=True)
class ModelChoices:
    """Model names to offer in the combos, by kind (names only; nothing is loaded)."""

    checkpoints: tuple[str, ...] = ()
    vaes: tuple[str, ...] = ()
    upscalers: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()


#: Built-in pixel upscalers every executor offers besides the ESRGAN-folder models.
BUILTIN_UPSCALERS: tuple[str, ...] = tuple(n for n in BUILTIN_PIXEL_UPSCALERS if n != "None")
#: Hires-fix upscalers A1111 lists besides the ESRGAN-folder models.
HIRES_UPSCALERS: tuple[str, ...] = LATENT_UPSCALERS + BUILTIN_UPSCALERS
#: ADetailer's standard detector file names.
STANDARD_DETECTORS: tuple[str, ...] = (
    "face_yolov8n.pt",
    "face_yolov8s.pt",
    "hand_yolov8n.pt",
    "person_yolov8n-seg.pt",
    "None",
)


@dataclass(frozen=True)
class UntrustedDetector:
    """An ADetailer detector file the engine refused to load until the user trusts it."""

    path: Path
    sha256: str


def _no_warm_up(_executor: Executor) -> None:
    """Executors that need no preparation (the FakeExecutor)."""


def _no_untrusted_detector(_message: str) -> UntrustedDetector | None:
    return None


def _cannot_trust(path: Path, _sha256: str) -> None:
    raise OSError(f"this engine keeps no detector trust list, so {path.name} cannot be trusted here")


def _no_device(_executor: Executor) -> str:
    return ""


@dataclass(frozen=True)
class AppServices:
    """The engine side of the window.

    ``make_executor(models_dir, memory_mode)`` builds an executor cheaply; ``list_models(models_dir)``
    lists names without loading anything; ``models_dir``/``output_dir``/``memory_mode`` are the
    defaults used when the settings file has none.

    ``untrusted_detector(message)`` recognises a run error caused by an untrusted detector;
    ``trust_detector(path, sha256)`` trusts that file if its bytes still have that SHA-256 (raises
    OSError otherwise, or when the trust list cannot be written);
    ``describe_device(executor)`` is a one-line device and memory readout ("" while the engine is
    not loaded) and is only ever called on the engine thread.
    ``warm_up(executor)`` prepares the engine (imports torch, lists models) on the engine thread as
    soon as the window shows, so the first Generate does not stall the GUI with those imports.
    """

    make_executor: Callable[[Path, str], Executor]
    list_models: Callable[[Path], ModelChoices]
    models_dir: Path
    output_dir: Path
    memory_mode: str = "gpu"
    untrusted_detector: Callable[[str], UntrustedDetector | None] = _no_untrusted_detector
    trust_detector: Callable[[Path, str], None] = _cannot_trust
    describe_device: Callable[[Executor], str] = _no_device
    warm_up: Callable[[Executor], None] = _no_warm_up
