"""Device and precision choice: CUDA in fp16 by default, the CPU in fp32 where there is no GPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.options import DevicePreference
from .errors import DeviceUnavailableError

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceChoice", "DevicePreference", "choose_device", "memory_in_use"]


@dataclass(frozen=True)
class DeviceChoice:
    """Where the engine runs. ``dtype`` is fp16 on CUDA and fp32 on the CPU (fp16 is slow or
    unsupported there)."""

    device: torch.device
    dtype: torch.dtype

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def describe(self) -> str:
        import torch

        if self.is_cuda:
            name = torch.cuda.get_device_name(self.device)
            return f"{name} ({str(self.dtype).removeprefix('torch.')})"
        return f"CPU ({str(self.dtype).removeprefix('torch.')})"


def choose_device(preference: DevicePreference | str = DevicePreference.AUTO) -> DeviceChoice:
    """Resolve ``auto``/``cuda``/``cpu``. Asking for CUDA where there is none raises
    DeviceUnavailableError (a ValueError and a ModelError: the run fails with its message)."""
    import torch

    try:
        preference = DevicePreference(preference)
    except ValueError:
        names = ", ".join(p.value for p in DevicePreference)
        raise ValueError(f"unknown device {preference!r}; use one of {names}") from None
    if preference is DevicePreference.CUDA and not torch.cuda.is_available():
        raise DeviceUnavailableError("no CUDA GPU found; use --device cpu (slow) or auto")
    if preference is not DevicePreference.CPU and torch.cuda.is_available():
        return DeviceChoice(torch.device("cuda"), torch.float16)
    return DeviceChoice(torch.device("cpu"), torch.float32)


def device_memory_mb(choice: DeviceChoice) -> tuple[int, int] | None:
    """(used, total) MiB of the GPU as the driver sees it (every process), None on the CPU."""
    import torch

    if not choice.is_cuda:
        return None
    free, total = torch.cuda.mem_get_info(choice.device)
    return (total - free) // 2**20, total // 2**20


def memory_in_use(choice: DeviceChoice) -> int | None:
    """Bytes of device memory held by torch now (None on the CPU)."""
    import torch

    return int(torch.cuda.memory_allocated(choice.device)) if choice.is_cuda else None
