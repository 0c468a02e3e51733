"""A1111's seeds: RNG sources, per-image streams and their continuation, ENSD, variation seeds,
seed resize, the NV (Philox) source and the SDE samplers' Brownian tree."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from ks_reference import KDIFF_MISSING, load_k_diffusion

from stablenew_qt.engine.ksampling import ImageNoise, NoiseSpec
from stablenew_qt.engine.ksampling.brownian import BrownianTreeNoise
from stablenew_qt.engine.ksampling.noise import randn_local, slerp
from stablenew_qt.engine.ksampling.philox import PhiloxGenerator, box_muller_first, philox4x32

SHAPE = (4, 8, 8)

# Random123's known-answer vectors for Philox4x32-10: (counter, key) -> output words.
PHILOX_KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]
# torch.randn(3, 4) on a CUDA generator seeded 0, as A1111's rng_philox docstring records it.
CUDA_SEED0_3X4 = np.array([
    [-0.92466259, -0.42534415, -2.6438457, 0.14518388],
    [-0.12086647, -0.57972564, -0.62285122, -0.32838709],
    [-1.07454231, -0.36314407, -1.67105067, 2.26550497],
])  # fmt: skip


@pytest.mark.parametrize(("counter", "key", "expected"), PHILOX_KAT)
def test_philox_matches_random123_known_answers(counter, key, expected) -> None:
    words = philox4x32([np.array([c], dtype=np.uint32) for c in counter], key)
    assert tuple(int(w[0]) for w in words) == expected


def _philox_scalar(counter: list[int], key: list[int]) -> list[int]:
    """Philox4x32-10 on Python ints, one counter at a time (an independent spelling)."""
    c, k = list(counter), list(key)
    for r in range(10):
        if r:
            k = [(k[0] + 0x9E3779B9) % 2**32, (k[1] + 0xBB67AE85) % 2**32]
        p0, p1 = c[0] * 0xD2511F53, c[2] * 0xCD9E8D57
        c = [(p1 >> 32) ^ c[1] ^ k[0], p1 % 2**32, (p0 >> 32) ^ c[3] ^ k[1], p0 % 2**32]
    return c


def test_nv_generator_is_philox_with_a1111s_counter_layout() -> None:
    seed, n = 0x1_0000_0007, 37  # a seed above 2**32 exercises the second key word
    gen = PhiloxGenerator(seed)
    first, second = gen.randn((n,)), gen.randn((n,))
    key = [seed % 2**32, seed >> 32]
    for offset, draw in ((0, first), (1, second)):
        words = np.array([_philox_scalar([offset, 0, i, 0], key) for i in range(n)], dtype=np.uint32)
        expected = box_muller_first(words[:, 0], words[:, 1])
        assert np.array_equal(draw, expected)
    # a draw's values depend only on (seed, offset, index): a shorter draw is a prefix
    assert np.array_equal(PhiloxGenerator(seed).randn((5,)), first[:5])
    assert first.dtype == np.float32


def test_nv_source_reproduces_cudas_randn_for_seed_0() -> None:
    # A1111's Box-Muller runs in float64 where CUDA uses float32 intrinsics: ~1e-7 apart.
    got = PhiloxGenerator(0).randn((3, 4))
    assert np.abs(got - CUDA_SEED0_3X4).max() < 1e-6


def test_gpu_source_on_cpu_is_a_cpu_generator_per_image_and_continues_it() -> None:
    noise = ImageNoise(NoiseSpec(seeds=(11, 22)), SHAPE, "cpu")
    gens = [torch.Generator("cpu").manual_seed(s) for s in (11, 22)]
    first, second = noise.next(), noise.next()
    assert first.shape == (2, *SHAPE) and first.dtype == torch.float32
    assert torch.equal(first, torch.stack([torch.randn(SHAPE, generator=g) for g in gens]))
    assert torch.equal(second, torch.stack([torch.randn(SHAPE, generator=g) for g in gens]))
    # an image's noise does not depend on the batch it is in
    assert torch.equal(ImageNoise(NoiseSpec(seeds=(22,)), SHAPE, "cpu").next()[0], first[1])


def test_cpu_source_equals_gpu_source_on_a_cpu_device() -> None:
    a = ImageNoise(NoiseSpec(seeds=(5,), source="CPU"), SHAPE, "cpu")
    b = ImageNoise(NoiseSpec(seeds=(5,), source="GPU"), SHAPE, "cpu")
    assert torch.equal(a.next(), b.next()) and torch.equal(a.next(), b.next())


def test_nv_source_draws_philox_per_image() -> None:
    noise = ImageNoise(NoiseSpec(seeds=(3,), source="NV"), SHAPE, "cpu")
    gen = PhiloxGenerator(3)
    assert torch.equal(noise.next()[0], torch.from_numpy(gen.randn(SHAPE)))
    assert torch.equal(noise.next()[0], torch.from_numpy(gen.randn(SHAPE)))


def test_eta_noise_seed_delta_reseeds_the_continuation_only() -> None:
    noise = ImageNoise(NoiseSpec(seeds=(100,), eta_noise_seed_delta=31337), SHAPE, "cpu")
    assert torch.equal(noise.next()[0], torch.randn(SHAPE, generator=torch.Generator().manual_seed(100)))
    continuation = torch.Generator().manual_seed(100 + 31337)
    assert torch.equal(noise.next()[0], torch.randn(SHAPE, generator=continuation))
    assert torch.equal(noise.next()[0], torch.randn(SHAPE, generator=continuation))


def _a1111_slerp(val, low, high):
    """rng.slerp, literally (norms along dim 1 of a (C, H, W) noise)."""
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


def test_variation_seed_is_a1111s_slerp() -> None:
    spec = NoiseSpec(seeds=(7, 8), subseeds=(99,), subseed_strength=0.3)
    got = ImageNoise(spec, SHAPE, "cpu").next()

    def fresh(seed):
        return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(got[0], _a1111_slerp(0.3, fresh(7), fresh(99)))
    assert torch.equal(got[1], _a1111_slerp(0.3, fresh(8), fresh(0)))  # a missing subseed counts as 0
    assert torch.equal(slerp(0.0, fresh(7), fresh(99)), fresh(7))
    assert torch.allclose(slerp(1.0, fresh(7), fresh(99)), fresh(99), atol=1e-6)


@pytest.mark.parametrize("resize_from", [(32, 48), (128, 96), (48, 128)])
def test_seed_resize_pastes_the_other_sizes_noise_centred(resize_from) -> None:
    width, height = resize_from
    shape = (4, 10, 12)  # 96 x 80 px
    got = ImageNoise(NoiseSpec(seeds=(42,), seed_resize_from=(width, height)), shape, "cpu").next()[0]
    small = torch.randn((4, height // 8, width // 8), generator=torch.Generator().manual_seed(42))
    expected = torch.randn(shape, generator=torch.Generator().manual_seed(42))
    dx, dy = (shape[2] - small.shape[2]) // 2, (shape[1] - small.shape[1]) // 2
    w = small.shape[2] if dx >= 0 else small.shape[2] + 2 * dx
    h = small.shape[1] if dy >= 0 else small.shape[1] + 2 * dy
    tx, ty, sx, sy = max(dx, 0), max(dy, 0), max(-dx, 0), max(-dy, 0)
    expected[:, ty : ty + h, tx : tx + w] = small[:, sy : sy + h, sx : sx + w]
    assert torch.equal(got, expected)


def test_bad_noise_specs_say_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="GPU, CPU, NV"):
        NoiseSpec(seeds=(1,), source="TPU")
    with pytest.raises(ValueError, match="at least one seed"):
        NoiseSpec(seeds=())


@pytest.fixture(scope="module")
def kd():
    loaded = load_k_diffusion()
    if loaded is None:
        pytest.skip(KDIFF_MISSING)
    return loaded


def _queries(sigmas: torch.Tensor):
    for i in range(len(sigmas) - 2):
        yield sigmas[i], sigmas[i + 1]
        mid = (sigmas[i] * sigmas[i + 1]).sqrt()
        yield sigmas[i], mid


def test_brownian_tree_equals_k_diffusions_seeded_as_a1111_seeds_it(kd) -> None:
    sampling, _ = kd
    x = torch.zeros((2, *SHAPE))
    sigmas = torch.tensor([14.6, 8.0, 3.0, 1.0, 0.2, 0.03, 0.0])
    ours = BrownianTreeNoise(
        x, sigmas, [1234, 99], lambda s, shape: randn_local(s, shape, "GPU", torch.device("cpu"))
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
        reference = sampling.BrownianTreeNoiseSampler(
            x, sigmas[sigmas > 0].min(), sigmas.max(), seed=[1234, 99]
        )
        for a, b in _queries(sigmas):
            assert torch.equal(ours(a, b), reference(a, b))


def test_brownian_tree_with_the_nv_source_draws_philox(kd, monkeypatch) -> None:
    """A1111 routes torchsde's normal draws through randn_local; with NV that is Philox."""
    import torchsde._brownian.brownian_interval as bi

    sampling, _ = kd
    x = torch.zeros((1, *SHAPE))
    sigmas = torch.tensor([14.6, 3.0, 0.5, 0.03, 0.0])
    ours = BrownianTreeNoise(
        x, sigmas, [77], lambda s, shape: randn_local(s, shape, "NV", torch.device("cpu"))
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Should have t", category=UserWarning)
        got = [ours(a, b) for a, b in _queries(sigmas)]
        assert bi._randn.__module__ == "torchsde._brownian.brownian_interval"  # restored after use
        monkeypatch.setattr(
            bi,
            "_randn",
            lambda size, dtype, device, seed: torch.from_numpy(PhiloxGenerator(int(seed)).randn(size)),
        )
        reference = sampling.BrownianTreeNoiseSampler(x, sigmas[sigmas > 0].min(), sigmas.max(), seed=[77])
        expected = [reference(a, b) for a, b in _queries(sigmas)]
    assert all(torch.equal(a, b) for a, b in zip(got, expected, strict=True))


def test_the_tree_patches_torchsde_only_where_its_own_draw_is_not_the_sources() -> None:
    assert ImageNoise(NoiseSpec(seeds=(1,), source="GPU"), SHAPE, "cpu").tree_randn is None
    assert ImageNoise(NoiseSpec(seeds=(1,), source="CPU"), SHAPE, "cpu").tree_randn is None
    assert ImageNoise(NoiseSpec(seeds=(1,), source="NV"), SHAPE, "cpu").tree_randn is not None


def test_a_one_step_schedule_builds_no_empty_tree() -> None:
    x = torch.zeros((1, *SHAPE))
    tree = BrownianTreeNoise(x, torch.tensor([14.6, 0.0]), [1], lambda s, shape: torch.zeros(shape))
    assert tree._trees is None  # built on first use only; a 1-step SDE run never queries it


@pytest.mark.gpu
def test_nv_and_gpu_sources_give_cudas_noise_on_cuda() -> None:
    device = torch.device("cuda")
    for seed in (0, 1234, 2**32 + 5):
        cuda = torch.randn(SHAPE, device=device, generator=torch.Generator(device).manual_seed(seed)).cpu()
        gpu = ImageNoise(NoiseSpec(seeds=(seed,), source="GPU"), SHAPE, device).next()[0].cpu()
        nv = ImageNoise(NoiseSpec(seeds=(seed,), source="NV"), SHAPE, "cpu").next()[0]
        assert torch.equal(gpu, cuda)
        # A1111's documented property: NV on the CPU is CUDA's first draw (up to float32 rounding)
        assert (nv - cuda).abs().max() < 1e-5
