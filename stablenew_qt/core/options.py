"""Options spelled once: memory modes, devices and exit codes. The engine, the CLI and the window
all import these; nothing else lists them.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class MemoryMode(StrEnum):
    """Where the engine keeps model weights (``--memory-mode``, Models > Memory mode)."""

    GPU = "gpu"
    MODEL_OFFLOAD = "model_offload"
    SEQUENTIAL_OFFLOAD = "sequential_offload"

    @property
    def label(self) -> str:
        """The words the Models menu shows."""
        return _MEMORY_MODE_LABELS[self]

    @property
    def help(self) -> str:
        """One line for ``--help``."""
        return _MEMORY_MODE_HELP[self]


_MEMORY_MODE_LABELS = {
    MemoryMode.GPU: "Everything on the GPU (fastest)",
    MemoryMode.MODEL_OFFLOAD: "Model CPU offload (less VRAM)",
    MemoryMode.SEQUENTIAL_OFFLOAD: "Sequential CPU offload (least VRAM, slow)",
}
_MEMORY_MODE_HELP = {
    MemoryMode.GPU: "keep everything on the GPU (default)",
    MemoryMode.MODEL_OFFLOAD: "move each model to the GPU only while it runs",
    MemoryMode.SEQUENTIAL_OFFLOAD: "move each layer to the GPU only while it runs (least VRAM, slow)",
}


class DevicePreference(StrEnum):
    """Where to run (``--device``): a CUDA GPU when there is one, or the one named."""

    AUTO = "auto"
    CUDA = "cuda"
    CPU = "cpu"


class ExitCode(IntEnum):
    """What every ``stablenew-qt`` command returns."""

    OK = 0
    #: A run or job failed, or a file (queue, model) cannot be used: one line on stderr says why.
    FAILED = 1
    #: The RunConfig or the command line is wrong: nothing was loaded or written.
    CONFIG_ERROR = 2
    #: Ctrl-C: the running job was cancelled within one denoising step; nothing partial was kept.
    CANCELLED = 130


def memory_mode(text: str | None, default: MemoryMode = MemoryMode.GPU) -> MemoryMode:
    """``text`` as a MemoryMode, or ``default`` when it names none (a stale settings file)."""
    try:
        return MemoryMode(text) if text else default
    except ValueError:
        return default
