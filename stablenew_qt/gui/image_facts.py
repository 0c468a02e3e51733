"""ImageFacts: what the gallery shows about an image file besides its pixels (issue 17).

The parameters text (A1111 infotext), the model and the seed it records. :func:`read_image_facts`
opens the file, so the panels call it on their
:class:`~stablenew_qt.gui.thumbnails.ThumbnailLoader`'s pool (``loader.submit``), never on the GUI
thread; it never raises, so every request is answered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.infotext import read_image_metadata
from ..core.infotext_parse import parse_infotext

NO_PARAMETERS = "(no parameters stored in this image)"


@dataclass(frozen=True)
class ImageFacts:
    """``text`` is what the parameters box shows (the infotext, or why there is none);
    ``parameters`` the infotext itself ("" when there is none); ``model`` and ``seed`` come from
    its ``Model:`` and ``Seed:`` keys (None when absent); ``script`` its ``Script:`` key (a grid's
    "X/Y/Z plot" or "Prompt matrix", whose seed is only its first cell's)."""

    text: str
    parameters: str = ""
    model: str | None = None
    seed: str | None = None
    script: str | None = None


def read_image_facts(path: Path) -> ImageFacts:
    """Read ``path``'s infotext (any thread; opens the file). Never raises: an unreadable file
    comes back with the reason as its ``text``."""
    try:
        parameters = read_image_metadata(path).parameters or ""
    except ConfigError as exc:
        return ImageFacts(str(exc))
    if not parameters:
        return ImageFacts(NO_PARAMETERS)
    params = parse_infotext(parameters).params
    return ImageFacts(
        parameters,
        parameters,
        model=params.get("Model") or None,
        seed=params.get("Seed") or None,
        script=params.get("Script") or None,
    )
