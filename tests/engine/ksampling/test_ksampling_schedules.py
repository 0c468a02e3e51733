"""Sigma grids, timestep grids and the model's noise table, compared bit for bit with A1111's
(k-diffusion's ``get_sigmas_*`` and ``CompVisDenoiser`` themselves, and a literal copy of A1111's
``sd_schedulers.py`` rules in ``ks_reference``). No UNet runs here: these tests are cheap."""

from __future__ import annotations

import pytest
import torch
from ks_reference import KDIFF_MISSING, a1111_get_sigmas, ddpm_timesteps, ldm_alphas_cumprod, load_k_diffusion

from stablenew_qt.engine.ksampling import alphas_cumprod_from_config
from stablenew_qt.engine.ksampling.denoisers import KarrasDenoiser, LCMDenoiser
from stablenew_qt.engine.ksampling.loop import resolve_schedule
from stablenew_qt.engine.ksampling.registry import SAMPLERS
from stablenew_qt.engine.ksampling.schedules import (
    SCHEDULE_TYPES,
    build_sigmas,
    img2img_sigmas,
    img2img_steps,
)
from stablenew_qt.engine.ksampling.schedules import ddpm_timesteps as our_ddpm_timesteps

SD_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
}
SCHEDULES = ("Automatic", *SCHEDULE_TYPES)
STEP_COUNTS = (1, 2, 3, 7, 10, 11, 15, 20, 30, 50)


class _FakeModel:
    """Just what the denoiser wrappers read from a DenoiserModel (no UNet)."""

    def __init__(self) -> None:
        self.alphas_cumprod, _ = alphas_cumprod_from_config(SD_CONFIG)
        self.prediction_type = "epsilon"


@pytest.fixture(scope="module")
def kd():
    loaded = load_k_diffusion()
    if loaded is None:
        pytest.skip(KDIFF_MISSING)
    return loaded


def test_alphas_cumprod_are_ldms_float64_table_in_float32() -> None:
    ours, ours64 = alphas_cumprod_from_config(SD_CONFIG)
    assert ours.dtype == torch.float32
    assert torch.equal(ours, ldm_alphas_cumprod())
    # diffusers computes the same table in float32 and is off in the last bits (why we rebuild it)
    from diffusers import EulerDiscreteScheduler

    diffusers_table = EulerDiscreteScheduler(**SD_CONFIG).alphas_cumprod
    assert not torch.equal(diffusers_table, ours)
    assert ours64[-1] == pytest.approx(float(ours[-1]), rel=1e-6)


def test_unknown_beta_schedule_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="scaled_linear"):
        alphas_cumprod_from_config({**SD_CONFIG, "beta_schedule": "sigmoid"})


def test_denoiser_tables_equal_k_diffusions_compvis_denoiser(kd) -> None:
    _, external = kd
    reference = external.CompVisDenoiser(type("M", (), {"alphas_cumprod": ldm_alphas_cumprod()})())
    ours = KarrasDenoiser(_FakeModel())  # type: ignore[arg-type]
    assert torch.equal(ours.sigmas, reference.sigmas)
    assert torch.equal(ours.log_sigmas, reference.log_sigmas)
    sigma = torch.tensor([14.6, 3.3, 0.5, 0.0292, 0.031, 7.77])
    assert torch.equal(ours.sigma_to_t(sigma), reference.sigma_to_t(sigma))
    t = torch.tensor([999.0, 512.25, 0.5, 0.0, 17.9])
    assert torch.equal(ours.t_to_sigma(t), reference.t_to_sigma(t))
    for n in STEP_COUNTS:
        assert torch.equal(ours.get_sigmas(n), reference.get_sigmas(n))


def _reference_wrap(external):
    return external.CompVisDenoiser(type("M", (), {"alphas_cumprod": ldm_alphas_cumprod()})())


@pytest.mark.parametrize("is_sdxl", [False, True], ids=["sd15", "sdxl"])
@pytest.mark.parametrize("sampler", ["Euler", "DPM++ 2M", "DPM2", "DPM++ 3M SDE", "DPM++ 2M SDE"])
def test_every_schedule_grid_is_a1111s_bit_for_bit(kd, sampler: str, is_sdxl: bool) -> None:
    sampling, external = kd
    wrap = _reference_wrap(external)
    ours_wrap = KarrasDenoiser(_FakeModel())  # type: ignore[arg-type]
    spec = SAMPLERS[sampler]
    for schedule in SCHEDULES:
        label = resolve_schedule(spec, schedule)
        for steps in STEP_COUNTS:
            expected = a1111_get_sigmas(sampling, label, steps, wrap, spec.discard_penultimate, is_sdxl)
            got = build_sigmas(label, steps, ours_wrap, is_sdxl, spec.discard_penultimate)
            assert got.dtype == torch.float32
            assert torch.equal(got, expected), (sampler, schedule, steps, got, expected)


def test_schedule_facts_a1111_users_see() -> None:
    wrap = KarrasDenoiser(_FakeModel())  # type: ignore[arg-type]
    # Automatic: the sampler's default, or the model's own grid
    assert resolve_schedule(SAMPLERS["DPM++ 2M"], "Automatic") == "Karras"
    assert resolve_schedule(SAMPLERS["DPM++ 3M SDE"], "Automatic") == "Exponential"
    assert resolve_schedule(SAMPLERS["Euler a"], "Automatic") is None
    # DDIM schedule: one step more than asked at 15 and 30 steps (1000 // n does not divide 1000)
    assert len(build_sigmas("DDIM", 15, wrap, False, False)) == 17
    assert len(build_sigmas("DDIM", 20, wrap, False, False)) == 21
    assert len(build_sigmas("DDIM", 30, wrap, False, False)) == 32
    # KL Optimal ends at sigma_min, not 0
    assert float(build_sigmas("KL Optimal", 10, wrap, False, False)[-1]) == pytest.approx(wrap.sigma_min)
    # Align Your Steps: the published list itself at 11 steps, resampled otherwise
    ays = build_sigmas("Align Your Steps", 11, wrap, True, False)
    assert ays[1].item() == pytest.approx(6.315) and ays[-1] == 0
    # SGM Uniform drops the sigma_min point; Normal keeps it
    assert float(build_sigmas("Normal", 10, wrap, False, False)[-2]) == pytest.approx(wrap.sigma_min)
    assert float(build_sigmas("SGM Uniform", 10, wrap, False, False)[-2]) > wrap.sigma_min * 1.5
    # discard: DPM2's grid has the same length as Euler's but skips the next-to-last sigma
    full = build_sigmas("Karras", 11, wrap, False, False)
    dpm2 = build_sigmas("Karras", 10, wrap, False, True)
    assert torch.equal(dpm2, torch.cat([full[:-2], full[-1:]]))


def test_lcm_grid_is_a1111s(kd) -> None:
    _, external = kd
    from ks_reference import LdmLikeModel, ReferenceLCMDenoiser

    reference = ReferenceLCMDenoiser(external, LdmLikeModel(unet=None))
    ours = LCMDenoiser(_FakeModel())  # type: ignore[arg-type]
    assert torch.equal(ours.sigmas, reference.sigmas)
    for n in (1, 4, 8, 20):
        assert torch.equal(ours.get_sigmas(n), reference.get_sigmas(n))
    sigma = torch.tensor([14.6, 2.0, 0.3])
    assert torch.equal(ours.sigma_to_t(sigma), reference.sigma_to_t(sigma))


@pytest.mark.parametrize(("steps", "denoise", "fixed", "expected"), [
    (20, 0.75, False, (20, 15)),
    (20, 1.0, False, (20, 19)),
    (20, 0.7, True, (28, 19)),  # hires: 20 steps at 0.7 build 28 and run the last 20
    (10, 0.3, True, (33, 9)),
])  # fmt: skip
def test_img2img_steps_follow_setup_img2img_steps(steps, denoise, fixed, expected) -> None:
    schedule_steps, t_enc = img2img_steps(steps, denoise, fixed)
    assert (schedule_steps, t_enc) == expected
    wrap = KarrasDenoiser(_FakeModel())  # type: ignore[arg-type]
    sigmas = build_sigmas("Karras", schedule_steps, wrap, False, False)
    tail = img2img_sigmas(sigmas, schedule_steps, t_enc)
    assert len(tail) == t_enc + 2  # t_enc + 1 steps
    assert torch.equal(tail, sigmas[schedule_steps - t_enc - 1 :])


def test_img2img_without_strength_is_refused() -> None:
    with pytest.raises(ValueError, match="> 0"):
        img2img_steps(20, 0.0, False)


@pytest.mark.parametrize("steps", [1, 4, 15, 20, 30, 50, 100])
def test_ddpm_timesteps_are_a1111s(steps: int) -> None:
    assert torch.equal(our_ddpm_timesteps(steps), ddpm_timesteps(steps))
    assert int(our_ddpm_timesteps(steps)[0]) == 1
