"""The font grid legends are drawn with: one that exists offline on every install.

A1111 draws with Roboto from its ``fonts`` package. We need no system font and no download:

1. DejaVu Sans, which matplotlib ships inside its package (matplotlib comes with ultralytics, a
   dependency of ours). Its file is located without importing matplotlib, which is slow.
2. Otherwise Pillow's own bundled font (Aileron, ``ImageFont.load_default(size)``, Pillow 10.1+).

Both are scalable, so the legend's size follows the cell size as in A1111.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from PIL import ImageFont

__all__ = ["GridFont", "dejavu_sans_path"]

FreeTypeFont = ImageFont.FreeTypeFont


def dejavu_sans_path() -> Path | None:
    """``DejaVuSans.ttf`` inside the installed matplotlib package, or None when there is none."""
    try:
        spec = importlib.util.find_spec("matplotlib")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"
        if candidate.is_file():
            return candidate
    return None


class GridFont:
    """A scalable font at any pixel size, each size loaded once per GridFont.

    ``path`` None picks DejaVu Sans when present, else Pillow's bundled font (which
    ``pillow_default`` forces).
    """

    def __init__(self, path: Path | None = None, *, pillow_default: bool = False) -> None:
        self._path = None if pillow_default else path if path is not None else dejavu_sans_path()
        self._sizes: dict[int, FreeTypeFont] = {}

    @property
    def name(self) -> str:
        """The font file's name, or ``"Pillow default"``."""
        return self._path.name if self._path is not None else "Pillow default"

    def at(self, size: int) -> FreeTypeFont:
        """The font at ``size`` pixels (at least 1)."""
        size = max(1, int(size))
        font = self._sizes.get(size)
        if font is None:
            if self._path is not None:
                font = ImageFont.truetype(str(self._path), size)
            else:
                loaded = ImageFont.load_default(size)
                assert isinstance(loaded, FreeTypeFont), "Pillow was built without FreeType"
                font = loaded
            self._sizes[size] = font
        return font
