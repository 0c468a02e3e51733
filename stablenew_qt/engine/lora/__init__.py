"""LoRA and LyCORIS networks on resident diffusers pipelines (see ``manager`` for the contract).

Plain LoRA/LoCon files load through diffusers + peft as unfused adapters; the types diffusers
cannot map (DoRA, Tucker LoCon, LoHa, LoKr, IA3, full, norm) apply through forward hooks that
follow A1111's formulas. Nothing here fuses weights: removing a LoRA restores the model exactly.
"""

from .manager import AppliedLoras, LoraActivation, LoraManager, LoraRegistry, network_family

__all__ = ["AppliedLoras", "LoraActivation", "LoraManager", "LoraRegistry", "network_family"]
