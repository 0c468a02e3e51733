"""Which generator made an image, and the reader for its settings.

Order: our own embedded RunConfig (lossless); the ``parameters`` chunk (JSON: SwarmUI or
Fooocus; text: the A1111 family); ComfyUI's ``prompt``/``workflow``; InvokeAI's three
generations; NovelAI's ``Comment``. Stealth metadata has already been turned into chunks by
:mod:`.sources`. A reader that recognises its format but cannot use it raises ConfigError
"looks like a <generator> image, but ..."; no recognisable settings at all is
"no generation settings in this image".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..config import RunConfig
from ..errors import ConfigError, ConfigProblem
from ..infotext_parse import parse_infotext
from .a1111 import generator_of, read_a1111_text
from .comfyui import read_comfyui
from .draft import GenerationSettings, without_input_image
from .fooocus import is_fooocus, read_fooocus
from .invokeai import read_invokeai_dream, read_invokeai_v2, read_invokeai_v3
from .novelai import is_novelai, read_novelai
from .sources import ImageSources, json_object, parse_json, read_sources
from .swarmui import read_swarmui

log = logging.getLogger(__name__)


class NoGenerationSettings(ConfigError):
    """The image carries no generation settings at all (a photo, an edited or stripped image),
    as opposed to settings that could not be used: a caller may offer it as an input image."""


NO_SETTINGS = "no generation settings in this image"
RUN_CONFIG_KEY = "stablenew_run_config"
_INVOKEAI_KEYS = ("invokeai_metadata", "invokeai", "sd-metadata", "Dream")
#: Exceptions a reader may hit on data of the right shape at the top but wrong deeper down.
_READER_FAULTS = (TypeError, ValueError, KeyError, AttributeError, IndexError, RecursionError, OverflowError)


def read_generation_settings(path: str | Path) -> GenerationSettings:
    """The settings an image was made with, by whichever common generator made it.

    Reads A1111 (PNG text, JPEG/WebP EXIF, stealth metadata), Forge, SD.Next, Fooocus, ComfyUI,
    InvokeAI (all generations), NovelAI, SwarmUI and our own images. Raises ConfigError, with
    the file's name, for a missing or unreadable file and for settings it recognises but cannot
    use ("looks like a ComfyUI image, but its prompt graph has no sampler node"); its subclass
    :class:`NoGenerationSettings` for an image with none ("no generation settings in this image").
    """
    name = Path(path).name
    sources = read_sources(path)
    try:
        return settings_from_sources(sources)
    except ConfigError as exc:
        first, *rest = exc.problems or (ConfigProblem("", NO_SETTINGS),)
        kind = NoGenerationSettings if isinstance(exc, NoGenerationSettings) else ConfigError
        raise kind([ConfigProblem("", f"{name}: {first}"), *rest]) from None


def settings_from_sources(sources: ImageSources) -> GenerationSettings:
    """The settings in an image's text chunks (see :func:`read_generation_settings`)."""
    chunks = sources.chunks
    extra: list[str] = []
    if RUN_CONFIG_KEY in chunks:
        try:
            config, dropped = without_input_image(RunConfig.from_json(chunks[RUN_CONFIG_KEY]))
            kept = () if dropped is None else (dropped,)
            return GenerationSettings(config, "StableNew Qt", kept, _where(sources, RUN_CONFIG_KEY))
        except ConfigError as exc:
            extra.append(f"its embedded run config is unusable ({exc}); its parameters text is read instead")
    settings = _read(sources)
    if settings is None:
        raise NoGenerationSettings(_nothing(sources))
    if extra or sources.skipped:
        notes = (*extra, *sources.skipped, *settings.notes)
        settings = GenerationSettings(settings.config, settings.generator, notes, settings.source)
    return settings


def _read(sources: ImageSources) -> GenerationSettings | None:
    chunks = sources.chunks
    parameters = chunks.get("parameters")
    if parameters is not None and parameters.strip():
        data = json_object(parameters)
        if data is None:
            generator = generator_of(_params_of(parameters))
            return _guarded(generator, lambda: read_a1111_text(parameters, _where(sources, "parameters")))
        return _read_json_parameters(sources, data)
    if "prompt" in chunks or "workflow" in chunks:
        prompt, workflow = parse_json(chunks.get("prompt", "")), parse_json(chunks.get("workflow", ""))
        return _guarded(
            "ComfyUI", lambda: read_comfyui(prompt, workflow, _where(sources, "prompt"), sources.size)
        )
    key = next((k for k in _INVOKEAI_KEYS if k in chunks), None)
    if key is not None:
        return _guarded("InvokeAI", lambda: _read_invokeai(sources, key))
    if is_novelai(chunks):
        return _guarded("NovelAI", lambda: read_novelai(chunks, sources.size, _where(sources, "Comment")))
    return None


def _read_json_parameters(sources: ImageSources, data: dict[str, object]) -> GenerationSettings:
    where = _where(sources, "parameters")
    if "sui_image_params" in data:
        return _guarded("SwarmUI", lambda: read_swarmui(data, where))
    if is_fooocus(data, sources.chunks.get("fooocus_scheme")):
        return _guarded("Fooocus", lambda: read_fooocus(data, where))
    software = data.get("software") or data.get("Software") or data.get("app")
    made_by = f" (it names {str(software)[:60]!r})" if software else ""
    raise ConfigError(f"its parameters are JSON that no known generator writes{made_by}")


def _read_invokeai(sources: ImageSources, key: str) -> GenerationSettings:
    text, where = sources.chunks[key], _where(sources, key)
    if key == "Dream":
        return read_invokeai_dream(text, where)
    data = json_object(text)
    if data is None:
        raise ConfigError(f"its {key!r} metadata is not readable JSON")
    if key == "sd-metadata":
        return read_invokeai_v2(data, where)
    node = data.get("node") if key == "invokeai" else None
    return read_invokeai_v3(node if isinstance(node, dict) else data, where)


def _guarded(generator: str, read: Callable[[], GenerationSettings]) -> GenerationSettings:
    """Run a reader; its failures become "looks like a <generator> image, but ..."."""
    lead = f"looks like {_article(generator)} {generator} image, but"
    try:
        return read()
    except ConfigError as exc:
        first, *rest = exc.problems
        raise ConfigError([ConfigProblem("", f"{lead} {first}"), *rest]) from None
    except _READER_FAULTS as exc:
        log.exception("reading %s metadata failed", generator)
        raise ConfigError(f"{lead} its settings could not be read ({type(exc).__name__})") from None


def _nothing(sources: ImageSources) -> str:
    chunks = sources.chunks
    if sources.skipped:
        return f"{NO_SETTINGS} could be read: {'; '.join(sources.skipped)}"
    software = chunks.get("Software")
    if software:
        return f"{NO_SETTINGS} (it was last saved by {software[:80]})"
    return NO_SETTINGS


def _where(sources: ImageSources, key: str) -> str:
    if sources.origin == "PNG text":
        return f"PNG text chunk {key!r}"
    if sources.origin == "EXIF":
        return "EXIF UserComment" if key == "parameters" else f"EXIF {key!r} text"
    return sources.origin


def _article(name: str) -> str:
    return "an" if name[:1] in "AEIOU" or name.startswith("SD") else "a"


def _params_of(text: str) -> dict[str, str]:
    return parse_infotext(text).params
