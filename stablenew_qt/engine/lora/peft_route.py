"""Plain LoRA/LoCon files through diffusers' ``load_lora_weights`` on peft, unfused.

Each file becomes one named peft adapter on the base pipeline's UNet and text encoders (modules
shared with every pipeline made by ``from_pipe``). Changing weights or the set of LoRAs only calls
``set_adapters``; with none active the adapters are disabled, so every layer runs its untouched
base weight (peft never writes the base weights unless fused, and we never fuse).

After each load the layers peft actually wrapped are compared with the layers our own key table
expects: diffusers drops keys it cannot place without an error (measured in 0.42: SDXL's second
text encoder's attention), so the caller can apply those modules with the hook patcher instead of
running with part of a LoRA.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from ..errors import ModelError
from .files import LoraFile

__all__ = ["PeftAdapters", "quiet_library_logs"]

log = logging.getLogger(__name__)
_COMPONENTS = ("unet", "text_encoder", "text_encoder_2")


@contextlib.contextmanager
def quiet_library_logs() -> Iterator[None]:
    """Silence diffusers' and transformers' load chatter (transformers 5 reports the LoRA-wrapped
    base weights as "MISSING ... newly initialized", which is false: they are not re-initialised)
    and peft's warning that a second adapter is being added, which is what we mean to do."""
    loggers = [logging.getLogger(name) for name in ("diffusers", "transformers", "peft")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Already found a `peft_config`", category=UserWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


class PeftAdapters:
    """The peft adapters loaded into one base pipeline."""

    def __init__(self, pipe: Any) -> None:
        self.pipe = pipe
        self.components: dict[str, frozenset[str]] = {}  # adapter -> components it patches
        self._disabled = False

    def load(self, adapter: str, lora: LoraFile) -> tuple[int, set[str]]:
        """Load ``lora`` as adapter ``adapter``: the bytes its weights take and the module keys
        diffusers did not place (the caller applies those another way).

        diffusers 0.42 silently drops some keys: for SDXL's second text encoder its kohya
        converter leaves ``self_attn`` projections under names no layer has. Raises ModelError
        (after removing the adapter) when diffusers refuses the file or wraps a layer the file
        does not name.
        """
        state = lora.kohya_state_dict()
        try:
            with quiet_library_logs():
                self.pipe.load_lora_weights(dict(state), adapter_name=adapter)
        except (ValueError, RuntimeError, KeyError) as exc:
            self._forget(adapter)
            raise ModelError(f"LoRA '{lora.entry.prompt_name}' could not be loaded: {exc}") from exc
        wrapped = self._wrapped(adapter)
        by_layer = {(t.component, t.path): key for key, t in lora.targets.items()}
        unexpected = wrapped - set(by_layer)
        if unexpected:
            self._forget(adapter)
            shown = ", ".join(sorted(f"{c}.{p}" for c, p in unexpected)[:3])
            raise ModelError(
                f"LoRA '{lora.entry.prompt_name}': diffusers patched layers the file does not name ({shown})"
            )
        if not wrapped:
            self._forget(adapter)
            raise ModelError(f"LoRA '{lora.entry.prompt_name}': diffusers placed none of its modules")
        self.components[adapter] = frozenset(c for c, _p in wrapped)
        return self._nbytes(adapter), {key for layer, key in by_layer.items() if layer not in wrapped}

    def activate(self, weights: Sequence[tuple[str, float, float]]) -> None:
        """Make exactly ``weights`` ((adapter, te, unet), at most one entry per adapter) active."""
        if not weights:
            if self.components and not self._disabled:
                self.pipe.disable_lora()
                self._disabled = True
            return
        if self._disabled:
            self.pipe.enable_lora()
            self._disabled = False
        names = [adapter for adapter, _te, _unet in weights]
        per_component = [self._component_weights(adapter, te, unet) for adapter, te, unet in weights]
        with quiet_library_logs():
            self.pipe.set_adapters(names, adapter_weights=per_component)

    def delete(self, adapter: str) -> None:
        """Remove ``adapter`` from every component (its memory is released)."""
        if adapter in self.components:
            with quiet_library_logs():
                self.pipe.delete_adapters([adapter])
            del self.components[adapter]

    def unload_all(self) -> None:
        """Remove every adapter and peft's wrappers: the modules are the ones loaded from disk."""
        if self.components:
            with quiet_library_logs():
                self.pipe.unload_lora_weights()
        self.components.clear()
        self._disabled = False

    def _component_weights(self, adapter: str, te: float, unet: float) -> dict[str, float]:
        # Only the components the adapter has: diffusers defaults a missing one to 1.0, and warns
        # about one the adapter lacks.
        return {c: (unet if c == "unet" else te) for c in self.components[adapter]}

    def _wrapped(self, adapter: str) -> set[tuple[str, str]]:
        wrapped: set[tuple[str, str]] = set()
        for component in _COMPONENTS:
            model = getattr(self.pipe, component, None)
            if model is None:
                continue
            for path, module in model.named_modules():
                adapters = getattr(module, "lora_A", None)  # a peft ModuleDict on wrapped layers
                if adapters is not None and hasattr(adapters, "keys") and adapter in adapters:
                    wrapped.add((component, path))
        return wrapped

    def _nbytes(self, adapter: str) -> int:
        total = 0
        for component in self.components.get(adapter, ()):
            for name, parameter in getattr(self.pipe, component).named_parameters():
                if f".{adapter}." in name or name.endswith(f".{adapter}"):
                    total += parameter.numel() * parameter.element_size()
        return total

    def _forget(self, adapter: str) -> None:
        with contextlib.suppress(Exception), quiet_library_logs():
            self.pipe.delete_adapters([adapter])
        self.components.pop(adapter, None)
