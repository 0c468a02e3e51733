"""Infotext: the A1111 ``parameters`` text that says how an image was made, and its PNG storage.

Building follows stage-semantics §6.1 so A1111 tools, Civitai and other readers understand our
images; parsing (:mod:`.infotext_parse`, re-exported here) reads ours and A1111's back. Each PNG
also carries the full RunConfig as JSON, so our own images replay losslessly.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from .config import ADetailerUnit, RunConfig
from .errors import ConfigError, ConfigProblem
from .executor import StageInfo
from .exif_comment import exif_user_comment
from .images import MAX_INPUT_SIDE, lazy_image, open_image_file, shown_path
from .infotext_parse import (
    ADETAILER_KEYS,
    MIN_PARAMETER_PAIRS,
    NEGATIVE_PREFIX,
    PAIR_PATTERN,
    ParsedInfotext,
    infotext_to_config,
    ordinal_suffix,
    parse_infotext,
)
from .sampler_params import (
    CHURN_SAMPLERS,
    DISCARDS_PENULTIMATE,
    ENSD_SAMPLERS,
    ETA_SAMPLERS,
    S_NOISE_SAMPLERS,
    TIMESTEP_SAMPLERS,
    default_eta,
    eta_key,
)
from .samplers import resolve_schedule
from .sequencer import CANONICAL_ORDER, StageName

log = logging.getLogger(__name__)

__all__ = [
    "PARAMETERS_KEY",
    "RUN_CONFIG_KEY",
    "ImageMetadata",
    "ParsedInfotext",
    "build_infotext",
    "config_from_image",
    "format_value",
    "infotext_to_config",
    "parse_infotext",
    "png_metadata",
    "read_image_metadata",
]

PARAMETERS_KEY = "parameters"
RUN_CONFIG_KEY = "stablenew_run_config"

# Executor-reported keys that are not copied: Size and Refiner hash feed other keys; Version is ours.
_INTERNAL_KEYS = frozenset({"Size", "Refiner hash", "Hires checkpoint hash", "Version"})
#: Stage params for the manifest only (e.g. the engine's "Lora files": file, weights, hash per LoRA).
_MANIFEST_ONLY_KEYS = frozenset({"Lora files"})
_NOT_SHOWN = _INTERNAL_KEYS | _MANIFEST_ONLY_KEYS
_CHECKPOINT_EXTENSIONS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft", ".gguf")

_Pairs = dict[str, Any]


# -- formatting --------------------------------------------------------------------------------


def format_value(value: object) -> str:
    """A parameter value as A1111 writes it: whole floats as ``7``, text JSON-quoted when needed.

    Quoting applies to text containing ``,``, ``:`` or a newline (A1111's rule) and, so that
    parsing gives the exact text back, to empty text, text with surrounding whitespace and text
    that starts with a quote.
    """
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    needs_quotes = any(c in text for c in ",:\n") or text != text.strip() or text.startswith('"')
    return json.dumps(text, ensure_ascii=False) if needs_quotes or not text else text


def _parameter_line(pairs: _Pairs) -> str:
    return ", ".join(f"{key}: {format_value(value)}" for key, value in pairs.items())


def _add(pairs: _Pairs, new: Mapping[str, Any]) -> None:
    """Add the pairs of ``new`` that are not None and not already present, keeping order."""
    for key, value in new.items():
        if value is not None and key not in pairs:
            pairs[key] = value


#: ``"name: hash, ..."`` lists that every stage contributes to (A1111 lists every network the
#: image's passes used; here ADetailer's own LoRAs come from a later stage than txt2img's).
_HASH_LISTS = ("Lora hashes", "TI hashes")


def _merge_hash_lists(pairs: _Pairs, params: Mapping[str, Any]) -> None:
    """Extend ``pairs``' hash lists with the entries of ``params``' not yet listed, by name."""
    for key in _HASH_LISTS:
        if key not in pairs or not params.get(key):
            continue
        entries = [e.strip() for e in str(pairs[key]).split(",") if e.strip()]
        names = {e.split(":", 1)[0].strip() for e in entries}
        for entry in (e.strip() for e in str(params[key]).split(",")):
            name = entry.split(":", 1)[0].strip()
            if entry and name not in names:
                entries.append(entry)
                names.add(name)
        pairs[key] = ", ".join(entries)


def _model_label(name: str | None) -> str | None:
    """A checkpoint's infotext name: the file name without its checkpoint extension."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    for extension in _CHECKPOINT_EXTENSIONS:
        if base.lower().endswith(extension):
            return base[: -len(extension)]
    return base


# -- build -------------------------------------------------------------------------------------


def build_infotext(
    config: RunConfig,
    *,
    seed: int,
    stage_infos: Mapping[StageName, StageInfo],
    version: str,
    source_parameters: str | None = None,
    extra: Mapping[str, Any] | None = None,
    subseed: int | None = None,
) -> str:
    """The A1111 ``parameters`` text for one final image whose seed is ``seed`` (and whose
    variation seed is ``subseed``; None = ``config.subseed``).

    The base keys describe the first sampling stage (txt2img, else img2img); then come ADetailer,
    hires, refiner, img2img-after-txt2img and postprocess keys, then keys the stages reported in
    ``stage_infos`` (plan order, first writer wins), then ``extra`` (script keys such as a grid's
    ``Script: X/Y/Z plot``, where A1111 puts its ``extra_generation_params``), then ``Version``.
    Within the added keys the hires overrides, ``Emphasis``, ``Noise multiplier`` and the sampler
    parameters come in the order A1111 1.10 adds them while it runs (docs/run-config.md).
    For a plan without a sampling stage, ``source_parameters`` (the input image's own infotext)
    is kept and the new keys are appended to its parameter line.
    """
    base = _base_pairs(config, seed, stage_infos, config.subseed if subseed is None else subseed)
    added: _Pairs = {}
    _add(added, _adetailer_pairs(config, version))
    _add(added, inpaint_pairs(config))
    _add(added, _hires_pairs(config, stage_infos.get(StageName.TXT2IMG, StageInfo())))
    _add(added, _emphasis_pairs(config))
    _add(added, _noise_multiplier_pairs(config))
    _add(added, _sampler_parameter_pairs(config))
    _add(added, _refiner_pairs(config, stage_infos.get(StageName.TXT2IMG, StageInfo())))
    _add(added, _img2img_pairs(config, stage_infos.get(StageName.IMG2IMG, StageInfo())))
    _add(added, _postprocess_pairs(config))
    for stage in CANONICAL_ORDER:
        if stage in stage_infos:
            params = stage_infos[stage].params
            _merge_hash_lists(added, params)
            _add(added, {k: v for k, v in params.items() if k not in _NOT_SHOWN})
    _add(added, extra or {})
    if not base and source_parameters and source_parameters.strip():
        return _append_to_source(source_parameters, added, version)
    pairs: _Pairs = {}
    _add(pairs, base)
    _add(pairs, added)
    pairs["Version"] = f"stablenew-qt {version}"
    return _compose(config.prompt, config.negative_prompt, pairs)


def _compose(prompt: str, negative: str, pairs: _Pairs) -> str:
    lines = [prompt]
    if negative:
        lines.append(f"{NEGATIVE_PREFIX} {negative}")
    lines.append(_parameter_line(pairs))
    return "\n".join(lines).strip()


def _append_to_source(source: str, added: _Pairs, version: str) -> str:
    source = source.strip()
    last = source.rsplit("\n", 1)[-1]
    if len(PAIR_PATTERN.findall(last)) >= MIN_PARAMETER_PAIRS:
        return f"{source}, {_parameter_line(added)}" if added else source
    # A new parameter line needs three pairs to be read back as one; Version completes it.
    return f"{source}\n{_parameter_line({**added, 'Version': f'stablenew-qt {version}'})}"


def _base_pairs(
    config: RunConfig, seed: int, stage_infos: Mapping[StageName, StageInfo], subseed: int
) -> _Pairs:
    """The fixed-order keys (§6.1) of the first sampling stage; empty when there is none.

    As A1111's ``create_infotext``: ``Variation seed`` and its strength only when the strength is
    not 0, ``Seed resize from`` only when both sides are > 0, ``ENSD`` only when not 0 and the
    sampler seeds its extra noise with it (eta not 0), ``RNG`` only when not GPU."""
    t2i, i2i = config.txt2img, config.img2img
    if t2i.enabled:
        info = stage_infos.get(StageName.TXT2IMG, StageInfo())
        sampler, schedule = t2i.sampler, t2i.scheduler
        steps, cfg, model = t2i.steps, t2i.cfg_scale, t2i.model
        size: str | None = f"{t2i.width}x{t2i.height}"
        denoise = t2i.hires_denoise if t2i.hires_enabled else None
    elif i2i.enabled:
        info = stage_infos.get(StageName.IMG2IMG, StageInfo())
        sampler, schedule = i2i.sampler or t2i.sampler, i2i.scheduler or t2i.scheduler
        steps, cfg, model = i2i.steps, i2i.cfg_scale, i2i.model or t2i.model
        size = info.params.get("Size")
        denoise = i2i.denoise
    else:
        return {}
    external_vae = bool(t2i.vae)
    variation = config.subseed_strength > 0
    resize_w, resize_h = config.seed_resize_from_w, config.seed_resize_from_h
    return {
        "Steps": steps,
        "Sampler": sampler,
        "Schedule type": resolve_schedule(sampler, schedule),
        "CFG scale": cfg,
        "Seed": seed,
        "Size": size,
        "Model hash": info.model_hash,
        "Model": info.model_name or _model_label(model),
        "VAE hash": info.vae_hash if external_vae else None,
        "VAE": (info.vae_name or _model_label(t2i.vae)) if external_vae else None,
        "Variation seed": subseed if variation else None,
        "Variation seed strength": config.subseed_strength if variation else None,
        "Seed resize from": f"{resize_w}x{resize_h}" if resize_w > 0 and resize_h > 0 else None,
        "Denoising strength": denoise,
        "Clip skip": t2i.clip_skip if t2i.clip_skip > 1 else None,
        "ENSD": config.eta_noise_seed_delta if _uses_ensd(config, sampler) else None,
        "RNG": config.rng_source if config.rng_source != "GPU" else None,
    }


def _uses_ensd(config: RunConfig, sampler: str) -> bool:
    """A1111's ``is_sampler_using_eta_noise_seed_delta``, for a delta that is not 0."""
    if config.eta_noise_seed_delta == 0 or sampler not in ENSD_SAMPLERS:
        return False
    eta = config.sampler_settings.eta
    return (default_eta(sampler) if eta is None else eta) != 0


def _samplers_run(config: RunConfig) -> list[str]:
    """The samplers of the sampling passes that run, in order (first pass, hires, img2img)."""
    t2i, i2i = config.txt2img, config.img2img
    samplers = []
    if t2i.enabled:
        samplers.append(t2i.sampler)
        if t2i.hires_enabled:
            samplers.append(t2i.hires_sampler or t2i.sampler)
    if i2i.enabled:
        samplers.append(i2i.sampler or t2i.sampler)
    return samplers


def _encoded_prompts(config: RunConfig) -> list[str]:
    t2i, i2i = config.txt2img, config.img2img
    texts = [config.prompt, config.negative_prompt]
    if t2i.enabled and t2i.hires_enabled:
        texts += [t2i.hires_prompt, t2i.hires_negative_prompt]
    if i2i.enabled:
        texts += [i2i.prompt or "", i2i.negative_prompt or ""]
    return texts


def _emphasis_pairs(config: RunConfig) -> _Pairs:
    """``Emphasis`` as A1111's prompt encoder adds it: not Original and a prompt uses brackets."""
    if config.emphasis == "Original" or not _samplers_run(config):
        return {}
    uses_brackets = any("(" in text or "[" in text for text in _encoded_prompts(config))
    return {"Emphasis": config.emphasis} if uses_brackets else {}


def _noise_multiplier_pairs(config: RunConfig) -> _Pairs:
    """A1111's img2img ``Noise multiplier``, when img2img runs and it is not 1."""
    i2i = config.img2img
    return {"Noise multiplier": i2i.noise_multiplier} if i2i.enabled and i2i.noise_multiplier != 1 else {}


def _sampler_parameter_pairs(config: RunConfig) -> _Pairs:
    """Settings > Sampler parameters, in the order A1111's samplers add them (``get_sigmas``, then
    the SGM scaling of txt2img's starting noise, then ``initialize``): each only when a sampler
    that ran takes it and its value is not k-diffusion's (or DDIM's) default."""
    samplers = _samplers_run(config)
    settings = config.sampler_settings
    pairs: _Pairs = {}
    if settings.always_discard_next_to_last_sigma and any(s not in DISCARDS_PENULTIMATE for s in samplers):
        pairs["Discard penultimate sigma"] = True
    first_txt2img = config.txt2img.sampler if config.txt2img.enabled else None
    if settings.sgm_noise_multiplier and first_txt2img and first_txt2img not in TIMESTEP_SAMPLERS:
        pairs["SGM noise multiplier"] = True
    if settings.eta is not None:
        for sampler in samplers:
            if sampler in ETA_SAMPLERS and settings.eta != default_eta(sampler):
                pairs.setdefault(eta_key(sampler), settings.eta)
    churn = any(s in CHURN_SAMPLERS for s in samplers)
    s_tmax = settings.s_tmax or math.inf  # 0 = infinity, as A1111
    pairs["Sigma churn"] = settings.s_churn if churn and settings.s_churn != 0 else None
    pairs["Sigma tmin"] = settings.s_tmin if churn and settings.s_tmin != 0 else None
    pairs["Sigma tmax"] = s_tmax if churn and s_tmax != math.inf else None
    s_noise = any(s in S_NOISE_SAMPLERS for s in samplers) and settings.s_noise != 1
    pairs["Sigma noise"] = settings.s_noise if s_noise else None
    return pairs


def _adetailer_pairs(config: RunConfig, version: str) -> _Pairs:
    """Per active unit (suffix by unit position), keys at default/disabled values dropped (§1.1)."""
    ad = config.adetailer
    if not (ad.enabled and ad.active_units):
        return {}
    pairs: _Pairs = {}
    for index, unit in enumerate(ad.units):
        if unit.active:
            suffix = ordinal_suffix(index)
            pairs.update({f"{key}{suffix}": value for key, value in _adetailer_unit_pairs(unit).items()})
    pairs["ADetailer version"] = f"stablenew-{version}"
    return pairs


def _adetailer_unit_pairs(unit: ADetailerUnit) -> _Pairs:
    values = unit.model_dump()
    pairs: _Pairs = {}
    for spec in ADETAILER_KEYS:
        value = values[spec.field]
        gated_off = spec.gate is not None and not values[spec.gate]
        at_dropped_default = spec.dropped_at is not None and value == spec.dropped_at
        if not (gated_off or at_dropped_default):
            pairs[spec.key] = value
    return pairs


def _hires_pairs(config: RunConfig, txt2img_info: StageInfo) -> _Pairs:
    t2i = config.txt2img
    if not (t2i.enabled and t2i.hires_enabled):
        return {}
    width, height = t2i.hires_resize_width, t2i.hires_resize_height
    resize = width or height
    # A1111 1.10's StableDiffusionProcessingTxt2Img.init adds the overrides before the size keys.
    first_schedule = resolve_schedule(t2i.sampler, t2i.scheduler)
    hires_schedule = resolve_schedule(t2i.hires_sampler or t2i.sampler, t2i.hires_scheduler or t2i.scheduler)
    checkpoint = _model_label(t2i.hires_checkpoint) if t2i.hires_checkpoint != t2i.model else None
    checkpoint_hash = txt2img_info.params.get("Hires checkpoint hash")
    if checkpoint and checkpoint_hash:  # A1111 writes the checkpoint's short title, "name [hash]"
        checkpoint = f"{checkpoint} [{checkpoint_hash}]"
    return {
        "Hires checkpoint": checkpoint,
        "Hires sampler": t2i.hires_sampler if t2i.hires_sampler not in (None, t2i.sampler) else None,
        "Hires prompt": t2i.hires_prompt if t2i.hires_prompt not in ("", config.prompt) else None,
        "Hires negative prompt": (
            t2i.hires_negative_prompt
            if t2i.hires_negative_prompt not in ("", config.negative_prompt)
            else None
        ),
        "Hires schedule type": (  # set by k-diffusion's get_sigmas; timestep samplers have none
            hires_schedule
            if hires_schedule not in ("Automatic", first_schedule)
            and (t2i.hires_sampler or t2i.sampler) not in TIMESTEP_SAMPLERS
            else None
        ),
        "Hires upscale": None if resize else t2i.hires_upscale_factor,
        "Hires resize": f"{width}x{height}" if resize else None,
        "Hires steps": t2i.hires_steps or None,
        "Hires upscaler": t2i.hires_upscaler_name,
    }


def _refiner_pairs(config: RunConfig, txt2img_info: StageInfo) -> _Pairs:
    t2i = config.txt2img
    name = _model_label(t2i.refiner_model_name)
    if not (t2i.enabled and t2i.refiner_enabled and name):
        return {}
    refiner_hash = txt2img_info.params.get("Refiner hash")
    return {
        "Refiner": f"{name} [{refiner_hash}]" if refiner_hash else name,
        "Refiner switch at": t2i.refiner_switch_at,
    }


def _img2img_pairs(config: RunConfig, img2img_info: StageInfo) -> _Pairs:
    """StableNew keys for img2img run after txt2img; prompt overrides whenever img2img ran."""
    t2i, i2i = config.txt2img, config.img2img
    if not i2i.enabled:
        return {}
    pairs: _Pairs = {}
    if t2i.enabled:
        sampler = i2i.sampler or t2i.sampler
        pairs = {
            "Img2img denoising strength": i2i.denoise,
            "Img2img steps": i2i.steps,
            "Img2img CFG scale": i2i.cfg_scale,
            "Img2img model": (img2img_info.model_name or _model_label(i2i.model)) if i2i.model else None,
            "Img2img sampler": i2i.sampler,
            "Img2img schedule type": resolve_schedule(sampler, i2i.scheduler) if i2i.scheduler else None,
        }
    pairs["Img2img prompt"] = i2i.prompt
    pairs["Img2img negative prompt"] = i2i.negative_prompt
    return pairs


def inpaint_pairs(config: RunConfig) -> _Pairs:
    """A1111's inpaint keys, in the order and on the conditions of its img2img ``init``: ``Mask
    mode`` only when inverted, ``Mask blur`` only when above 0, ``Inpaint area`` + ``Masked area
    padding`` only for "only masked", ``Masked content`` except for "original"."""
    i2i = config.img2img
    if not (i2i.enabled and i2i.inpainting):
        return {}
    only_masked = i2i.inpaint_area == "only masked"
    return {
        "Mask mode": "Inpaint not masked" if i2i.mask_mode == "inpaint not masked" else None,
        "Mask blur": i2i.mask_blur or None,
        "Inpaint area": "Only masked" if only_masked else None,
        "Masked area padding": i2i.only_masked_padding if only_masked else None,
        "Masked content": None if i2i.masked_content == "original" else i2i.masked_content,
    }


def _postprocess_pairs(config: RunConfig) -> _Pairs:
    up = config.upscale
    if not up.enabled:
        return {}
    return {"Postprocess upscale by": up.upscale_factor, "Postprocess upscaler": up.upscale_model}


# -- image metadata ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageMetadata:
    """Generation metadata read from an image file.

    ``run_config_error`` says why an embedded RunConfig could not be used (for example one
    written by a newer StableNew Qt); ``run_config`` is then None but ``parameters`` still read.
    """

    parameters: str | None
    run_config: RunConfig | None
    run_config_error: str | None = None


def png_metadata(parameters: str, config: RunConfig) -> PngImagePlugin.PngInfo:
    """PNG text chunks for a saved image: A1111's ``parameters`` and our RunConfig JSON.

    Pillow writes tEXt for Latin-1 text and iTXt (UTF-8) otherwise, so any prompt round-trips.
    """
    info = PngImagePlugin.PngInfo()
    info.add_text(PARAMETERS_KEY, parameters)
    info.add_text(RUN_CONFIG_KEY, config.to_json(indent=None))
    return info


def read_image_metadata(path: str | Path) -> ImageMetadata:
    """Read the infotext and RunConfig stored in an image.

    PNG: the ``parameters`` and ``stablenew_run_config`` text chunks. JPEG/WebP (A1111 style):
    the EXIF UserComment as ``parameters``; these carry no RunConfig. A missing or unreadable file
    raises ConfigError; an unusable embedded RunConfig is reported in ``run_config_error``.
    """
    try:
        with open_image_file(path, "") as handle, lazy_image(handle) as image:
            if isinstance(image, PngImagePlugin.PngImageFile):
                chunks = _png_text(image)
            else:
                chunks = _exif_parameters(image)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        if isinstance(exc, ConfigError):  # not a regular file (a FIFO is never opened to read)
            raise
        raise ConfigError(f"cannot read image metadata from {shown_path(path)}: {exc}") from None
    config_json = chunks.get(RUN_CONFIG_KEY)
    if config_json is None:
        return ImageMetadata(chunks.get(PARAMETERS_KEY), None)
    try:
        return ImageMetadata(chunks.get(PARAMETERS_KEY), RunConfig.from_json(config_json))
    except ConfigError as exc:
        return ImageMetadata(chunks.get(PARAMETERS_KEY), None, f"its embedded run config is unusable: {exc}")


def _png_text(image: PngImagePlugin.PngImageFile) -> dict[str, str]:
    """The PNG's text chunks. Those before the pixel data (where this app and A1111 write them)
    were read when the file was opened; ``image.text`` would also find chunks after it, but only
    by decoding every pixel (120 ms for a 2048 px image), so it is the fallback, and only for
    images an input may be (an image declaring 10000² pixels is not decoded to look)."""
    early = {
        key: str(value)
        for key, value in image.info.items()
        if key in (PARAMETERS_KEY, RUN_CONFIG_KEY) and isinstance(value, str)
    }
    if early or max(image.size) > MAX_INPUT_SIDE:
        return early
    return {key: str(value) for key, value in image.text.items()}


def _exif_parameters(image: Image.Image) -> dict[str, str]:
    text = exif_user_comment(image.getexif())
    return {PARAMETERS_KEY: text} if text else {}


def config_from_image(path: str | Path) -> RunConfig:
    """The RunConfig that made an image: the embedded one (lossless replay) when present, else
    one rebuilt from its ``parameters`` infotext, else one read by
    :func:`~stablenew_qt.core.metadata.read_generation_settings` (ComfyUI, InvokeAI, NovelAI,
    Fooocus, SwarmUI, stealth metadata). Raises ConfigError when none is usable.

    An embedded ``input_image_path`` is dropped (logged): an image's settings never choose a
    file on this machine. Use ``read_generation_settings`` directly to also get the generator's
    name and the notes about settings that had no equivalent (that one among them)."""
    meta = read_image_metadata(path)
    if meta.run_config is not None:
        from .metadata.draft import without_input_image

        config, dropped = without_input_image(meta.run_config)
        if dropped:
            log.info("%s: %s", Path(path).name, dropped)
        return config
    if meta.run_config_error is not None:
        raise ConfigError(f"{str(path)!r}: {meta.run_config_error}")
    if not meta.parameters or meta.parameters.lstrip().startswith("{"):
        # Not A1111 text (nothing, or Fooocus/SwarmUI JSON): the other generators' readers.
        # Imported here because the metadata package builds on this module.
        from .metadata import NoGenerationSettings, read_generation_settings

        try:
            return read_generation_settings(path).config
        except NoGenerationSettings:
            raise ConfigError(f"{str(path)!r} carries no generation parameters") from None
    try:
        return infotext_to_config(meta.parameters)
    except ConfigError as exc:
        lead = ConfigProblem("", f"the generation parameters of {str(path)!r} cannot be used:")
        raise ConfigError([lead, *exc.problems]) from None
