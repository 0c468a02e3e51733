"""Reading a LoRA file and sorting its modules: which layer each patches, and how it is applied.

The header is validated by core's strict reader before ``safetensors`` reads any data. Modules
that name no layer of the model are reported (A1111 logs them as "unmatched" and goes on); a
module whose shapes do not fit its layer is an error naming both, since it means the file was
made for another model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stablenew_qt.core.extra_networks import HeaderError, LoraEntry, ModuleType, read_header
from stablenew_qt.core.extra_networks.lora_info import analyse_lora

from ..errors import ModelError
from .keys import LayerTable, Target

if TYPE_CHECKING:
    import torch

__all__ = ["PEFT_TYPES", "LoraFile", "read_lora_file"]

#: Module types diffusers' kohya converter maps onto peft LoRA layers (checked in diffusers 0.42:
#: it refuses lora_mid, hada_*, lokr_*, IA3, diff, w_norm keys and drops dora_scale keys).
PEFT_TYPES = frozenset({ModuleType.LORA, ModuleType.LOCON})
_MAX_UNMATCHED_SHOWN = 3


@dataclass
class LoraFile:
    """A LoRA file's tensors grouped by module, each module placed on a layer of the model."""

    entry: LoraEntry
    modules: dict[str, dict[str, torch.Tensor]]  # module key -> part name -> tensor (CPU)
    owners: dict[str, str]  # tensor key as in the file -> its module key
    types: dict[str, ModuleType]
    targets: dict[str, Target]
    warnings: list[str]
    needs_inpaint_padding: bool

    @property
    def peft_ready(self) -> bool:
        """True when diffusers + peft can apply every module (plain LoRA/LoCon with fitting shapes)."""
        return not self.needs_inpaint_padding and all(t in PEFT_TYPES for t in self.types.values())

    def kohya_state_dict(self) -> dict[str, torch.Tensor]:
        """The matched modules' tensors under their original keys, for ``load_lora_weights``."""
        result: dict[str, torch.Tensor] = {}
        for raw_key, module in self.owners.items():
            if module in self.targets:
                result[raw_key] = self.modules[module][raw_key[len(module) + 1 :]]
        return result

    @property
    def components(self) -> frozenset[str]:
        return frozenset(t.component for t in self.targets.values())


def read_lora_file(entry: LoraEntry, table: LayerTable) -> LoraFile:
    """Read ``entry``'s tensors (one full read of the file) and place each module on a layer."""
    from safetensors.torch import load_file

    path = entry.path
    try:
        analysis = analyse_lora(read_header(path))
        tensors = load_file(str(path), device="cpu")
    except HeaderError as exc:
        raise ModelError(f"LoRA '{entry.prompt_name or entry.name}': {exc}") from exc
    except (OSError, RuntimeError, ValueError) as exc:
        raise ModelError(f"cannot read LoRA '{entry.prompt_name or entry.name}' ({path}): {exc}") from exc
    modules, owners = _group(tensors, analysis.modules)
    name = entry.prompt_name or entry.name
    warnings = []
    if analysis.bundled_embeddings:
        bundled = ", ".join(analysis.bundled_embeddings)
        warnings.append(
            f"LoRA '{name}': its bundled embeddings ({bundled}) are not supported and were skipped"
        )
    targets, unmatched = _place(modules, table)
    if not targets:
        raise ModelError(
            f"LoRA '{name}' patches no layer of this model ({len(modules)} modules, e.g. "
            f"{', '.join(sorted(modules)[:_MAX_UNMATCHED_SHOWN])}); it was made for another kind of model"
        )
    if unmatched:
        shown = ", ".join(sorted(unmatched)[:_MAX_UNMATCHED_SHOWN])
        warnings.append(
            f"LoRA '{name}': {len(unmatched)} of {len(modules)} modules match no layer "
            f"and were skipped ({shown})"
        )
    padding = _check_shapes(name, modules, analysis.modules, targets, table)
    return LoraFile(entry, modules, owners, dict(analysis.modules), targets, warnings, padding)


def _group(
    tensors: Mapping[str, torch.Tensor], kinds: Mapping[str, ModuleType]
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    modules: dict[str, dict[str, torch.Tensor]] = {key: {} for key in kinds}
    owners: dict[str, str] = {}
    for key, tensor in tensors.items():
        module = _owner(key, modules)
        if module is not None:
            modules[module][key[len(module) + 1 :]] = tensor
            owners[key] = module
    return modules, owners


def _owner(key: str, modules: Mapping[str, Any]) -> str | None:
    module = key.partition(".")[0]
    if module in modules:
        return module
    # diffusers-format keys (``unet.a.b.lora_A.weight``): the longest module key that prefixes it
    matches = [m for m in modules if key.startswith((m + ".", m + "_lora."))]
    return max(matches, key=len) if matches else None


def _place(modules: Mapping[str, Any], table: LayerTable) -> tuple[dict[str, Target], list[str]]:
    targets: dict[str, Target] = {}
    unmatched: list[str] = []
    for key in modules:
        target = table.target(key) or _diffusers_target(key, table)
        if target is None:
            unmatched.append(key)
        else:
            targets[key] = target
    return targets, unmatched


def _diffusers_target(key: str, table: LayerTable) -> Target | None:
    component, _, path = key.partition(".")
    model = table.components.get(component)
    if model is None or not path:
        return None
    for candidate in (path, path.removeprefix("text_model.")):
        try:
            model.get_submodule(candidate)
        except AttributeError:
            continue
        return Target(component, candidate)
    return None


def _check_shapes(
    name: str,
    modules: Mapping[str, Mapping[str, torch.Tensor]],
    kinds: Mapping[str, ModuleType],
    targets: Mapping[str, Target],
    table: LayerTable,
) -> bool:
    """Raise when a plain LoRA module does not fit its layer; True when one needs A1111's
    4 -> 9 channel padding (an SD LoRA on an inpainting UNet's conv_in), which peft cannot do."""
    padding = False
    for key, target in targets.items():
        parts = modules[key]
        if kinds.get(key) not in PEFT_TYPES or "lora_up.weight" not in parts:
            continue
        weight = table.layer(target).weight
        up, down = parts["lora_up.weight"], parts["lora_down.weight"]
        fits = up.shape[0] == weight.shape[0] and down.shape[1] == weight.shape[1]
        if weight.dim() == 4 and down.dim() == 4 and down.shape[2:] not in ((1, 1), weight.shape[2:]):
            fits = False
        if not fits and weight.dim() == 4 and weight.shape[1] == 9 and down.shape[1] == 4:
            padding = True
            continue
        if not fits:
            raise ModelError(
                f"LoRA '{name}' does not fit this model: module {key} is {up.shape[0]}x{down.shape[1]} "
                f"but layer {target.path} is {weight.shape[0]}x{weight.shape[1]}; "
                "it was made for another model family"
            )
    return padding
