"""LoRAs and textual-inversion embeddings in real runs: checked before anything loads, applied per job.

* :func:`check_run` (the runner calls it through ``DiffusersExecutor.check_run`` before the first
  stage): every prompt the run will use (top level and negative, the img2img override, the hires
  prompts, ADetailer unit prompts) against the extra-networks catalog and the family of the
  checkpoint that prompt runs on (read from the checkpoint's header, never its weights). Missing,
  unsupported, damaged or pickle LoRAs and LoRAs of another family are one ConfigError; the
  ``<hypernet:...>`` and ``dyn=`` warnings come back as log lines.
* :func:`activate_for_prompt`: make a prompt's LoRAs active on a resident base pipeline (one
  :class:`~.lora.LoraManager` per pipeline, dropped with it), none when it has none;
  :func:`pass_loras` does it for one pass (hires, an ADetailer inpaint) and restores after.
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

    from ..core.extra_networks import EmbeddingEntry
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
    "pass_loras",
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
    #: The LoRAs (name as written, activation) the current stage's passes used, in first-use
    #: order, for the infotext and the manifest: ``prepare_stage`` clears it, every activation
    #: adds to it (the first pass, the hires pass, each ADetailer inpaint).
    used: list[tuple[str, LoraActivation]] = field(default_factory=list)

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
    ignored). Raises ConfigError with one problem per bad tag. The
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


def activate_for_prompt(
    ctx: NetworkContext, model: LoadedModel, *prompts: str, record: bool = True
) -> AppliedLoras | None:
    """Make exactly the LoRAs of ``prompts`` active on ``model``'s base pipeline (and the
    pipelines derived from it). With no tags and no manager yet, nothing is created: the
    pipeline stays as loaded. ``record``: add them to the stage's used LoRAs (the infotext).
    Returns what the manager did, or None."""
    wanted = activations_for(ctx, model, *prompts)
    networks = ctx.extra_networks
    if record:
        networks.used += [use for use in wanted if use not in networks.used]
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
def pass_loras(ctx: NetworkContext, model: LoadedModel, *prompts: str) -> Iterator[None]:
    """Run one pass (the hires pass, an ADetailer inpaint) with exactly the LoRAs of its own
    tagged ``prompts`` active on ``model``, then put back the LoRAs that were active before (the
    stage's main prompt's: the refiner and later passes expect them). A1111 activates the hires
    prompt's networks for its second pass, and ADetailer's inpaint is an img2img run of the
    unit's prompt. Loads nothing when neither the prompts nor ``model`` have LoRAs."""
    networks = ctx.extra_networks
    before = networks.manager(model).active if model.pipe in _managed(networks) else ()
    activate_for_prompt(ctx, model, *prompts)
    try:
        yield
    finally:
        if model.pipe in _managed(networks):
            manager = networks.manager(model)
            if manager.active != before:
                manager.apply(before)


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
    """``config`` with the tags cut out of the img2img override prompts (the img2img stage reads
    them as its payload's prompts, applied and cut by :func:`prepare_stage`). The top-level
    prompts keep theirs (the infotext shows them), and so do the hires and ADetailer unit
    prompts: those passes apply and cut their own tags (:func:`pass_loras`)."""
    i2i = config.img2img
    if "<" not in (i2i.prompt or "") + (i2i.negative_prompt or ""):
        return config
    update = {
        "prompt": None if i2i.prompt is None else strip_tags(i2i.prompt),
        "negative_prompt": None if i2i.negative_prompt is None else strip_tags(i2i.negative_prompt),
    }
    return config.model_copy(update={"img2img": i2i.model_copy(update=update)})


def prepare_stage(
    ctx: NetworkContext, stage: str, payload: StagePayload
) -> tuple[StagePayload, LoadedModel | None]:
    """Before a denoising stage: the stage prompt's LoRAs active on its base model (loaded now
    when the prompt has tags; otherwise every manager is switched to no LoRA, loading nothing),
    and the payload with the tags cut out of its text. The ADetailer stage keeps its payload's
    tagged prompts: a unit with no prompt of its own (or ``[PROMPT]``) uses the main prompt,
    tags included, and each inpaint applies the LoRAs of the prompt it resolves
    (:func:`pass_loras`). Returns the model the LoRAs went on."""
    from dataclasses import replace

    prompts = (payload.prompt, payload.negative_prompt)
    networks = ctx.extra_networks
    networks.used.clear()
    model: LoadedModel | None = None
    if any(tag.name in LORA_TAG_NAMES for p in prompts for tag in extract_extra_networks(p)[1]):
        model = ctx.cache.base(*stage_model(payload.config, stage))
        # ADetailer: active between its inpaints (a unit that takes in the main prompt then
        # switches nothing), in the infotext only where an inpaint uses them
        activate_for_prompt(ctx, model, *prompts, record=stage != "adetailer")
    for manager in list(_managed(networks).values()):
        if (model is None or manager is not networks.manager(model)) and manager.active:
            manager.deactivate()
    keep_tags = stage == "adetailer"
    stripped = replace(
        payload,
        config=stripped_config(payload.config),
        prompt=payload.prompt if keep_tags else strip_tags(payload.prompt),
        negative_prompt=payload.negative_prompt if keep_tags else strip_tags(payload.negative_prompt),
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

    networks = ctx.extra_networks
    if model is None and networks.catalog.embeddings():
        model = ctx.cache.base(*stage_model(payload.config, stage))
    if model is None and not networks.used:
        return result
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


def network_params(ctx: NetworkContext, model: LoadedModel | None, *prompts: str) -> dict[str, Any]:
    """``Lora hashes`` and ``TI hashes`` for what the stage used (A1111: ``"name: hash, ..."``,
    only the networks a pass used). The LoRAs are those of every pass of the stage (A1111 merges
    the hires pass's into the first pass's ``lora_hashes``), each name once; the manifest's
    ``Lora files`` lists each (name, multipliers) used. Embeddings are those ``prompts`` use on
    ``model``, matched by token ids (none without a model)."""
    networks = ctx.extra_networks
    params: dict[str, Any] = {}
    if networks.used:
        hashes: dict[str, str] = {}
        files: list[dict[str, Any]] = []
        for name, a in networks.used:
            short = networks.catalog.lora_hash(a.entry)
            hashes.setdefault(_hash_name(name), short)
            where = {"name": name, "file": str(a.entry.path), "hash": short}
            files.append({**where, "te": a.te, "unet": a.unet, "count": a.count})
        params["Lora hashes"] = ", ".join(f"{name}: {short}" for name, short in hashes.items())
        params["Lora files"] = files
    if model is not None and networks.catalog.embeddings():
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
