"""Pre-flight: before any model loads, make sure a run's images can be written at all.

:func:`preflight` refuses, with a ConfigError naming the folder and what to do, an output folder
that is a file or a dangling symbolic link, one that cannot be created or written (read-only,
``/proc``, no permission), and one whose file system has less free space than the run needs by
:func:`estimate_output_bytes`; and an inpaint mask that repaints nothing
(:func:`~.inpaint_checks.check_inpaint_pixels`). The runner calls it at the start of every run,
so a run that could never save its images fails in a second instead of after the generation.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .config import RunConfig
from .errors import ConfigError, shorten
from .images import input_image_size
from .img2img_geometry import img2img_output_size
from .inpaint_checks import check_inpaint_pixels
from .outputs import OutputSettings, check_output_root
from .sequencer import StageExecutionPlan, StageName
from .sizes import txt2img_output_size, upscaled_size

#: Bytes a PNG takes per pixel at most in practice: uncompressed RGB. Noise (the demo models)
#: compresses to about that; real images to 1-2 bytes a pixel, so the estimate errs on the safe side.
PNG_BYTES_PER_PIXEL = 3
#: Per image, beyond its pixels: PNG framing and the two text chunks (infotext and RunConfig JSON).
PNG_OVERHEAD_BYTES = 16 * 1024
#: The manifest, beyond the config it repeats.
MANIFEST_OVERHEAD_BYTES = 64 * 1024

_PROBE_PREFIX = ".stablenew-write-test-"


def planned_image_sizes(
    plan: StageExecutionPlan, config: RunConfig, input_size: tuple[int, int] | None = None
) -> list[tuple[StageName, tuple[int, int]]]:
    """(stage, (width, height)) of the images each stage of ``plan`` hands on.

    ``input_size`` is the input image's size, needed when the plan does not start with txt2img.
    txt2img makes its first-pass size (the hires size with hires fix), img2img its
    :func:`~.img2img_geometry.img2img_output_size` (processing size, outpaint canvas), ADetailer
    keeps the size it gets, upscale multiplies it as A1111's Extras do.
    """
    size = input_size or (0, 0)
    sizes: list[tuple[StageName, tuple[int, int]]] = []
    for stage in plan.stages:
        if stage.stage is StageName.TXT2IMG:
            size = txt2img_output_size(config.txt2img)
        elif stage.stage is StageName.IMG2IMG:
            size = _img2img_size(config, size)
        elif stage.stage is StageName.UPSCALE:
            size = upscaled_size(*size, config.upscale.upscale_factor)
        sizes.append((stage.stage, size))
    return sizes


def _img2img_size(config: RunConfig, size: tuple[int, int]) -> tuple[int, int]:
    i2i = config.img2img
    o = i2i.outpaint
    return img2img_output_size(
        i2i.width,
        i2i.height,
        size,
        only_masked=i2i.inpainting and i2i.inpaint_area == "only masked",
        outpaint=(o.left, o.right, o.top, o.bottom),
    )


def estimate_output_bytes(
    plan: StageExecutionPlan,
    config: RunConfig,
    *,
    save_intermediates: bool,
    input_size: tuple[int, int] | None = None,
) -> int:
    """The disk space a run needs at most: per image of the batch, the final PNG (and with
    ``save_intermediates`` one PNG per earlier stage) at :data:`PNG_BYTES_PER_PIXEL` plus
    :data:`PNG_OVERHEAD_BYTES` and twice the config's JSON (it is in each PNG's two text
    chunks), plus the manifest."""
    sizes = planned_image_sizes(plan, config, input_size)
    kept = sizes if save_intermediates else sizes[-1:]
    count = 1 if plan.first.stage is StageName.UPSCALE else config.batch_size * config.batch_count
    config_bytes = len(config.to_json(indent=None).encode("utf-8"))
    per_png = PNG_OVERHEAD_BYTES + 2 * config_bytes
    pixels = sum(width * height for _, (width, height) in kept)
    manifest = MANIFEST_OVERHEAD_BYTES + 2 * config_bytes
    return count * (pixels * PNG_BYTES_PER_PIXEL + len(kept) * per_png) + manifest


def preflight(output: OutputSettings, plan: StageExecutionPlan, config: RunConfig) -> None:
    """Raise ConfigError unless ``plan``'s images can be written to ``output``; see the module doc.

    Writes nothing that stays: writability is tested by creating and deleting a hidden file in
    the output folder or, while that does not exist yet (the run creates it), a hidden folder in
    its nearest existing parent.
    """
    root = Path(output.output_dir)
    check_output_root(root)
    check_inpaint_pixels(config)
    input_size = None if plan.input_image_path is None else input_image_size(plan.input_image_path)
    needed = estimate_output_bytes(
        plan, config, save_intermediates=output.save_intermediates, input_size=input_size
    )
    existing = next((p for p in (root, *root.parents) if os.path.lexists(p)), root)
    _probe_writable(existing, root)
    _check_free_space(existing, root, needed)


def _shown(folder: Path) -> str:
    return repr(shorten(str(folder)))


def _probe_writable(folder: Path, root: Path) -> None:
    # Creating something is the only reliable test: access(2) answers for permission bits (and
    # says yes to root), not for read-only mounts or /proc, where nothing can be created.
    try:
        if folder == root:
            fd, name = tempfile.mkstemp(dir=folder, prefix=_PROBE_PREFIX)
            os.close(fd)
            os.unlink(name)
        else:  # the run will create the output folder inside ``folder``
            os.rmdir(tempfile.mkdtemp(dir=folder, prefix=_PROBE_PREFIX))
    except OSError as exc:
        where = "" if folder == root else f" (it would be created in {_shown(folder)})"
        raise ConfigError(
            f"cannot write in the output folder {_shown(root)}{where}: {exc.strerror or exc}; choose a "
            "folder you can write to",
            "output_dir",
        ) from None


def _check_free_space(folder: Path, root: Path, needed: int) -> None:
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise ConfigError(
            f"cannot tell the free space of the output folder {_shown(root)}: {exc.strerror or exc}",
            "output_dir",
        ) from None
    if free < needed:
        raise ConfigError(
            f"the output folder {_shown(root)} has {_mib(free)} free, and this run needs up to "
            f"{_mib(needed)}: free some space, choose another folder, or make fewer or smaller images",
            "output_dir",
        )


def _mib(size: int) -> str:
    return f"{size / 2**20:,.1f} MiB"
