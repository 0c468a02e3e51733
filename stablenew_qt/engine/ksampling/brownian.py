"""The SDE samplers' noise: a Brownian tree per image, seeded as A1111 seeds it.

A1111 (``Sampler.create_noise_sampler``) gives DPM++ SDE, DPM++ 2M SDE (and Heun) and DPM++ 3M SDE
k-diffusion's ``BrownianTreeNoiseSampler``: one ``torchsde.BrownianTree`` per image, entropy = the
image's seed, over [smallest positive sigma, largest sigma] of the *whole* schedule (img2img too).
A query (sigma, sigma_next) returns the Brownian increment divided by sqrt(|sigma_next - sigma|).

A1111 also replaces torchsde's internal normal draw with its own ``randn_local(seed, size)``, so the
tree follows the RNG source (GPU, CPU or NV). torchsde keeps that draw in a module-level function,
so :func:`_tree_randn` swaps it in for the duration of each tree operation, under a lock.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

RandnLocal = Callable[[int, Sequence[int]], "torch.Tensor"]

# torchsde draws through one module-level function; the lock keeps two samplings in one process
# from swapping it under each other.
_TORCHSDE_LOCK = threading.RLock()


@contextmanager
def _tree_randn(randn_local: RandnLocal) -> Iterator[None]:
    module: Any = importlib.import_module("torchsde._brownian.brownian_interval")

    def draw(size: Sequence[int], dtype: torch.dtype, device: torch.device, seed: int) -> torch.Tensor:
        return randn_local(int(seed), tuple(size)).to(device=device, dtype=dtype)

    with _TORCHSDE_LOCK:
        saved = module._randn
        module._randn = draw
        try:
            yield
        finally:
            module._randn = saved


class BrownianTreeNoise:
    """``noise(sigma, sigma_next)`` for a batch ``x`` with one tree per seed.

    ``randn_local`` is the RNG source's first-draw function; None when torchsde's own draw already
    is that (a torch generator on the latents' device, float32), which saves a wrapper per draw.
    The trees are built on first use (A1111 builds them up front; building them lazily changes no
    number and lets a one-step schedule, whose interval is empty, run).
    """

    def __init__(
        self, x: torch.Tensor, sigmas: torch.Tensor, seeds: Sequence[int], randn_local: RandnLocal | None
    ) -> None:
        import torch

        self._template = torch.zeros_like(x[0])
        positive = sigmas[sigmas > 0]
        self._t0 = torch.as_tensor(positive.min())
        self._t1 = torch.as_tensor(sigmas.max())
        self._seeds = [int(seed) for seed in seeds]
        if len(self._seeds) != x.shape[0]:
            raise ValueError(f"{len(self._seeds)} seeds for a batch of {x.shape[0]} latents")
        self._randn_local = randn_local
        self._trees: list[Any] | None = None

    def _build(self) -> list[Any]:
        import torchsde

        return [torchsde.BrownianTree(self._t0, self._template, self._t1, entropy=s) for s in self._seeds]

    def __call__(self, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
        import torch

        t0, t1 = torch.as_tensor(sigma), torch.as_tensor(sigma_next)
        low, high, sign = (t0, t1, 1) if t0 < t1 else (t1, t0, -1)
        draws = _tree_randn(self._randn_local) if self._randn_local is not None else contextlib.nullcontext()
        with draws, warnings.catch_warnings():
            # torchsde compares a float32 end point with its float64 copy and warns that sigma_max
            # lies outside [sigma_min, sigma_max]; A1111 prints the same warning. Harmless.
            warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
            if self._trees is None:
                self._trees = self._build()
            w = torch.stack([tree(low, high) for tree in self._trees]) * sign
        return w / (t1 - t0).abs().sqrt()
