"""Which models a RunConfig names that are not installed, with the closest installed names.

Checked against the names the window offers (:class:`~stablenew_qt.gui.services.ModelChoices`,
listed from the models folder), so a restored PNG that names ``dreamshaper_8`` or ``R-ESRGAN 4x+``
says at once what is missing and what is there instead of failing after Generate (issue 17,
items 4 and 9). A name matches an installed file with or without its extension, ignoring case.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from ..core.config import RunConfig
from ..core.errors import ConfigProblem
from .services import BUILTIN_UPSCALERS, HIRES_UPSCALERS, ModelChoices

#: How many close installed names a message offers.
CLOSEST = 3


@dataclass(frozen=True)
class MissingModel:
    """``name`` (at config ``path``, shown to the user as ``label``) is not installed."""

    path: str
    label: str
    name: str
    closest: tuple[str, ...] = ()
    #: Installed names of this kind, when none is close to ``name`` (the first few).
    others: tuple[str, ...] = ()
    #: Every installed name of this kind (what a picker offers).
    installed: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """What is wrong, without the label: "'x' is not installed; closest installed: y"."""
        text = f"{self.name!r} is not installed"
        if self.closest:
            return text + "; closest installed: " + ", ".join(self.closest)
        if self.others:
            return text + "; installed: " + ", ".join(self.others)
        return text + "; none of this kind is installed"

    def __str__(self) -> str:
        return f"{self.label}: {self.message}"

    def as_problem(self) -> ConfigProblem:
        """This as a ConfigProblem of its field (shown on its card like a config error)."""
        return ConfigProblem(self.path, self.message)


def _key(name: str) -> str:
    return PurePath(name).stem.lower() if "." in name else name.lower()


def is_installed(name: str, installed: Iterable[str]) -> bool:
    """True when ``name`` is one of ``installed``, with or without its extension, any case."""
    wanted = {name.lower(), _key(name)}
    return any(item.lower() in wanted or _key(item) in wanted for item in installed)


def closest_names(name: str, installed: Sequence[str], count: int = CLOSEST) -> tuple[str, ...]:
    """Up to ``count`` installed names nearest to ``name`` (by spelling, extension ignored)."""
    by_key = {_key(item): item for item in installed}
    found = difflib.get_close_matches(_key(name), list(by_key), n=count, cutoff=0.3)
    return tuple(by_key[key] for key in found)


def _wanted(config: RunConfig, choices: ModelChoices) -> list[tuple[str, str, str, Sequence[str]]]:
    """(path, label, name, installed names) for every model the enabled stages will load."""
    t2i, i2i = config.txt2img, config.img2img
    wanted: list[tuple[str, str, str, Sequence[str]]] = []
    if t2i.enabled or (i2i.enabled and not i2i.model):
        wanted.append(("txt2img.model", "Model (txt2img)", t2i.model, choices.checkpoints))
    if t2i.enabled and t2i.vae:
        wanted.append(("txt2img.vae", "VAE", t2i.vae, choices.vaes))
    if t2i.enabled and t2i.refiner_enabled and t2i.refiner_model_name:
        refiner = t2i.refiner_model_name
        wanted.append(("txt2img.refiner_model_name", "Refiner model", refiner, choices.checkpoints))
    if t2i.enabled and t2i.hires_enabled:
        hires = (*HIRES_UPSCALERS, *choices.upscalers)
        wanted.append(("txt2img.hires_upscaler_name", "Hires upscaler", t2i.hires_upscaler_name, hires))
    if i2i.enabled and i2i.model:
        wanted.append(("img2img.model", "Model (img2img)", i2i.model, choices.checkpoints))
    if config.upscale.enabled:
        upscalers = (*BUILTIN_UPSCALERS, *choices.upscalers, "None")
        wanted.append(("upscale.upscale_model", "Upscaler", config.upscale.upscale_model, upscalers))
    if config.adetailer.enabled:
        for number, unit in enumerate(config.adetailer.units):
            if unit.active:
                path = f"adetailer.units.{number}.adetailer_model"
                label = "ADetailer detector" + (f" (unit {number + 1})" if number else "")
                wanted.append((path, label, unit.adetailer_model, choices.detectors))
    return wanted


def missing_models(config: RunConfig, choices: ModelChoices) -> list[MissingModel]:
    """The models ``config``'s enabled stages name that ``choices`` does not list."""
    return [
        MissingModel(
            path, label, name, closest_names(name, installed), tuple(installed[:CLOSEST]), tuple(installed)
        )
        for path, label, name, installed in _wanted(config, choices)
        if name and not is_installed(name, installed)
    ]
