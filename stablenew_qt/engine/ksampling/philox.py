"""A1111's "NV" RNG source: NVIDIA's Philox4x32-10 with a Box-Muller transform, on the CPU.

A1111 (``modules/rng_philox.py``) emulates ``torch.randn(..., device="cuda")`` so that CPU and
non-NVIDIA machines make the noise a CUDA GPU makes. One draw of ``n`` numbers uses the counter
(``offset``, 0, element index, 0) and the 64-bit seed split into two 32-bit key words, runs the ten
Philox rounds (key bumped by the Weyl constants between rounds), and turns the first two output
words of each counter into one normal number (the first Box-Muller output; words 3 and 4 are
unused). The offset grows by one per draw, whatever its size.

Box-Muller is evaluated as A1111's numpy code evaluates it: the uniform's scale constants are
float32 but the arithmetic is float64 (uint32 x float32 promotes to float64), rounded to float32 at
the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # key schedule (Weyl) increments
ROUNDS = 10
_MASK32 = 0xFFFFFFFF


def philox4x32(counter: Sequence[np.ndarray], key: Sequence[int], rounds: int = ROUNDS) -> list[np.ndarray]:
    """The four 32-bit output words for every counter column; ``counter`` holds four uint32
    arrays of equal length, ``key`` two 32-bit ints."""
    import numpy as np

    c0, c1, c2, c3 = (np.asarray(word, dtype=np.uint64) for word in counter)
    k0, k1 = np.uint64(key[0] & _MASK32), np.uint64(key[1] & _MASK32)
    mask, shift = np.uint64(_MASK32), np.uint64(32)
    m0, m1 = np.uint64(PHILOX_M[0]), np.uint64(PHILOX_M[1])
    for round_index in range(rounds):
        if round_index:
            k0 = (k0 + np.uint64(PHILOX_W[0])) & mask
            k1 = (k1 + np.uint64(PHILOX_W[1])) & mask
        product0 = c0 * m0  # both factors < 2**32, so the 64-bit product is exact
        product1 = c2 * m1
        c0, c1, c2, c3 = (
            (product1 >> shift) ^ c1 ^ k0,
            product1 & mask,
            (product0 >> shift) ^ c3 ^ k1,
            product0 & mask,
        )
    return [word.astype(np.uint32) for word in (c0, c1, c2, c3)]


def box_muller_first(u_bits: np.ndarray, v_bits: np.ndarray) -> np.ndarray:
    """The first Box-Muller normal from two uint32 words (float32), as A1111 computes it."""
    import numpy as np

    inv = np.float64(np.float32(2.3283064e-10))  # 2**-32 as A1111 spells it, rounded to float32
    inv_2pi = np.float64(np.float32(2.3283064e-10 * 6.2831855))
    u = u_bits.astype(np.float64) * inv + np.float64(np.float32(inv) / 2)
    v = v_bits.astype(np.float64) * inv_2pi + np.float64(np.float32(inv_2pi) / 2)
    radius = np.sqrt(-2.0 * np.log(u))
    return (radius * np.sin(v)).astype(np.float32)


class PhiloxGenerator:
    """A stream of normals for one seed, equal to A1111's ``rng_philox.Generator``."""

    def __init__(self, seed: int) -> None:
        self.seed = int(seed) & 0xFFFFFFFFFFFFFFFF
        self.offset = 0

    def randn(self, shape: Sequence[int]) -> np.ndarray:
        """The next ``shape`` normals (float32); advances the offset by one."""
        import numpy as np

        n = 1
        for size in shape:
            n *= int(size)
        counter = [
            np.full(n, self.offset & _MASK32, dtype=np.uint32),
            np.zeros(n, dtype=np.uint32),
            np.arange(n, dtype=np.uint32),
            np.zeros(n, dtype=np.uint32),
        ]
        self.offset += 1
        key = (self.seed & _MASK32, self.seed >> 32)
        words = philox4x32(counter, key)
        return box_muller_first(words[0], words[1]).reshape(tuple(int(s) for s in shape))
