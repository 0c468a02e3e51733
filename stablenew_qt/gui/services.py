"""What the window is given by the composition root (``stablenew_qt.app``) or by a test.

The GUI may not import the engine, so the engine arrives as core's Engine protocol, built by
``make_engine``; everything else the window needs from outside is a plain callable. Building an
engine must be cheap (no torch import): it loads itself on its first job, on the engine thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..core.config import RunConfig
from ..core.errors import ConfigProblem, FailureCause, FailureKind
from ..core.executor import Engine
from ..core.job_runner import JobRunnerFactory
from ..core.options import MemoryMode
from ..core.samplers import BUILTIN_PIXEL_UPSCALERS, LATENT_UPSCALERS
from ..core.workers import WorkersSetting


@dataclass(frozen=True)
class ModelChoices:
    """Model names to offer in the combos, by kind (names only; nothing is loaded)."""

    checkpoints: tuple[str, ...] = ()
    vaes: tuple[str, ...] = ()
    upscalers: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()
    #: Which of ``checkpoints`` are the built-in demo models (noise by design).
    demo_checkpoints: tuple[str, ...] = ()

    @property
    def installed_checkpoints(self) -> tuple[str, ...]:
        """The checkpoints found in the models folder (the demo models left out)."""
        demo = set(self.demo_checkpoints)
        return tuple(name for name in self.checkpoints if name not in demo)

    def first_checkpoint(self) -> str:
        """The checkpoint a fresh window starts with: the user's own before the demo models, and a
        base model before a refiner or an inpainting model; "" when there is none."""
        for names in (self.installed_checkpoints, self.checkpoints):
            base = [n for n in names if not any(word in n.lower() for word in ("refiner", "inpaint"))]
            if base or names:
                return (base or list(names))[0]
        return ""

    def summary(self) -> str:
        """What was found, per kind: "2 checkpoints (+3 demo), 1 VAE, 0 upscalers, 2 detectors"."""

        def count(n: int, noun: str) -> str:
            return f"{n} {noun}{'' if n == 1 else 's'}"

        demo = f" (+{len(self.demo_checkpoints)} demo)" if self.demo_checkpoints else ""
        return ", ".join(
            (
                count(len(self.installed_checkpoints), "checkpoint") + demo,
                count(len(self.vaes), "VAE"),
                count(len(self.upscalers), "upscaler"),
                count(len(self.detectors), "detector"),
            )
        )


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

    @classmethod
    def of(cls, cause: FailureCause | None) -> UntrustedDetector | None:
        """The detector a failure's cause names, when it is an untrusted detector (else None)."""
        if cause is None or cause.kind is not FailureKind.UNTRUSTED_DETECTOR:
            return None
        if cause.path is None or cause.sha256 is None:
            return None
        return cls(cause.path, cause.sha256)


def _cannot_trust(path: Path, _sha256: str) -> None:
    raise OSError(f"this engine keeps no detector trust list, so {path.name} cannot be trusted here")


@dataclass(frozen=True)
class AppServices:
    """The engine side of the window.

    ``make_engine(models_dir, memory_mode)`` builds an engine cheaply; ``list_models(models_dir)``
    lists names without loading anything; ``models_dir``/``output_dir`` are the defaults used when
    the preferences have none. ``trust_detector(path, sha256)`` trusts that file if its bytes still
    have that SHA-256 (raises OSError otherwise, or when the trust list cannot be written).

    ``job_runner_for(setting, models_dir, memory_mode)`` gives the job runner for a workers setting
    that is on, its workers' engines built for that models folder and memory mode (the composition
    root's binds the cluster package, which imports Ray only when called); None, or no
    ``job_runner_for``, runs the jobs on this process's engine. ``settings_file`` is the shared
    user settings file (None: the one in the user data folder), where the workers setting lives.
    ``check_families(models_dir, config)`` finds a refiner or hires checkpoint of the wrong family
    from the files' headers (slow-ish disk reads: the window calls it off the GUI thread); None
    leaves that check to the engine at run time.
    """

    make_engine: Callable[[Path, MemoryMode], Engine]
    list_models: Callable[[Path], ModelChoices]
    models_dir: Path
    output_dir: Path
    trust_detector: Callable[[Path, str], None] = _cannot_trust
    job_runner_for: Callable[[WorkersSetting, Path, MemoryMode], JobRunnerFactory | None] | None = None
    settings_file: Path | None = None
    check_families: Callable[[Path, RunConfig], Sequence[ConfigProblem]] | None = None
    #: Our styles.csv (None: the one in the user data folder); an A1111 install's is read first.
    styles_file: Path | None = None
