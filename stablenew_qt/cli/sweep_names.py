"""The installed model names a sweep's axis values are checked against on the command line, as the
window checks them: A1111 matches a typed ``Checkpoint name`` (``dreamshaper`` for
``dreamshaper_8.safetensors``) against the installed models, and refuses one it cannot find
before anything runs. Only names are listed (nothing is loaded, torch is not imported)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.sweep.appliers import SweepContext

if TYPE_CHECKING:
    from ..engine.models import ModelEntry


def installed_names(models_dir: Path) -> SweepContext:
    """The checkpoints (the built-in demo models first), VAEs, upscalers and detectors under
    ``models_dir``; a kind with nothing installed is not checked (None), as in the window."""
    from ..engine.demo import DEMO_MODELS
    from ..engine.models import ModelCatalog

    catalog = ModelCatalog(models_dir)

    def names(entries: Sequence[ModelEntry]) -> tuple[str, ...] | None:
        return tuple(entry.name for entry in entries) or None

    return SweepContext(
        checkpoints=(*DEMO_MODELS, *(e.name for e in catalog.checkpoints())),
        vaes=names(catalog.vaes()),
        upscalers=names(catalog.upscalers()),
        adetailer_models=names(catalog.detectors()),
    )
