"""The installed model names a sweep's axis values are checked against on the command line, as the
window checks them: A1111 matches a typed ``Checkpoint name`` (``dreamshaper`` for
``dreamshaper_8.safetensors``) against the installed models, and refuses one it cannot find
before anything runs. Only names are listed (nothing is loaded, torch is not imported)."""

from __future__ import annotations

from pathlib import Path

from ..core.sweep.appliers import SweepContext


def installed_sweep_context(models_dir: Path) -> SweepContext:
    """The names :func:`~stablenew_qt.engine.models.installed_names` lists for ``models_dir``; a
    kind with nothing installed is not checked (None), as in the window."""
    from ..engine.models import installed_names as listed

    names = listed(models_dir)
    return SweepContext(
        checkpoints=names.checkpoints,
        vaes=names.vaes or None,
        upscalers=names.upscalers or None,
        adetailer_models=names.detectors or None,
    )
