"""LoRAs and textual-inversion embeddings in real runs: checked before anything loads, applied per job.

* :func:`check_run` (the runner calls it through ``DiffusersExecutor.check_run`` before the first
  stage): every prompt the run will use (top level and negative, the img2img override, the hires
  prompts, ADetailer unit prompts) against the extra-networks catalog and the family of the
  checkpoint that prompt runs on (read from the checkpoint's header, never its weights). Missing,
  unsupported, damaged or pickle LoRAs and LoRAs of another family are one ConfigError; the
  ``<hypernet:...>`` and ``dyn=`` warnings come back as log lines.
* :func:`activate_for_prompt`: make a prompt's LoRAs active on a resident base pipeline (one
  :class:`~.lora.LoraManager` per pipeline, dropped with it), none when it has none.
* :func:`strip_tags`: the prompt text without its ``<kind:...>`` tags, for code that hands plain
  strings to diffusers.
* :func:`embedding_args_for`: the ``embeddings`` / ``embedding_override`` arguments of a
  ``PromptEncoder`` for a model (``EngineContext._embedding_args``).
* :func:`network_params`: the ``Lora hashes`` / ``TI hashes`` infotext values (A1111's format).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from ..core.config import RunConfig
from ..core.errors import ConfigError
from ..core.executor import StagePayload, StageResult
from ..core.extra_networks import ExtraNetworksCatalog, NetworkFamily, check_loras, lora_requests
from ..core.extra_networks.requests import LORA_TAG_NAMES
from ..core.extra_networks.run_check import PromptUse, check_config_networks, prompt_uses
from ..core.prompt_parser import extract_extra_networks
from .errors import ModelError

if TYPE_CHECKING:
    from pathlib import Path

    import torch

    from ..core.extra_networks import EmbeddingEntry, LoraEntry
    from ..core.prompt_chunks import EmbeddingFix
    from .conditioning import PromptEncoder
    from .embeddings import EmbeddingLibrary, EmbeddingStore
    from .lora import AppliedLoras, LoraActivation, LoraManager, LoraRegistry
    from .pipelines import LoadedModel, PipelineCache

__all__ = [
    "ExtraNetworks",
    "PromptUse",
    "activate_for_prompt",
    "check_run",
    "embedding_args_for",
    "network_params",
    "prompt_uses",
    "strip_tags",
]

log = logging.getLogger(__name__)


class NetworkContext(Protocol):
    """What this module needs of ``EngineContext`` (a protocol: context.py imports this module)."""

    cache: PipelineCache

    @property
    def extra_networks(self) -> ExtraNetworks: ...


@dataclass
class ExtraNetworks:
    """The engine's extra-network state: the catalog of ``models_dir``, one LoRA manager per
    resident base pipeline and the embedding files loaded once (both held per pipeline, weakly)."""

    catalog: ExtraNetworksCatalog
    _loras: LoraRegistry | None = None
    _embeddings: EmbeddingStore | None = None
    #: The LoRAs (name as written, entry) each pipeline's last activation used, for the infotext.
    last: dict[int, list[tuple[str, LoraEntry]]] = field(default_factory=dict)
    #: Their multipliers (name as written -> te, unet, count), for the manifest.
    weights: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)

    @classmethod
    def for_models(cls, models_dir: Path) -> ExtraNetworks:
        return cls(ExtraNetworksCatalog(models_dir))

    @property
    def loras(self) -> LoraRegistry:
        if self._loras is None:
            from .lora import LoraRegistry

            self._loras = LoraRegistry()
        return self._loras

    @property
    def embeddings(self) -> EmbeddingStore:
        if self._embeddings is None:
            from .embeddings import EmbeddingStore

            self._embeddings = EmbeddingStore()
        return self._embeddings

    def manager(self, model: LoadedModel) -> LoraManager:
        return self.loras.manager_for(model.pipe, model.family)


# -- the check before a run -------------------------------------------------------------------


def check_run(ctx: NetworkContext, config: RunConfig) -> list[str]:
    """Check every LoRA tag of ``config`` before anything loads (``check_config_networks``, the
    checkpoint families from their headers); returns warnings (hypernetworks removed, ``dyn``
    ignored, per-pass tags not applied). Raises ConfigError with one problem per bad tag. The
    catalog is rescanned first, so files added since the last run are found."""
    if not prompt_uses(config):
        return []
    catalog = ctx.extra_networks.catalog
    catalog.refresh()
    problems, warnings = check_config_networks(config, catalog, lambda model: _family_of(ctx, model))
    if problems:
        raise ConfigError(problems)
    return warnings


def _family_of(ctx: NetworkContext, model: str) -> NetworkFamily | None:
    from .lora.manager import network_family

    try:
        return network_family(ctx.cache.family_of(model))
    except (ModelError, KeyError):
        return None  # the stage reports the model itself


# -- applying them ----------------------------------------------------------------------------


def strip_tags(text: str) -> str:
    """``text`` without its ``<kind:...>`` extra-network tags (A1111 keeps the spaces around them)."""
    return extract_extra_networks(text)[0]


def activations_for(
    ctx: NetworkContext, model: LoadedModel, *prompts: str
) -> list[tuple[str, LoraActivation]]:
    """The LoRA activations ``prompts`` ask for (positive and negative: A1111 reads both), with
    each name as written."""
    from .lora import LoraActivation
    from .lora.manager import network_family

    tags = [tag for prompt in prompts for tag in extract_extra_networks(prompt)[1]]
    requests, bad = lora_requests(tags)
    if bad:
        raise ModelError(bad[0].message)
    if not requests:
        return []
    catalog = ctx.extra_networks.catalog
    resolved, problems = check_loras(requests, catalog, network_family(model.family), model.name)
    if problems:
        raise ModelError(problems[0].message)
    return [(r.name, LoraActivation(resolved[r.name], r.te, r.unet, r.count)) for r in requests]


def activate_for_prompt(ctx: NetworkContext, model: LoadedModel, *prompts: str) -> AppliedLoras | None:
    """Make exactly the LoRAs of ``prompts`` active on ``model``'s base pipeline (and the
    pipelines derived from it). With no tags and no manager yet, nothing is created: the
    pipeline stays as loaded. Returns what the manager did, or None."""
    wanted = activations_for(ctx, model, *prompts)
    networks = ctx.extra_networks
    networks.last[id(model.pipe)] = [(name, a.entry) for name, a in wanted]
    networks.weights[id(model.pipe)] = {
        name: {"te": a.te, "unet": a.unet, "count": a.count} for name, a in wanted
    }
    if not wanted and model.pipe not in _managed(networks):
        return None
    applied = networks.manager(model).apply([a for _name, a in wanted])
    for warning in applied.warnings:
        log.warning("%s", warning)
    if applied.loaded:
        log.info("LoRAs loaded in %.0f ms: %s", applied.seconds * 1000, ", ".join(applied.loaded))
    return applied


def _managed(networks: ExtraNetworks) -> Any:
    return networks._loras._managers if networks._loras is not None else {}


@contextmanager
def lora_suspended(ctx: NetworkContext, model: LoadedModel) -> Iterator[None]:
    """Run the block with no LoRA active on ``model`` (the SDXL refiner's prompt encoding on the
    ``text_encoder_2`` it shares with the base), then restore them. A no-op without a manager."""
    networks = ctx.extra_networks
    if model.pipe not in _managed(networks):
        yield
        return
    with networks.manager(model).suspended():
        yield


def stage_model(config: RunConfig, stage: str) -> tuple[str, str | None]:
    """The checkpoint and VAE the stage ``stage`` denoises with (as the stages choose them)."""
    t2i, i2i = config.txt2img, config.img2img
    if stage == "img2img":
        return i2i.model or t2i.model, t2i.vae if not i2i.model else None
    if stage == "adetailer":
        return (t2i.model if t2i.enabled else (i2i.model or t2i.model)), t2i.vae
    return t2i.model, t2i.vae


def stripped_config(config: RunConfig) -> RunConfig:
    """``config`` with the tags cut out of the prompts the stages read from it (hires, img2img
    override, ADetailer units); the top-level prompts stay (the infotext shows them)."""
    t2i, i2i, ad = config.txt2img, config.img2img, config.adetailer
    updates: dict[str, Any] = {}
    if "<" in t2i.hires_prompt + t2i.hires_negative_prompt:
        updates["txt2img"] = t2i.model_copy(
            update={
                "hires_prompt": strip_tags(t2i.hires_prompt),
                "hires_negative_prompt": strip_tags(t2i.hires_negative_prompt),
            }
        )
    if "<" in (i2i.prompt or "") + (i2i.negative_prompt or ""):
        updates["img2img"] = i2i.model_copy(
            update={
                "prompt": None if i2i.prompt is None else strip_tags(i2i.prompt),
                "negative_prompt": None if i2i.negative_prompt is None else strip_tags(i2i.negative_prompt),
            }
        )
    units = ad.units
    if any("<" in u.adetailer_prompt + u.adetailer_negative_prompt for u in units):
        new_units = [
            u.model_copy(
                update={
                    "adetailer_prompt": strip_tags(u.adetailer_prompt),
                    "adetailer_negative_prompt": strip_tags(u.adetailer_negative_prompt),
                }
            )
            for u in units
        ]
        updates["adetailer"] = ad.model_copy(update={"units": tuple(new_units)})
    return config.model_copy(update=updates) if updates else config


def prepare_stage(
    ctx: NetworkContext, stage: str, payload: StagePayload
) -> tuple[StagePayload, LoadedModel | None]:
    """Before a denoising stage: the stage prompt's LoRAs active on its base model (loaded now
    when the prompt has tags; otherwise every manager is switched to no LoRA, loading nothing),
    and the payload with the tags cut out of its text. Returns the model the LoRAs went on."""
    from dataclasses import replace

    prompts = (payload.prompt, payload.negative_prompt)
    networks = ctx.extra_networks
    model: LoadedModel | None = None
    if any(tag.name in LORA_TAG_NAMES for p in prompts for tag in extract_extra_networks(p)[1]):
        model = ctx.cache.base(*stage_model(payload.config, stage))
        activate_for_prompt(ctx, model, *prompts)
    for manager in list(_managed(networks).values()):
        if (model is None or manager is not networks.manager(model)) and manager.active:
            manager.deactivate()
    if model is None:
        networks.last.clear()
    stripped = replace(
        payload,
        config=stripped_config(payload.config),
        prompt=strip_tags(payload.prompt),
        negative_prompt=strip_tags(payload.negative_prompt),
    )
    if stage in ("txt2img", "img2img") and networks.catalog.embeddings():
        base = model or ctx.cache.base(*stage_model(payload.config, stage))
        for line in embedding_notes(ctx, base, stripped.prompt, stripped.negative_prompt):
            log.warning("%s", line)
    return stripped, model


def embedding_notes(ctx: NetworkContext, model: LoadedModel, *prompts: str) -> list[str]:
    """Warning lines for the embeddings ``prompts`` name that ``model`` cannot use (their names
    are read as words, as A1111 does)."""
    from .embeddings.library import _tokenizer_of

    return embedding_warnings(embedding_library(ctx, model), _tokenizer_of(model.pipe), *prompts)


def stage_params(
    ctx: NetworkContext, stage: str, model: LoadedModel | None, payload: StagePayload, result: StageResult
) -> StageResult:
    """``result`` with ``Lora hashes`` and ``TI hashes`` (and the manifest's ``Lora files``) added
    to its parameters."""
    from dataclasses import replace

    if model is None:
        if not ctx.extra_networks.catalog.embeddings():
            return result
        model = ctx.cache.base(*stage_model(payload.config, stage))
    params = network_params(ctx, model, payload.prompt, payload.negative_prompt)
    if not params:
        return result
    info = replace(result.info, params={**result.info.params, **params})
    return replace(result, info=info)


def text_encoder_lora_state(ctx: NetworkContext, model: LoadedModel) -> tuple[Any, ...]:
    """What the active LoRAs change in ``model``'s text encoders (part of its conditioning cache
    key); () without a manager, and for the SDXL refiner, which encodes with them suspended."""
    from .family import ModelFamily

    if model.family is ModelFamily.SDXL_REFINER or model.pipe not in _managed(ctx.extra_networks):
        return ()
    return ctx.extra_networks.manager(model).text_encoder_state()


def conditioning_state(ctx: NetworkContext, model: LoadedModel) -> tuple[Any, ...]:
    """Everything of ours that changes ``model``'s prompt encodings: the te LoRA state and the
    usable embedding files (path, size, mtime); () when neither applies."""
    lora_state = text_encoder_lora_state(ctx, model)
    catalog = ctx.extra_networks.catalog
    embeddings: tuple[Any, ...] = ()
    if catalog.embeddings():
        usable = set(embedding_library(ctx, model).embeddings)
        embeddings = tuple(
            (str(e.path), e.size, e.mtime_ns) for e in catalog.embeddings() if e.name in usable
        )
    return (lora_state, embeddings) if lora_state or embeddings else ()


def lora_aware_encoder(ctx: NetworkContext, model: LoadedModel, encoder: PromptEncoder) -> PromptEncoder:
    """``encoder`` itself, or for the SDXL refiner of a base with LoRAs, a copy whose encoding
    runs inside ``LoraManager.suspended()``: the refiner shares the base's ``text_encoder_2``,
    and A1111's refiner has its own, unpatched one."""
    from .family import ModelFamily

    if model.family is not ModelFamily.SDXL_REFINER:
        return encoder
    base = ctx.cache.base_of(model)
    if base is None or base.pipe not in _managed(ctx.extra_networks):
        return encoder
    wrapped = copy.copy(encoder)
    for name in ("encode_batch", "encode_prompt", "encode_negative", "encode_texts"):
        setattr(wrapped, name, _suspending(ctx, base, getattr(encoder, name)))
    return wrapped


def _suspending(ctx: NetworkContext, base: LoadedModel, method: Any) -> Any:
    def call(*args: Any, **kwargs: Any) -> Any:
        with lora_suspended(ctx, base):
            return method(*args, **kwargs)

    return call


# -- embeddings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LibraryOverride:
    """A ``TokenEmbeddingOverride`` splicing the vectors of ``library`` (A1111's EmbeddingsWithFixes)."""

    library: EmbeddingLibrary

    def __call__(
        self, role: str, embeds: torch.Tensor, fixes: Sequence[Sequence[EmbeddingFix]]
    ) -> torch.Tensor:
        from .conditioning import splice_vectors

        return splice_vectors(embeds, fixes, lambda name: self.library.vectors_for(role, name))


def embedding_library(ctx: NetworkContext, model: LoadedModel) -> EmbeddingLibrary:
    """``model``'s embedding library from the catalog's folders (each file read once)."""
    networks = ctx.extra_networks
    return networks.embeddings.library_for(model.pipe, networks.catalog.embeddings())


def embedding_args_for(ctx: NetworkContext, model: LoadedModel) -> dict[str, Any]:
    """The ``PromptEncoder`` keyword arguments that make ``model`` see the installed embeddings:
    ``{}`` when none is installed; embeddings that do not fit ``model`` are left out (the
    encoder reads their names as words; :func:`embedding_warnings` explains them)."""
    if not ctx.extra_networks.catalog.embeddings():
        return {}
    library = embedding_library(ctx, model)
    if not library.embeddings:
        return {}
    return {"embeddings": library, "embedding_override": LibraryOverride(library)}


def used_embeddings(library: EmbeddingLibrary, tokenize: Any, *prompts: str) -> list[str]:
    """The names of ``library``'s embeddings that ``prompts`` use, in first-mention order."""
    names: dict[str, None] = {}
    for prompt in prompts:
        tokens = tokenize(strip_tags(prompt))
        for _position, match in library._index.find_all(tokens):
            names[match.name] = None
    return list(names)


def embedding_warnings(library: EmbeddingLibrary, tokenize: Any, *prompts: str) -> list[str]:
    """One line per embedding named in ``prompts`` that the model cannot use."""
    lines: dict[str, None] = {}
    for prompt in prompts:
        for line in library.unavailable_in(tokenize(strip_tags(prompt))):
            lines[line] = None
    return list(lines)


# -- infotext ---------------------------------------------------------------------------------


def network_params(ctx: NetworkContext, model: LoadedModel, *prompts: str) -> dict[str, Any]:
    """``Lora hashes`` and ``TI hashes`` for what ``prompts`` used on ``model`` (A1111: ``"name:
    hash, ..."``, only the networks the prompt used; embeddings are matched by token ids)."""
    networks = ctx.extra_networks
    params: dict[str, Any] = {}
    loras = networks.last.get(id(model.pipe), [])
    if loras:
        hashes = [networks.catalog.lora_hash(entry) for _name, entry in loras]
        params["Lora hashes"] = ", ".join(
            f"{_hash_name(name)}: {short}" for (name, _entry), short in zip(loras, hashes, strict=True)
        )
        weights = networks.weights.get(id(model.pipe), {})
        params["Lora files"] = [
            {"name": name, "file": str(entry.path), "hash": short, **weights.get(name, {})}
            for (name, entry), short in zip(loras, hashes, strict=True)
        ]
    if networks.catalog.embeddings():
        from .embeddings.library import _tokenizer_of

        library = embedding_library(ctx, model)
        used = used_embeddings(library, _tokenizer_of(model.pipe), *prompts)
        entries: list[EmbeddingEntry] = []
        for name in used:
            entry = networks.catalog.find_embedding(name)
            if entry is not None:
                entries.append(entry)
        if entries:
            params["TI hashes"] = ", ".join(
                f"{_hash_name(e.name)}: {networks.catalog.embedding_hash(e)}" for e in entries
            )
    return params


def _hash_name(name: str) -> str:
    # A1111 replaces the separators of its "name: hash, ..." list inside names.
    return name.replace(":", "").replace(",", "")
