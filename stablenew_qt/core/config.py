"""RunConfig: one validated, frozen value holding everything that decides a run.

Its JSON form is the user-facing contract shared by the CLI, presets, the queue and the image
metadata. Missing keys take defaults; unknown keys, wrong types and out-of-range values raise
:class:`~stablenew_qt.core.errors.ConfigError` with a message that names the field and says what
is allowed. Use :func:`read_config_file` / :meth:`RunConfig.from_json` to read one and
``model_copy(update=...)`` (or :func:`with_changes`) to derive a changed copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, ConfigProblem, shorten
from .files import FileRefused, read_regular_file, user_path
from .samplers import SAMPLERS, SCHEDULERS, split_legacy_sampler
from .validation import problems_from_validation_error

SCHEMA_VERSION = 1
MAX_SEED = 2**32 - 1
ADETAILER_SAME = "Use same scheduler"
MAX_ADETAILER_UNITS = 15
#: Config files larger than this are refused unread (a config with a 100,000-word prompt is 1 MB).
MAX_CONFIG_BYTES = 2 * 1024 * 1024


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, validate_default=True)


def _check_size(value: int) -> int:
    if value % 8 != 0:
        lower, upper = value // 8 * 8, value // 8 * 8 + 8
        raise ValueError(f"must be a multiple of 8, for example {max(lower, 64)} or {upper}")
    return value


def _check_sampler(value: str | None) -> str | None:
    if value is not None and value not in SAMPLERS:
        raise ValueError(f"unknown sampler {shorten(value)!r}; valid samplers: {', '.join(SAMPLERS)}")
    return value


def _check_schedule(value: str | None) -> str | None:
    if value is not None and value not in SCHEDULERS:
        raise ValueError(
            f"unknown schedule type {shorten(value)!r}; valid schedule types: {', '.join(SCHEDULERS)}"
        )
    return value


def _split_legacy(data: Any, sampler_key: str, scheduler_key: str) -> Any:
    """Accept A1111's pre-1.9 combined names ("DPM++ 2M Karras") by splitting them."""
    if isinstance(data, dict) and isinstance(data.get(sampler_key), str):
        sampler, schedule = split_legacy_sampler(data[sampler_key])
        data = {**data, sampler_key: sampler}
        if schedule is not None and data.get(scheduler_key) is None:
            data[scheduler_key] = schedule
    return data


class Txt2ImgConfig(_Frozen):
    """First generation stage. Refiner and hires fix are settings of this stage, never stages."""

    enabled: bool = True
    model: str = ""
    vae: str | None = None
    sampler: str = "DPM++ 2M"
    scheduler: str = "Karras"
    steps: int = Field(30, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=0.0, le=30.0)
    width: int = Field(1024, ge=64, le=4096)
    height: int = Field(1024, ge=64, le=4096)
    clip_skip: int = Field(1, ge=1, le=12)
    refiner_enabled: bool = False
    refiner_model_name: str | None = None
    refiner_switch_at: float = Field(0.8, gt=0.0, lt=1.0)
    hires_enabled: bool = False
    hires_upscale_factor: float = Field(2.0, ge=1.0, le=8.0)
    #: A1111 "Resize width/height to"; 0 means "use hires_upscale_factor" (both 0) or "derive".
    hires_resize_width: int = Field(0, ge=0, le=8192)
    hires_resize_height: int = Field(0, ge=0, le=8192)
    hires_upscaler_name: str = Field("Latent", min_length=1)
    #: 0 means "the first pass's step count", as in A1111.
    hires_steps: int = Field(0, ge=0, le=150)
    hires_denoise: float = Field(0.5, ge=0.0, le=1.0)
    #: A1111 "Hires checkpoint" (same family as ``model``); None means the first pass's model.
    hires_checkpoint: str | None = None
    #: A1111 "Hires sampler" / "Hires schedule type"; None means the first pass's.
    hires_sampler: str | None = None
    hires_scheduler: str | None = None
    #: A1111 "Hires prompt" / "Hires negative prompt"; empty means the first pass's prompt.
    hires_prompt: str = ""
    hires_negative_prompt: str = ""

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        return _check_size(value)

    @field_validator("sampler", "hires_sampler")
    @classmethod
    def _known_sampler(cls, value: str | None) -> str | None:
        return _check_sampler(value)

    @field_validator("scheduler", "hires_scheduler")
    @classmethod
    def _known_schedule(cls, value: str | None) -> str | None:
        return _check_schedule(value)

    @model_validator(mode="before")
    @classmethod
    def _legacy_sampler(cls, data: Any) -> Any:
        return _split_legacy(_split_legacy(data, "sampler", "scheduler"), "hires_sampler", "hires_scheduler")

    @field_validator("hires_resize_width", "hires_resize_height")
    @classmethod
    def _resize(cls, value: int) -> int:
        return value if value == 0 else _check_size(value)


ResizeMode = Literal["just resize", "crop and resize", "resize and fill", "latent upscale"]
MaskedContent = Literal["fill", "original", "latent noise", "latent nothing"]


class OutpaintConfig(_Frozen):
    """Pixels added on each side before an inpaint pass paints them (multiples of 8)."""

    left: int = Field(0, ge=0, le=2048)
    right: int = Field(0, ge=0, le=2048)
    top: int = Field(0, ge=0, le=2048)
    bottom: int = Field(0, ge=0, le=2048)

    @field_validator("left", "right", "top", "bottom")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8, for example {value // 8 * 8} or {value // 8 * 8 + 8}")
        return value

    @property
    def any(self) -> bool:
        return bool(self.left or self.right or self.top or self.bottom)


class Img2ImgConfig(_Frozen):
    """img2img on the previous stage's images or on ``input_image_path``. ``None`` inherits."""

    enabled: bool = False
    model: str | None = None
    prompt: str | None = None
    negative_prompt: str | None = None
    denoise: float = Field(0.3, ge=0.0, le=1.0)
    steps: int = Field(20, ge=1, le=150)
    cfg_scale: float = Field(7.0, ge=0.0, le=30.0)
    sampler: str | None = None
    scheduler: str | None = None
    seed: int | None = Field(None, ge=-1, le=MAX_SEED)
    #: A1111's "Noise multiplier for img2img" (infotext ``Noise multiplier``); 1 = off.
    noise_multiplier: float = Field(1.0, ge=0.0, le=1.5)
    #: Processing size; 0 = the input's own size (each side separately).
    width: int = Field(0, ge=0, le=4096)
    height: int = Field(0, ge=0, le=4096)
    resize_mode: ResizeMode = "just resize"
    #: Inpaint mask (white = repaint); ``None`` = plain img2img unless ``mask_from_alpha``.
    mask_path: str | None = None
    #: A1111's inpaint upload with alpha: the input's transparent pixels are the mask.
    mask_from_alpha: bool = False
    mask_blur: int = Field(4, ge=0, le=64)
    mask_mode: Literal["inpaint masked", "inpaint not masked"] = "inpaint masked"
    masked_content: MaskedContent = "original"
    inpaint_area: Literal["whole picture", "only masked"] = "whole picture"
    only_masked_padding: int = Field(32, ge=0, le=256)
    outpaint: OutpaintConfig = OutpaintConfig()

    @field_validator("width", "height")
    @classmethod
    def _size(cls, value: int) -> int:
        return value if value == 0 else _check_size(value)

    @model_validator(mode="after")
    def _one_mask_source(self) -> Img2ImgConfig:
        if self.mask_from_alpha and self.mask_path is not None:
            raise ValueError("set mask_path or mask_from_alpha, not both: they are two sources for one mask")
        return self

    @property
    def inpainting(self) -> bool:
        """True when this img2img pass repaints through a mask (a mask file, alpha or outpainting)."""
        return self.mask_path is not None or self.mask_from_alpha or self.outpaint.any

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str | None) -> str | None:
        return _check_sampler(value)

    @field_validator("scheduler")
    @classmethod
    def _known_schedule(cls, value: str | None) -> str | None:
        return _check_schedule(value)

    @model_validator(mode="before")
    @classmethod
    def _legacy_sampler(cls, data: Any) -> Any:
        return _split_legacy(data, "sampler", "scheduler")


class UpscaleConfig(_Frozen):
    """Standalone pixel upscale (A1111 Extras "Scale by")."""

    enabled: bool = False
    upscale_model: str = Field("Lanczos", min_length=1)
    upscale_factor: float = Field(2.0, ge=1.0, le=8.0)


class ADetailerUnit(_Frozen):
    """One ADetailer tab. Names follow the extension's ``ad_*`` arguments with an ``adetailer_`` prefix;
    defaults are the extension's (stage-semantics §1.1)."""

    adetailer_model: str = Field("face_yolov8n.pt", min_length=1)
    adetailer_model_classes: str = ""
    adetailer_tab_enable: bool = True
    adetailer_prompt: str = ""
    adetailer_negative_prompt: str = ""
    adetailer_confidence: float = Field(0.3, ge=0.0, le=1.0)
    adetailer_mask_filter_method: Literal["Area", "Confidence"] = "Area"
    adetailer_mask_k: int = Field(0, ge=0, le=10)
    adetailer_mask_min_ratio: float = Field(0.0, ge=0.0, le=1.0)
    adetailer_mask_max_ratio: float = Field(1.0, ge=0.0, le=1.0)
    adetailer_x_offset: int = Field(0, ge=-200, le=200)
    adetailer_y_offset: int = Field(0, ge=-200, le=200)
    adetailer_dilate_erode: int = Field(4, ge=-128, le=128)
    adetailer_mask_merge_invert: Literal["None", "Merge", "Merge and Invert"] = "None"
    adetailer_mask_blur: int = Field(4, ge=0, le=64)
    adetailer_strength: float = Field(0.4, ge=0.0, le=1.0)
    adetailer_inpaint_only_masked: bool = True
    adetailer_inpaint_only_masked_padding: int = Field(32, ge=0, le=256)
    adetailer_use_inpaint_width_height: bool = False
    adetailer_inpaint_width: int = Field(512, ge=64, le=2048)
    adetailer_inpaint_height: int = Field(512, ge=64, le=2048)
    adetailer_use_steps: bool = False
    adetailer_steps: int = Field(28, ge=1, le=150)
    adetailer_use_cfg_scale: bool = False
    adetailer_cfg_scale: float = Field(7.0, ge=0.0, le=30.0)
    adetailer_use_checkpoint: bool = False
    adetailer_checkpoint: str | None = None
    adetailer_use_vae: bool = False
    adetailer_vae: str | None = None
    adetailer_use_sampler: bool = False
    adetailer_sampler: str = "DPM++ 2M"
    adetailer_scheduler: str = ADETAILER_SAME
    adetailer_use_noise_multiplier: bool = False
    adetailer_noise_multiplier: float = Field(1.0, ge=0.5, le=1.5)
    adetailer_use_clip_skip: bool = False
    adetailer_clip_skip: int = Field(1, ge=1, le=12)

    @field_validator("adetailer_sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str | None:
        return _check_sampler(value)

    @model_validator(mode="before")
    @classmethod
    def _legacy_sampler(cls, data: Any) -> Any:
        return _split_legacy(data, "adetailer_sampler", "adetailer_scheduler")

    @field_validator("adetailer_scheduler")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return value if value == ADETAILER_SAME else str(_check_schedule(value))

    @model_validator(mode="after")
    def _ratios(self) -> ADetailerUnit:
        if self.adetailer_mask_min_ratio > self.adetailer_mask_max_ratio:
            raise ValueError(
                f"adetailer_mask_min_ratio ({self.adetailer_mask_min_ratio}) must not exceed "
                f"adetailer_mask_max_ratio ({self.adetailer_mask_max_ratio})"
            )
        return self

    @property
    def active(self) -> bool:
        """True when this tab will run: enabled and a model chosen (A1111's "None" disables it)."""
        return self.adetailer_tab_enable and self.adetailer_model != "None"


class ADetailerConfig(_Frozen):
    """The ADetailer stage: units run in order, each on the image the previous one left."""

    enabled: bool = False
    units: tuple[ADetailerUnit, ...] = (ADetailerUnit(),)
    #: Global ADetailer options (A1111 settings page).
    bbox_sortby: Literal[
        "None", "Position (left to right)", "Position (center to edge)", "Area (large to small)"
    ] = "None"
    same_seed_for_each_unit: bool = False
    dynamic_denoise_power: float = Field(0.0, ge=-10.0, le=10.0)
    match_inpaint_bbox_size: Literal["Off", "Strict (SDXL only)", "Free"] = "Off"

    @field_validator("units", mode="before")
    @classmethod
    def _units_as_tuple(cls, value: Any) -> Any:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("units")
    @classmethod
    def _unit_count(cls, value: tuple[ADetailerUnit, ...]) -> tuple[ADetailerUnit, ...]:
        # Checked here rather than with min_length: pydantic counts only the valid items there,
        # which adds a false "too short" error next to a real problem inside a unit.
        if not 1 <= len(value) <= MAX_ADETAILER_UNITS:
            raise ValueError(f"must have 1 to {MAX_ADETAILER_UNITS} units, got {len(value)}")
        return value

    @property
    def active_units(self) -> tuple[ADetailerUnit, ...]:
        return tuple(u for u in self.units if u.active)


class SamplerSettings(_Frozen):
    """A1111's Settings > Sampler parameters, for every stage (defaults are A1111's).

    ``eta`` None means the sampler's own default (1 for the ancestral and SDE samplers, 0 for
    DDIM); ``s_tmax`` 0 means infinity.
    """

    eta: float | None = Field(None, ge=0.0, le=1.0)
    s_churn: float = Field(0.0, ge=0.0, le=100.0)
    s_tmin: float = Field(0.0, ge=0.0, le=10.0)
    s_tmax: float = Field(0.0, ge=0.0, le=999.0)
    s_noise: float = Field(1.0, ge=0.0, le=1.1)
    sgm_noise_multiplier: bool = False
    always_discard_next_to_last_sigma: bool = False


#: A1111's largest batch count (its slider's maximum).
MAX_BATCH_COUNT = 100


class RunConfig(_Frozen):
    """Everything that decides a run. See ``docs/run-config.md`` for every key."""

    schema_version: int = SCHEMA_VERSION
    prompt: str = ""
    negative_prompt: str = ""
    #: -1 means random; the runner resolves it and records the real seed everywhere.
    seed: int = Field(-1, ge=-1, le=MAX_SEED)
    batch_size: int = Field(1, ge=1, le=64)
    #: A1111 "Batch count" (n_iter): batches run one after another in the same run.
    batch_count: int = Field(1, ge=1, le=MAX_BATCH_COUNT)
    #: A1111 "Variation seed" (-1 random, resolved with the seed) and "Variation strength";
    #: strength 0 turns variation off.
    subseed: int = Field(-1, ge=-1, le=MAX_SEED)
    subseed_strength: float = Field(0.0, ge=0.0, le=1.0)
    #: A1111 "Resize seed from width/height"; 0 turns it off.
    seed_resize_from_w: int = Field(0, ge=0, le=8192)
    seed_resize_from_h: int = Field(0, ge=0, le=8192)
    #: A1111 "Random number generator source" (infotext ``RNG`` when not GPU).
    rng_source: Literal["GPU", "CPU", "NV"] = "GPU"
    #: A1111 "Eta noise seed delta" (infotext ``ENSD`` when not 0).
    eta_noise_seed_delta: int = Field(0, ge=0, le=MAX_SEED)
    #: A1111 "Emphasis mode" (infotext ``Emphasis`` when not Original).
    emphasis: Literal["Original", "No norm", "Ignore", "None"] = "Original"
    sampler_settings: SamplerSettings = SamplerSettings()
    input_image_path: str | None = None
    #: The wildcard template the prompt and negative prompt were expanded from (set by the
    #: expansion, kept in manifest.json; never written to infotext, which records the expanded
    #: prompt). None: the prompt was typed as it is.
    prompt_template: str | None = None
    negative_prompt_template: str | None = None
    txt2img: Txt2ImgConfig = Txt2ImgConfig()
    img2img: Img2ImgConfig = Img2ImgConfig()
    upscale: UpscaleConfig = UpscaleConfig()
    adetailer: ADetailerConfig = ADetailerConfig()

    @field_validator("schema_version")
    @classmethod
    def _known_schema(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"must be {SCHEMA_VERSION}, got {value}")
        return value

    @classmethod
    def from_dict(cls, data: Any) -> RunConfig:
        """Validate a mapping (e.g. parsed JSON). Raises ConfigError listing every problem."""
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a JSON object, not {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
            raise ConfigError(
                f"this config was written by a newer StableNew Qt (schema {version}); this version reads "
                f"schema {SCHEMA_VERSION}: update StableNew Qt",
                "schema_version",
            )
        bad_text = _first_unencodable_text(data)
        if bad_text is not None:
            raise ConfigError(
                "contains a character that is not valid Unicode text (a lone surrogate)", bad_text
            )
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(problems_from_validation_error(exc, cls)) from None

    @classmethod
    def from_json(cls, text: str | bytes) -> RunConfig:
        """Parse and validate JSON text. Raises ConfigError for malformed JSON too.

        Bytes must be UTF-8 (a UTF-8 byte-order mark is skipped); UTF-16/32 text is refused
        rather than guessed, as the file format says UTF-8.
        """
        if isinstance(text, bytes | bytearray):
            text = _utf8_text(bytes(text))
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        except RecursionError:
            raise ConfigError("not valid JSON: nested too deeply") from None
        except ValueError as exc:  # e.g. an integer with more digits than Python will parse
            raise ConfigError(f"not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text that :meth:`from_json` reads back to an equal RunConfig."""
        return json.dumps(self.model_dump(mode="json"), indent=indent, ensure_ascii=False)


def _first_unencodable_text(data: Any, path: str = "") -> str | None:
    """The field path of the first string (key or value) that cannot be written as UTF-8."""
    if isinstance(data, str):
        try:
            data.encode("utf-8")
        except UnicodeEncodeError:
            return path or "(top level)"
        return None
    items: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            child = f"{path}.{key}" if path else str(key)
            items += [(child, key), (child, value)]
    elif isinstance(data, list | tuple):
        items = [(f"{path}[{i}]", value) for i, value in enumerate(data)]
    for child, value in items:
        found = _first_unencodable_text(value, child)
        if found is not None:
            return found
    return None


_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


def _utf8_text(data: bytes) -> str:
    if data.startswith(_UTF16_32_BOMS):
        raise ConfigError("not valid JSON: the file is UTF-16 or UTF-32 text; save it as UTF-8")
    if b"\0" in data:
        raise ConfigError("not valid JSON: the file contains NUL bytes (binary data, or UTF-16 text)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("not valid JSON: the file is not UTF-8 text") from None


def read_config_file(path: str | Path) -> RunConfig:
    """Read a RunConfig JSON file in bounded time and memory. Every problem is a ConfigError.

    Only a regular file is read (a folder, FIFO or device is refused from ``stat`` alone, never
    opened for reading), at most :data:`MAX_CONFIG_BYTES` of it; it must be UTF-8 JSON.
    """
    shown = repr(shorten(str(path)))
    try:
        data = read_regular_file(user_path(path), MAX_CONFIG_BYTES)
    except FileRefused as exc:
        raise ConfigError(f"config file {shown}: {exc}; give a RunConfig JSON file") from None
    try:
        return RunConfig.from_json(data)
    except ConfigError as exc:
        first, *rest = exc.problems
        lead = (
            ConfigProblem(first.field, f"config file {shown}: {first.message}") if not first.field else first
        )
        raise ConfigError([lead, *rest]) from None


#: The former name of :func:`read_config_file`, kept while callers move over.
load_run_config = read_config_file


def with_changes(config: RunConfig, **changes: Any) -> RunConfig:
    """A validated copy of ``config`` with top-level keys changed (``model_copy`` skips validation)."""
    data = config.model_dump(mode="json")
    data.update(
        {k: (v.model_dump(mode="json") if isinstance(v, BaseModel) else v) for k, v in changes.items()}
    )
    return RunConfig.from_dict(data)
