"""The value every reader returns, and the draft a reader fills before it is validated."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..config import MAX_SEED, RunConfig
from ..errors import ConfigError, shorten
from .names import format_weight, lora_tag, with_tags

#: Notes past this many are summarised in one line, so a pathological file cannot flood the window.
MAX_NOTES = 40

#: What the window calls the fields readers fill, for notes about values that were refused.
_LABELS = {
    "seed": "Seed",
    "batch_size": "Batch size",
    "txt2img.steps": "Steps",
    "txt2img.cfg_scale": "CFG scale",
    "txt2img.width": "Width",
    "txt2img.height": "Height",
    "txt2img.clip_skip": "Clip skip",
    "txt2img.refiner_switch_at": "Refiner switch at",
    "txt2img.hires_upscale_factor": "Hires upscale by",
    "txt2img.hires_resize_width": "Hires resize width",
    "txt2img.hires_resize_height": "Hires resize height",
    "txt2img.hires_steps": "Hires steps",
    "txt2img.hires_denoise": "Hires denoising strength",
    "img2img.steps": "img2img steps",
    "img2img.cfg_scale": "img2img CFG scale",
    "img2img.denoise": "Denoising strength",
}


@dataclass(frozen=True)
class GenerationSettings:
    """Settings read from an image, as a RunConfig, and what did not carry over.

    ``generator`` names the program that made the image ("ComfyUI", "Forge", ...); ``notes`` are
    one-line, human-readable remarks about settings that had no equivalent or were changed on the
    way (empty for our own images, which replay losslessly); ``source`` says where in the file
    the settings were found.
    """

    config: RunConfig
    generator: str
    notes: tuple[str, ...] = ()
    source: str = ""


def without_input_image(config: RunConfig) -> tuple[RunConfig, str | None]:
    """``config`` without its ``input_image_path``, and a note saying so (None when it had none).

    A config restored from an image may come from anyone's PNG; its input path would point the
    app at a file on this machine without the user choosing it, so restoring never keeps it.
    """
    if config.input_image_path is None:
        return config, None
    note = (
        f"its input image path ({shorten(config.input_image_path)!r}) was not restored: an image's "
        "settings never choose a file on this computer; choose the input image yourself"
    )
    return config.model_copy(update={"input_image_path": None}), note


class Draft:
    """A RunConfig under construction, in its JSON shape, with the notes that go with it.

    Readers set keys of ``top``, ``txt2img`` and ``img2img``; :meth:`finish` validates them and
    drops (with a note) any value RunConfig refuses, so one bad value never loses the rest.
    """

    def __init__(self, generator: str, source: str) -> None:
        self.generator = generator
        self.source = source
        self.top: dict[str, Any] = {}
        self.txt2img: dict[str, Any] = {}
        self.img2img: dict[str, Any] = {}
        self.notes: list[str] = []
        self.loras: list[str] = []

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def set_seed(self, value: object, what: str = "seed") -> None:
        """A seed from another program: -1 or below means random; above 2³²−1 it is wrapped."""
        seed = as_int(value)
        if seed is None:
            self.note(f"the {what} {show(value)} is not a whole number; a random seed is used")
            return
        if seed < 0:
            seed = -1
        elif seed > MAX_SEED:
            wrapped = seed % (MAX_SEED + 1)
            self.note(
                f"the {what} {seed} is larger than A1111's 32-bit seeds; {wrapped} (the seed modulo 2³²) "
                "is used, so the image will differ"
            )
            seed = wrapped
        self.top["seed"] = seed

    def set_sampler(self, section: dict[str, Any], sampler: str | None, schedule: str | None) -> None:
        """Set a section's sampler and schedule; a schedule without a sampler keeps the default sampler."""
        if sampler is not None:
            section["sampler"] = sampler
            section["scheduler"] = schedule or "Automatic"
        elif schedule is not None:
            section["scheduler"] = schedule

    def add_lora(self, name: str, unet: float, text_encoder: float | None = None) -> None:
        tag = lora_tag(name, unet, text_encoder)
        if tag not in self.loras:
            self.loras.append(tag)

    def finish(self) -> GenerationSettings:
        """Validate the draft. A refused value is dropped and noted; raises ConfigError only when
        a problem cannot be pinned to a value."""
        if self.loras:
            self.top["prompt"] = with_tags(str(self.top.get("prompt", "")), self.loras)
            self.note("LoRAs are kept as <lora:name:weight> tags in the prompt, as A1111 writes them")
        data: dict[str, Any] = {**self.top, "txt2img": self.txt2img, "img2img": self.img2img}
        for _ in range(10):
            try:
                config = RunConfig.from_dict(data)
            except ConfigError as exc:
                if not any(_drop(data, problem.field) for problem in exc.problems):
                    raise
                for problem in exc.problems:
                    label = _LABELS.get(problem.field, problem.field)
                    self.note(f"{label}: {problem.message}; the default is used instead")
                continue
            return GenerationSettings(config, self.generator, _capped(self.notes), self.source)
        raise ConfigError(f"the {self.generator} settings could not be turned into a run config")


def _drop(data: dict[str, Any], path: str) -> bool:
    """Remove the value at a dotted field path; False when there is none."""
    *parents, key = path.split(".")
    node: Any = data
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict) and key in node:
        del node[key]
        return True
    return False


def _capped(notes: list[str]) -> tuple[str, ...]:
    if len(notes) <= MAX_NOTES:
        return tuple(notes)
    return (*notes[: MAX_NOTES - 1], f"... and {len(notes) - MAX_NOTES + 1} more notes")


# -- value helpers shared by the readers --------------------------------------------------------


def as_int(value: object) -> int | None:
    """A whole number from JSON-ish data (``12``, ``12.0``, ``"12"``); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = as_float(value)
    if number is None or not number.is_integer():
        return None
    return int(number)


def as_float(value: object) -> float | None:
    """A finite number from JSON-ish data (``7``, ``7.5``, ``"7.5"``); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value.bit_length() > 1000:
        return None  # float() would overflow
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def as_text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def show(value: object) -> str:
    """A short rendering of a value for a note."""
    if isinstance(value, float):
        return format_weight(value)
    text = repr(value) if not isinstance(value, int | str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."
