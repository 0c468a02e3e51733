"""What the benchmarks share: the constants of the comparison, the device-aware clock and memory
peak, the pixel comparison, loading a model by hand, and how a report ends (table, JSON, exit code).

torch and diffusers are imported only inside these functions, so importing the package stays light.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..core.options import ExitCode

if TYPE_CHECKING:
    from ..engine.device import DeviceChoice
    from ..engine.models import ModelCatalog

SIDES = ("runner", "hand")
NEGATIVE = "blurry, low quality"
SEED = 1234
TARGET_RATIO = 1.05

Clock = Callable[[], float]


def finish(report: Any, text: str, json_path: str | None) -> int:
    """Print ``text``, write ``report`` as JSON if asked; exit 1 unless pixels matched and the
    timed rounds loaded nothing (shared by the chain and the ADetailer benches)."""
    print(text)
    if json_path:
        Path(json_path).write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")
    return ExitCode.OK if report.pixels_identical and report.loads["warm"] == 0 else ExitCode.FAILED


@contextmanager
def quiet_libraries() -> Iterator[None]:
    """diffusers' and transformers' loading bars and notices would break up the table."""
    # Imported here, before any timing, so "cold load" times loading rather than importing.
    import diffusers.utils.logging as diffusers_log
    import transformers.utils.logging as transformers_log
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline  # noqa: F401

    saved = [(m, m.get_verbosity(), m.is_progress_bar_enabled()) for m in (diffusers_log, transformers_log)]
    for module, _, _ in saved:
        module.set_verbosity_error()
        module.disable_progress_bar()
    try:
        yield
    finally:
        for module, verbosity, bars in saved:
            module.set_verbosity(verbosity)
            if bars:
                module.enable_progress_bar()


def hand_load(
    cls: Any, catalog: ModelCatalog, name: str, family: str, device: DeviceChoice, shared: dict[str, Any]
) -> Any:
    """Load ``name`` as a diffusers user would (folder, single file, hub id), sharing ``shared``."""
    import diffusers.utils

    path = catalog.resolve_checkpoint(name).path  # only to find the files the runner loads
    if path is not None and path.is_file():
        from ..engine.single_file import config_folder  # the packaged configs, to load offline

        folder = str(config_folder(family))
        kwargs = {"config": folder, "torch_dtype": device.dtype, "local_files_only": True}
        pipe = cls.from_single_file(str(path), **kwargs, **shared)
    else:
        # diffusers 0.42 renamed torch_dtype to dtype (the old name warns there).
        key = "dtype" if hasattr(diffusers.utils, "_resolve_dtype") else "torch_dtype"
        pipe = cls.from_pretrained(str(path) if path is not None else name, **{key: device.dtype}, **shared)
    return pipe.to(device.device)


def device_clock(device: DeviceChoice) -> Clock:
    """perf_counter, after waiting for queued GPU work so a block's time includes its kernels."""
    if not device.is_cuda:
        return time.perf_counter
    import torch

    def synchronized() -> float:
        torch.cuda.synchronize(device.device)
        return time.perf_counter()

    return synchronized


def peak_memory(device: DeviceChoice) -> int:
    """CUDA: the peak bytes torch allocated since the previous call (which reset it).
    CPU: the process's peak RSS, which only grows."""
    if device.is_cuda:
        import torch

        peak = int(torch.cuda.max_memory_allocated(device.device))
        torch.cuda.reset_peak_memory_stats(device.device)
        return peak
    try:
        import resource
    except ImportError:  # Windows has no getrusage
        return 0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # Linux counts KiB


def max_abs_diff(a: Path, b: Path) -> int:
    import numpy as np

    with Image.open(a) as first, Image.open(b) as second:
        x, y = np.asarray(first.convert("RGB"), np.int16), np.asarray(second.convert("RGB"), np.int16)
    if x.shape != y.shape:
        raise RuntimeError(f"the final images differ in size: {x.shape} (runner) and {y.shape} (hand)")
    return int(np.abs(x - y).max())
