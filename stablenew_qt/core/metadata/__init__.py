"""Generation settings from images made by any common generator, as a RunConfig plus notes.

Call :func:`read_generation_settings` with an image path: it returns a
:class:`GenerationSettings` (the RunConfig, the generator's name, notes about what had no
equivalent) or raises ConfigError with one line that says why not. Formats and mappings:
``docs/metadata.md``.
"""

from __future__ import annotations

from .detect import NO_SETTINGS, NoGenerationSettings, read_generation_settings, settings_from_sources
from .draft import GenerationSettings
from .sources import ImageSources, read_sources

__all__ = [
    "NO_SETTINGS",
    "GenerationSettings",
    "ImageSources",
    "NoGenerationSettings",
    "read_generation_settings",
    "read_sources",
    "settings_from_sources",
]
