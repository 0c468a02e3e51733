"""A1111's seeds: per-image noise streams, variation seeds, seed resize, RNG sources, ENSD.

:class:`ImageNoise` is A1111's ``ImageRNG`` (``modules/rng.py``). Each image owns one stream
seeded with its seed. The first draw is the starting noise; later draws (ancestral samplers, DDIM
eta, Restart, LCM) continue the same stream, or, with an Eta noise seed delta, a fresh stream
seeded ``seed + ENSD`` (A1111 reseeds for every sampler; only the infotext entry depends on it).

- Variation seed: the starting noise is ``slerp(strength, noise(seed), noise(subseed))``, with
  A1111's slerp over a ``(C, H, W)`` tensor (norms along dim 1, i.e. image rows).
- Seed resize from W x H: the seed's noise is drawn at the other size's latent shape and pasted
  centred into (or cropped from the centre of) a draw at the real shape.
- RNG source ``"GPU"`` (A1111's default) draws on the device's own generator when it is a CUDA
  device (``torch.Generator("cuda")``) and on the CPU otherwise (A1111: CPU for "CPU" and for MPS);
  ``"CPU"`` always draws on the CPU; ``"NV"`` uses :mod:`.philox`, the CPU copy of CUDA's Philox.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .philox import PhiloxGenerator

if TYPE_CHECKING:
    import torch

RNG_SOURCES: tuple[str, ...] = ("GPU", "CPU", "NV")


@dataclass(frozen=True)
class NoiseSpec:
    """Everything that decides a batch's noise (A1111's seed fields and RNG options).

    ``subseeds``: one variation seed per image (missing ones count as 0, as in A1111);
    ``subseed_strength`` 0 turns variation off. ``seed_resize_from`` is (width, height) in pixels;
    either 0 turns it off. ``source`` is one of :data:`RNG_SOURCES`.
    """

    seeds: tuple[int, ...]
    subseeds: tuple[int, ...] = ()
    subseed_strength: float = 0.0
    seed_resize_from: tuple[int, int] = (0, 0)
    source: str = "GPU"
    eta_noise_seed_delta: int = 0

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("NoiseSpec needs at least one seed")
        if self.source not in RNG_SOURCES:
            raise ValueError(f"unknown RNG source {self.source!r}; choose one of {', '.join(RNG_SOURCES)}")


class _Stream(Protocol):
    def draw(self, shape: Sequence[int]) -> torch.Tensor: ...


class _TorchStream:
    def __init__(self, seed: int, generator_device: torch.device, out_device: torch.device) -> None:
        import torch

        self.generator = torch.Generator(generator_device).manual_seed(int(seed))
        self.generator_device = generator_device
        self.out_device = out_device

    def draw(self, shape: Sequence[int]) -> torch.Tensor:
        import torch

        values = torch.randn(tuple(shape), device=self.generator_device, generator=self.generator)
        return values.to(self.out_device)


class _PhiloxStream:
    def __init__(self, seed: int, out_device: torch.device) -> None:
        self.generator = PhiloxGenerator(seed)
        self.out_device = out_device

    def draw(self, shape: Sequence[int]) -> torch.Tensor:
        import torch

        return torch.asarray(self.generator.randn(shape), device=self.out_device)


def generator_device(source: str, device: torch.device) -> torch.device:
    """Where a "GPU"/"CPU" source's torch generator lives for latents on ``device``."""
    import torch

    if source == "CPU" or device.type == "mps":
        return torch.device("cpu")
    return device


def new_stream(seed: int, source: str, device: torch.device) -> _Stream:
    """A fresh noise stream for ``seed`` on ``source``; its draws land on ``device``."""
    if source == "NV":
        return _PhiloxStream(seed, device)
    return _TorchStream(seed, generator_device(source, device), device)


def randn_local(seed: int, shape: Sequence[int], source: str, device: torch.device) -> torch.Tensor:
    """The first draw of a fresh stream (A1111's ``randn_local``, used for the Brownian tree)."""
    return new_stream(seed, source, device).draw(shape)


def slerp(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's spherical interpolation of two noises: ``val`` 0 gives ``low``, 1 gives ``high``.

    Norms and dot products run along dim 1; when the two are nearly parallel (mean dot > 0.9995)
    A1111 falls back to ``low * val + high * (1 - val)``, weights as written there.
    """
    import torch

    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(
        1
    ) * high


class ImageNoise:
    """Noise for a batch of images of latent ``shape`` (C, H, W) on ``device``, as A1111 draws it.

    :meth:`next` returns ``[batch, C, H, W]`` float32: the starting noise on the first call, then
    each image's continuation. :meth:`randn_local` serves the Brownian tree.
    """

    def __init__(self, spec: NoiseSpec, shape: Sequence[int], device: torch.device | str) -> None:
        import torch

        self.spec = spec
        self.shape: tuple[int, int, int] = (int(shape[0]), int(shape[1]), int(shape[2]))
        self.device = torch.device(device)
        self._streams = [new_stream(seed, spec.source, self.device) for seed in spec.seeds]
        self._is_first = True

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.spec.seeds

    def randn_local(self, seed: int, shape: Sequence[int]) -> torch.Tensor:
        return randn_local(seed, shape, self.spec.source, self.device)

    @property
    def tree_randn(self) -> Callable[[int, Sequence[int]], torch.Tensor] | None:
        """The Brownian tree's draw for this source; None where torchsde's own draw (a torch
        generator on the latents' device) is already A1111's ``randn_local``."""
        if self.spec.source != "NV" and generator_device(self.spec.source, self.device) == self.device:
            return None
        return self.randn_local

    def next(self) -> torch.Tensor:
        import torch

        if self._is_first:
            self._is_first = False
            return self._first()
        return torch.stack([stream.draw(self.shape) for stream in self._streams])

    def _fresh(self, seed: int, shape: Sequence[int]) -> torch.Tensor:
        return self.randn_local(seed, shape)

    def _noise_shape(self) -> tuple[int, int, int]:
        width, height = self.spec.seed_resize_from
        if width <= 0 or height <= 0:
            return self.shape
        return (self.shape[0], int(height) // 8, int(width) // 8)

    def _first(self) -> torch.Tensor:
        import torch

        spec = self.spec
        noise_shape = self._noise_shape()
        images = []
        for i, (seed, stream) in enumerate(zip(spec.seeds, self._streams, strict=True)):
            noise = self._fresh(seed, noise_shape) if noise_shape != self.shape else stream.draw(self.shape)
            if spec.subseed_strength != 0:
                subseed = spec.subseeds[i] if i < len(spec.subseeds) else 0
                noise = slerp(spec.subseed_strength, noise, self._fresh(subseed, noise_shape))
            if noise_shape != self.shape:
                noise = self._paste_centred(noise, stream.draw(self.shape))
            images.append(noise)
        if spec.eta_noise_seed_delta:
            delta = int(spec.eta_noise_seed_delta)
            self._streams = [new_stream(seed + delta, spec.source, self.device) for seed in spec.seeds]
        return torch.stack(images)

    def _paste_centred(self, small: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
        """A1111's seed resize: ``small`` centred on ``full`` (cropped where it is larger)."""
        dx = (self.shape[2] - small.shape[2]) // 2
        dy = (self.shape[1] - small.shape[1]) // 2
        w = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
        h = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
        tx, ty = max(dx, 0), max(dy, 0)
        sx, sy = max(-dx, 0), max(-dy, 0)
        full[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
        return full
