"""LoraManager: the LoRAs applied to one resident base pipeline, kept loaded between jobs.

``apply([...])`` makes exactly the given LoRAs active with their multipliers:

* a file not yet resident is read once (``file_reads`` counts reads) and loaded: plain LoRA/LoCon
  files as diffusers + peft adapters (unfused), DoRA, Tucker-LoCon and LyCORIS types (LoHa,
  LoKr, IA3, full, norm) through our forward-hook patcher (``patcher``);
* a resident file whose weight changed, or that is no longer wanted, costs only a
  ``set_adapters`` call or a hook update: nothing is read and the checkpoint is never reloaded;
* with no LoRA active every layer runs its untouched base weights (peft adapters disabled, no
  hooks), so outputs equal the model's without LoRAs bit for bit, in any dtype;
* residents beyond ``max_resident`` files or ``max_bytes`` are evicted, least recently used first.

A1111 applies stacked networks one after another to the already-patched weight. That only matters
for types whose change depends on the weight (DoRA, IA3): when one of those is stacked with other
networks, every network of that job goes through the patcher, which applies them in order.

The pipelines ``PipelineCache`` derives with ``from_pipe`` (img2img, inpaint, ADetailer) share
these modules, so they see the same LoRAs. The SDXL refiner's UNet is never patched; it shares
``text_encoder_2`` with the base, so wrap the refiner's prompt encoding in :meth:`suspended`.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from stablenew_qt.core.extra_networks import (
    SUPPORTED_TYPES,
    LoraEntry,
    ModuleType,
    NetworkFamily,
    family_problem,
)

from ..errors import ModelError
from ..family import ModelFamily
from .files import LoraFile, read_lora_file
from .keys import LayerTable
from .patcher import HookPatcher, PatchModule, PatchNetwork
from .peft_route import PeftAdapters

__all__ = ["AppliedLoras", "LoraActivation", "LoraManager", "LoraRegistry", "network_family"]

log = logging.getLogger(__name__)

Route = Literal["peft", "hooks"]
_WEIGHT_DEPENDENT = frozenset({ModuleType.DORA, ModuleType.IA3})
_NETWORK_FAMILY = {
    ModelFamily.SD15: NetworkFamily.SD1,
    ModelFamily.SD15_INPAINT: NetworkFamily.SD1,
    ModelFamily.SD2: NetworkFamily.SD2,
    ModelFamily.SDXL: NetworkFamily.SDXL,
    ModelFamily.SDXL_INPAINT: NetworkFamily.SDXL,
    ModelFamily.SDXL_REFINER: NetworkFamily.SDXL,
}
DEFAULT_MAX_RESIDENT = 8
DEFAULT_MAX_BYTES = 2 * 1024**3


def network_family(family: ModelFamily) -> NetworkFamily:
    """The LoRA family a checkpoint family takes (SD 1.5 and its inpainting model take SD1 LoRAs)."""
    return _NETWORK_FAMILY[family]


@dataclass(frozen=True)
class LoraActivation:
    """One LoRA to apply: its catalog entry, multipliers, and how many times the prompt names it."""

    entry: LoraEntry
    te: float = 1.0
    unet: float = 1.0
    count: int = 1


@dataclass(frozen=True)
class AppliedLoras:
    """What :meth:`LoraManager.apply` did: the active LoRAs, the files it read, what it evicted,
    warnings for the user (modules that matched no layer, skipped bundled embeddings), seconds."""

    active: tuple[LoraActivation, ...]
    loaded: tuple[str, ...]
    evicted: tuple[str, ...]
    warnings: tuple[str, ...]
    seconds: float


@dataclass
class _Resident:
    key: tuple[str, int, int, Route]
    name: str
    route: Route
    adapter: str | None
    network: PatchNetwork | None
    components: frozenset[str]
    warnings: tuple[str, ...]
    nbytes: int


class LoraManager:
    """The LoRAs of one base pipeline. Not thread-safe: call it from the engine's worker thread."""

    def __init__(
        self,
        pipe: Any,
        family: ModelFamily,
        *,
        max_resident: int = DEFAULT_MAX_RESIDENT,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        self.family = family
        self.max_resident = max_resident
        self.max_bytes = max_bytes
        components = {c: getattr(pipe, c, None) for c in ("unet", "text_encoder", "text_encoder_2")}
        self.table = LayerTable(components)
        # Weak: the registry keys on the pipeline, and the cache that owns it decides its lifetime.
        self._pipe = weakref.ref(pipe)
        self.peft = PeftAdapters(weakref.proxy(pipe))
        self.patcher = HookPatcher(self.table)
        self._residents: OrderedDict[tuple[str, int, int, Route], _Resident] = OrderedDict()
        self._active: tuple[LoraActivation, ...] = ()
        self.file_reads = 0
        self.adapter_loads = 0

    # -- public ----------------------------------------------------------------------------
    def apply(self, activations: Sequence[LoraActivation]) -> AppliedLoras:
        """Make exactly ``activations`` active (see the module docstring). Raises ModelError, before
        loading anything, for a LoRA of another family, an unsupported type or an unusable file."""
        started = time.perf_counter()
        if self._pipe() is None:
            raise ModelError("the model these LoRAs belong to was unloaded; load it again")
        wanted = tuple(a for a in activations if a.count > 0)
        for activation in wanted:
            self._check(activation.entry)
        stacked = len(wanted) > 1 and any(a.entry.module_types & _WEIGHT_DEPENDENT for a in wanted)
        loaded: list[str] = []
        chosen = [self._resident_for(a.entry, "hooks" if stacked else None, loaded) for a in wanted]
        self._activate(wanted, chosen)
        self._active = wanted
        evicted = self._evict(keep={r.key for r in chosen})
        warnings = tuple(dict.fromkeys(w for r in chosen for w in r.warnings))
        return AppliedLoras(wanted, tuple(loaded), tuple(evicted), warnings, time.perf_counter() - started)

    def deactivate(self) -> None:
        """No LoRA active (the residents stay loaded)."""
        self.apply(())

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Run the block without any LoRA (e.g. the SDXL refiner's prompt encoding on the shared
        ``text_encoder_2``), then restore the active set. Nothing is loaded or read."""
        active = self._active
        self.apply(())
        try:
            yield
        finally:
            self.apply(active)

    def unload_all(self) -> None:
        """Remove every LoRA: peft wrappers and hooks go, the modules are exactly as loaded."""
        self.patcher.clear()
        self.peft.unload_all()
        self._residents.clear()
        self._active = ()

    @property
    def active(self) -> tuple[LoraActivation, ...]:
        return self._active

    def resident(self) -> list[str]:
        """Names of the resident LoRA files, least recently used first."""
        return [r.name for r in self._residents.values()]

    def text_encoder_state(self) -> tuple[tuple[str, int, int, float], ...]:
        """What the active LoRAs change in the text encoders (file identity and te multiplier):
        part of any conditioning cache key, since a te LoRA changes the prompt's encoding."""
        state = []
        for activation in self._active:
            if activation.entry.components & {"text_encoder", "text_encoder_2"}:
                entry = activation.entry
                state.append((str(entry.path), entry.size, entry.mtime_ns, activation.te * activation.count))
        return tuple(state)

    # -- loading ---------------------------------------------------------------------------
    def _check(self, entry: LoraEntry) -> None:
        if not entry.usable:
            raise ModelError(f"LoRA '{entry.prompt_name or entry.name}': {entry.error}")
        unsupported = sorted(t.value for t in entry.module_types - SUPPORTED_TYPES)
        if unsupported:
            raise ModelError(
                f"LoRA '{entry.prompt_name}' uses {', '.join(unsupported)} modules, which cannot be applied"
            )
        problem = family_problem(entry, network_family(self.family))
        if problem:
            raise ModelError(problem)

    def _resident_for(self, entry: LoraEntry, route: Route | None, loaded: list[str]) -> _Resident:
        identity = _identity(entry)
        for candidate in (route,) if route else ("peft", "hooks"):
            resident = self._residents.get((*identity, candidate))
            if resident is not None:
                self._residents.move_to_end(resident.key)
                return resident
        lora = read_lora_file(entry, self.table)
        self.file_reads += 1
        loaded.append(entry.prompt_name or entry.name)
        resident = self._load(entry, lora, identity, route or ("peft" if lora.peft_ready else "hooks"))
        self._residents[resident.key] = resident
        return resident

    def _load(
        self, entry: LoraEntry, lora: LoraFile, identity: tuple[str, int, int], route: Route
    ) -> _Resident:
        name = entry.prompt_name or entry.name
        key: tuple[str, int, int, Route] = (*identity, route)
        adapter, nbytes, rest = None, 0, set(lora.targets)
        if route == "peft":
            candidate = "sn_" + hashlib.sha1(repr(identity).encode()).hexdigest()[:12]
            try:
                nbytes, rest = self.peft.load(candidate, lora)
            except ModelError as exc:
                log.info("%s; applying it with the hook patcher instead", exc)
            else:
                adapter = candidate
                self.adapter_loads += 1
                if rest:
                    log.info("LoRA %s: %d modules diffusers did not place go through hooks", name, len(rest))
        network = _patch_network(name, lora, rest) if rest else None
        if network is not None:
            self.patcher.check(network)
        warnings = tuple(lora.warnings)
        return _Resident(key, name, route, adapter, network, lora.components, warnings, nbytes)

    def _activate(self, wanted: Sequence[LoraActivation], chosen: Sequence[_Resident]) -> None:
        peft: dict[str, list[float]] = {}
        hooks: list[tuple[PatchNetwork, float, float]] = []
        for activation, resident in zip(wanted, chosen, strict=True):
            if resident.adapter is not None:
                # peft's output is linear in the scale, so n mentions (A1111 applies each) add up.
                total = peft.setdefault(resident.adapter, [0.0, 0.0])
                total[0] += activation.te * activation.count
                total[1] += activation.unet * activation.count
            if resident.network is not None:
                hooks.extend([(resident.network, activation.te, activation.unet)] * activation.count)
        self.peft.activate([(adapter, te, unet) for adapter, (te, unet) in peft.items()])
        self.patcher.activate(hooks)

    def _evict(self, keep: set[tuple[str, int, int, Route]]) -> list[str]:
        evicted: list[str] = []
        while len(self._residents) > self.max_resident or self._bytes() > self.max_bytes:
            victim = next((k for k in self._residents if k not in keep), None)
            if victim is None:
                break
            resident = self._residents.pop(victim)
            if resident.adapter is not None:
                self.peft.delete(resident.adapter)
            evicted.append(resident.name)
            log.info(
                "LoRA %s evicted (resident limit %d files, %d bytes)",
                resident.name,
                self.max_resident,
                self.max_bytes,
            )
        return evicted

    def _bytes(self) -> int:
        return sum(r.nbytes + (r.network.nbytes if r.network else 0) for r in self._residents.values())


class LoraRegistry:
    """One :class:`LoraManager` per resident base pipeline, dropped when the pipeline is evicted
    (the registry holds pipelines weakly; a manager holds its pipeline only through a proxy)."""

    def __init__(
        self, *, max_resident: int = DEFAULT_MAX_RESIDENT, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        self.max_resident = max_resident
        self.max_bytes = max_bytes
        self._managers: weakref.WeakKeyDictionary[Any, LoraManager] = weakref.WeakKeyDictionary()

    def manager_for(self, pipe: Any, family: ModelFamily) -> LoraManager:
        """The manager of ``pipe`` (a base pipeline from ``PipelineCache.base``), made on first use."""
        manager = self._managers.get(pipe)
        if manager is None:
            manager = LoraManager(pipe, family, max_resident=self.max_resident, max_bytes=self.max_bytes)
            self._managers[pipe] = manager
        return manager

    def __len__(self) -> int:
        return len(self._managers)


def _identity(entry: LoraEntry) -> tuple[str, int, int]:
    """The file as it is now (a file changed since the catalog scanned it is loaded afresh)."""
    try:
        stat = entry.path.stat()
    except OSError as exc:
        raise ModelError(
            f"LoRA '{entry.prompt_name or entry.name}' cannot be read: {exc.strerror or exc}"
        ) from exc
    return str(entry.path.resolve()), stat.st_size, stat.st_mtime_ns


def _patch_network(name: str, lora: LoraFile, keys: set[str]) -> PatchNetwork:
    modules = [
        PatchModule(key, target, lora.types[key], lora.modules[key])
        for key, target in lora.targets.items()
        if key in keys
    ]
    return PatchNetwork(name, modules)
