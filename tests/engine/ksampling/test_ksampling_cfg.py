"""The CFG denoiser and the sampling pass around it: A1111's conditioning lookup per denoiser step,
``AND`` weights, cond/uncond batching rules, inpaint blending, the refiner switch inside the run,
cancellation, progress reports, inpainting (9-channel) models and v-prediction."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from ks_harness import CFG_SCALE, SIZE, demo_inputs
from ks_reference import (
    KDIFF_MISSING,
    LdmLikeModel,
    ReferenceCFG,
    ReferenceImageRNG,
    TorchHijack,
    load_k_diffusion,
)

from stablenew_qt.engine.conds import BatchCond, PromptCond, ScheduledCond, TextCond
from stablenew_qt.engine.ksampling import (
    DenoiserModel,
    ImageNoise,
    NoiseSpec,
    RefinerSwitch,
    SamplingConds,
    StepReport,
    UNetBatch,
    sample,
)
from stablenew_qt.engine.ksampling.cfg import (
    CFGDenoiser,
    InpaintBlend,
    ModelStage,
    PendingRefiner,
    scheduled_at,
)

LATENT = (4, SIZE // 8, SIZE // 8)


def _text(value: float, tokens: int = 77, dim: int = 8) -> TextCond:
    return TextCond(torch.full((tokens, dim), value) + torch.linspace(0, 1, tokens)[:, None])


def _single(cond: TextCond) -> ScheduledCond:
    return ScheduledCond(((10_000, cond),))


class RecordingInner:
    """A stand-in model wrapper: output = x * (1 + mean of each row's crossattn); records calls."""

    kind = "sigma"

    def __init__(self) -> None:
        self.calls: list[UNetBatch] = []
        self.sigmas = torch.linspace(0.03, 14.6, 1000)

    def nearest_timestep(self, sigma: torch.Tensor) -> int:
        return int(torch.argmin(torch.abs(self.sigmas - torch.max(sigma))))

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, batch: UNetBatch) -> torch.Tensor:
        self.calls.append(batch)
        return x * (1 + batch.crossattn.mean(dim=(1, 2)))[:, None, None, None]


def test_scheduled_conds_follow_a1111s_lookup() -> None:
    a, b = _text(1.0), _text(2.0)
    schedule = ScheduledCond(((2, a), (5, b)))
    assert [scheduled_at(schedule, i) is a for i in range(7)] == [True, True, True, False, False, False, True]
    # past every end A1111 falls back to the *first* entry (reconstruct_cond_batch starts at index 0)
    assert scheduled_at(schedule, 6) is a


def test_and_parts_are_rows_combined_with_their_weights() -> None:
    c1, c2, u = _text(0.5), _text(-0.25), _text(0.1)
    batch = BatchCond(cond=(PromptCond(((_single(c1), 1.0), (_single(c2), 0.5))),), uncond=(_single(u),))
    inner = RecordingInner()
    cfg = CFGDenoiser(ModelStage(inner, SamplingConds(batch)), 7.0)
    x = torch.randn((1, *LATENT))
    out = cfg(x, torch.tensor([3.0]))
    assert len(inner.calls) == 1 and inner.calls[0].crossattn.shape[0] == 3  # one batched call
    f = [1 + c.crossattn.mean() for c in (c1, c2, u)]
    uncond = x[0] * f[2]
    expected = uncond.clone()
    expected += (x[0] * f[0] - uncond) * (1.0 * 7.0)
    expected += (x[0] * f[1] - uncond) * (0.5 * 7.0)
    assert torch.equal(out[0], expected)
    assert cfg.step == 1


def test_cond_and_uncond_of_different_lengths_are_separate_calls() -> None:
    # A1111 defaults: pad_cond_uncond off -> cond rows (chunks of 2 x batch), then the uncond rows
    long_cond, short_uncond = _text(0.5, tokens=154), _text(0.1)
    batch = BatchCond(cond=(PromptCond(((_single(long_cond), 1.0),)),), uncond=(_single(short_uncond),))
    inner = RecordingInner()
    out = CFGDenoiser(ModelStage(inner, SamplingConds(batch)), 5.0)(
        x := torch.randn((1, *LATENT)), torch.tensor([2.0])
    )
    assert [c.crossattn.shape[1] for c in inner.calls] == [154, 77]
    u = x[0] * (1 + short_uncond.crossattn.mean())
    assert torch.equal(out[0], u + (x[0] * (1 + long_cond.crossattn.mean()) - u) * (1.0 * 5.0))


def test_parts_of_different_lengths_are_padded_by_repeating_the_last_vector() -> None:
    c1, c2, u = _text(0.5, tokens=154), _text(-0.25), _text(0.1, tokens=154)
    batch = BatchCond(cond=(PromptCond(((_single(c1), 1.0), (_single(c2), 1.0))),), uncond=(_single(u),))
    inner = RecordingInner()
    CFGDenoiser(ModelStage(inner, SamplingConds(batch)), 7.0)(torch.randn((1, *LATENT)), torch.tensor([1.0]))
    rows = inner.calls[0].crossattn
    assert rows.shape == (3, 154, 8)
    assert torch.equal(rows[1, 77:], c2.crossattn[-1:].repeat(77, 1))


@pytest.mark.parametrize("timestep_mode", [False, True])
def test_inpaint_blend_is_on_the_result_for_k_samplers_and_on_the_input_for_ddim(timestep_mode: bool) -> None:
    u = _text(0.0)
    batch = BatchCond(cond=(PromptCond(((_single(_text(0.3)), 1.0),)),), uncond=(_single(u),))
    inner = RecordingInner()
    inner.kind = "timestep" if timestep_mode else "sigma"
    init = torch.randn((1, *LATENT))
    latmask = (torch.rand(LATENT[1:]) > 0.5).float()
    blend = InpaintBlend(init, 1.0 - latmask, latmask)
    x = torch.randn((1, *LATENT))
    out = CFGDenoiser(ModelStage(inner, SamplingConds(batch)), 7.0, inpaint=blend)(x, torch.tensor([1.0]))
    plain = CFGDenoiser(ModelStage(inner, SamplingConds(batch)), 7.0)
    if timestep_mode:
        assert torch.equal(out, plain(x * latmask + init * (1 - latmask), torch.tensor([1.0])))
    else:
        assert torch.equal(out, plain(x, torch.tensor([1.0])) * latmask + init * (1 - latmask))


@pytest.mark.parametrize(("switch_at", "expected_timestep"), [(0.8, 199), (0.7, 299), (0.25, 749)])
def test_refiner_switches_at_a1111s_timestep_ratio(switch_at: float, expected_timestep: int) -> None:
    base, refiner = RecordingInner(), RecordingInner()
    batch = BatchCond(cond=(PromptCond(((_single(_text(0.3)), 1.0),)),), uncond=(_single(_text(0.0)),))
    pending = PendingRefiner(ModelStage(refiner, SamplingConds(batch)), switch_at)
    cfg = CFGDenoiser(ModelStage(base, SamplingConds(batch)), 7.0, refiner=pending)
    x = torch.randn((1, *LATENT))
    for t in range(999, -1, -50):
        sigma = base.sigmas[t].reshape(1)
        cfg(x, sigma)
        if refiner.calls:
            break
    # (999 - t) / 1000 is computed in float32, as A1111 does: t = 299 reaches 0.7
    switched_t = base.nearest_timestep(sigma)
    assert switched_t <= expected_timestep and switched_t > expected_timestep - 50
    assert cfg.switched_at_step == len(base.calls)


@pytest.fixture(scope="module")
def demo_dir(demo_models) -> str:
    if load_k_diffusion() is None:
        pytest.skip(KDIFF_MISSING)
    return str(next(iter(demo_models.values())).parent)


def _counting(unet: Any) -> list[int]:
    counter = [0]
    unet.register_forward_pre_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    return counter


def _refiner_inputs(demo_dir: str) -> tuple[Any, dict, dict, BatchCond]:
    import diffusers

    pipe = diffusers.StableDiffusionXLImg2ImgPipeline.from_pretrained(f"{demo_dir}/demo-tiny-sdxl-refiner")
    with torch.no_grad():
        pe, ne, pp, npool = pipe.encode_prompt(
            "a lighthouse at dusk, oil painting", negative_prompt="blurry, grey", device="cpu"
        )
    ids = torch.tensor([[SIZE, SIZE, 0, 0, 6.0]]), torch.tensor([[SIZE, SIZE, 0, 0, 2.5]])
    cond = {"c_crossattn": pe, "text_embeds": pp, "time_ids": ids[0]}
    uncond = {"c_crossattn": ne, "text_embeds": npool, "time_ids": ids[1]}
    batch = BatchCond(
        cond=(PromptCond(((_single(TextCond(pe[0], pp[0])), 1.0),)),),
        uncond=(_single(TextCond(ne[0], npool[0])),),
    )
    return pipe, cond, uncond, batch


class RefinerReferenceCFG(ReferenceCFG):
    """A1111 apply_refiner inside CFGDenoiser.forward, literally."""

    def __init__(self, *args: Any, refiner: tuple[Any, dict, dict], switch_at: float) -> None:
        super().__init__(*args)
        self.refiner, self.switch_at, self.switched = refiner, switch_at, False

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **kw: Any) -> torch.Tensor:
        if not self.switched:
            timestep = torch.argmin(torch.abs(self.inner.sigmas - torch.max(sigma)))
            if not (999 - timestep) / 1000 < self.switch_at:
                self.inner, self.cond, self.uncond = self.refiner
                self.switched = True
        return super().__call__(x, sigma, **kw)


@pytest.mark.parametrize("sampler", ["Euler", "Heun"])
def test_sdxl_refiner_continues_the_same_run_like_a1111(demo_dir: str, sampler: str) -> None:
    kd, external = load_k_diffusion()
    base = demo_inputs(demo_dir, "sdxl")
    refiner_pipe, rcond, runcond, rbatch = _refiner_inputs(demo_dir)
    base_calls, refiner_calls = _counting(base.unet), _counting(refiner_pipe.unet)
    noise = ImageNoise(NoiseSpec(seeds=(4321,)), LATENT, "cpu")
    switch = RefinerSwitch(
        DenoiserModel.from_pipeline(refiner_pipe),
        SamplingConds(rbatch, torch.tensor([SIZE, SIZE, 0, 0, 6.0]), torch.tensor([SIZE, SIZE, 0, 0, 2.5])),
        switch_at=0.8,
    )
    with torch.no_grad():
        ours = sample(
            DenoiserModel(base.unet, base.pipe.scheduler.config),
            sampler,
            "Karras",
            10,
            SamplingConds(base.batch, base.time_ids, base.time_ids),
            noise,
            cfg_scale=CFG_SCALE,
            refiner=switch,
        )
    ours_calls = (base_calls[0], refiner_calls[0])
    assert ours_calls[0] > 0 and ours_calls[1] > 0
    rng = ReferenceImageRNG(LATENT, [4321])
    kd.torch = TorchHijack(rng)
    base_wrap = external.CompVisDenoiser(LdmLikeModel(base.unet))
    refiner_wrap = external.CompVisDenoiser(LdmLikeModel(refiner_pipe.unet))
    cfg = RefinerReferenceCFG(
        base_wrap,
        base.cond_ref,
        base.uncond_ref,
        CFG_SCALE,
        refiner=(refiner_wrap, rcond, runcond),
        switch_at=0.8,
    )
    sigmas = kd.get_sigmas_karras(10, base_wrap.sigmas[0].item(), base_wrap.sigmas[-1].item())
    with torch.no_grad():
        ref = getattr(kd, f"sample_{sampler.lower()}")(cfg, rng.next() * sigmas[0], sigmas, disable=True)
    assert (base_calls[0] - ours_calls[0], refiner_calls[0] - ours_calls[1]) == ours_calls
    assert torch.equal(ours, ref)


def test_cancel_is_checked_before_every_model_call_and_stops_the_run(demo_dir: str) -> None:
    inputs = demo_inputs(demo_dir, "sd15")
    calls = _counting(inputs.unet)
    checks: list[int] = []

    def cancel() -> None:
        checks.append(calls[0])
        if len(checks) == 4:
            raise KeyboardInterrupt("cancelled")

    noise = ImageNoise(NoiseSpec(seeds=(1,)), LATENT, "cpu")
    with pytest.raises(KeyboardInterrupt), torch.no_grad():
        sample(
            DenoiserModel.from_pipeline(inputs.pipe),
            "Heun",
            "Karras",
            10,
            SamplingConds(inputs.batch),
            noise,
            cfg_scale=7.0,
            cancel=cancel,
        )
    start = checks[0]
    assert [c - start for c in checks] == [0, 1, 2, 3]  # one check per (batched) UNet call, none after


def test_progress_reports_every_step_with_the_x0_estimate(demo_dir: str) -> None:
    inputs = demo_inputs(demo_dir, "sd15")
    reports: list[StepReport] = []
    with torch.no_grad():
        out = sample(
            DenoiserModel.from_pipeline(inputs.pipe),
            "DPM++ 2M",
            "Automatic",
            6,
            SamplingConds(inputs.batch),
            ImageNoise(NoiseSpec(seeds=(1,)), LATENT, "cpu"),
            cfg_scale=7.0,
            callback=reports.append,
        )
    assert [(r.step, r.total) for r in reports] == [(i, 6) for i in range(6)]
    assert reports[-1].denoised.shape == out.shape
    # DPM++ 2M's last step to sigma 0 returns the last x0 estimate itself
    assert torch.equal(out, reports[-1].denoised)


def _inpaint_model(demo_dir: str) -> Any:
    import diffusers

    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(f"{demo_dir}/demo-tiny-sd15-inpaint")
    return pipe


@pytest.mark.parametrize("sampler", ["DPM++ 2M", "DDIM"])
def test_inpainting_model_gets_mask_and_masked_image_and_blends_like_a1111(
    demo_dir: str, sampler: str
) -> None:
    kd, external = load_k_diffusion()
    pipe = _inpaint_model(demo_dir)
    inputs = demo_inputs(demo_dir, "sd15")
    init = torch.randn((1, *LATENT)) * 0.8
    latmask = torch.zeros(LATENT[1:])
    latmask[2:6, 1:5] = 1.0
    image_cond = torch.cat([latmask[None, None], init * 0.5], dim=1)
    noise = ImageNoise(NoiseSpec(seeds=(77,)), LATENT, "cpu")
    with torch.no_grad():
        ours = sample(
            DenoiserModel.from_pipeline(pipe),
            sampler,
            "Karras",
            10,
            SamplingConds(inputs.batch),
            noise,
            cfg_scale=CFG_SCALE,
            init_latents=init,
            denoise=0.75,
            mask=latmask,
            image_conditioning=image_cond,
        )
    # reference: A1111's img2img with p.mask / p.nmask and c_concat, then the final paste-back
    rng = ReferenceImageRNG(LATENT, [77])
    kd.torch = TorchHijack(rng)
    model = LdmLikeModel(pipe.unet)
    cond = {**inputs.cond_ref, "c_concat": image_cond}
    uncond = {**inputs.uncond_ref, "c_concat": image_cond}
    with torch.no_grad():
        if sampler == "DDIM":
            from ks_reference import TimestepsWrapper, ddim, ddpm_timesteps

            cfg = ReferenceCFG(TimestepsWrapper(model), cond, uncond, CFG_SCALE, eps_mode=True)
            full = ddpm_timesteps(10)
            t_enc = int(0.75 * 10)
            a = model.alphas_cumprod[full[t_enc]]
            x = init * torch.sqrt(a) + rng.next() * torch.sqrt(1 - a)
            cfg.mask, cfg.nmask, cfg.init_latent = 1.0 - latmask, latmask, init
            ref = ddim(cfg, model.alphas_cumprod, x, full[:t_enc], randn=kd.torch.randn_like)
        else:
            wrap = external.CompVisDenoiser(model)
            cfg = ReferenceCFG(wrap, cond, uncond, CFG_SCALE)
            cfg.mask, cfg.nmask, cfg.init_latent = 1.0 - latmask, latmask, init
            sigmas = kd.get_sigmas_karras(10, wrap.sigmas[0].item(), wrap.sigmas[-1].item())
            tail = sigmas[10 - int(0.75 * 10) - 1 :]
            ref = kd.sample_dpmpp_2m(cfg, init + rng.next() * tail[0], tail, disable=True)
    ref = ref * latmask + init * (1.0 - latmask)
    assert torch.equal(ours, ref)
    assert torch.equal(ours[..., latmask == 0], init[..., latmask == 0])


def test_an_inpainting_model_without_image_conditioning_says_what_to_pass(demo_dir: str) -> None:
    inputs = demo_inputs(demo_dir, "sd15")
    with pytest.raises(ValueError, match="image_conditioning"), torch.no_grad():
        sample(
            DenoiserModel.from_pipeline(_inpaint_model(demo_dir)),
            "Euler",
            "Automatic",
            2,
            SamplingConds(inputs.batch),
            ImageNoise(NoiseSpec(seeds=(1,)), LATENT, "cpu"),
            cfg_scale=7.0,
        )


def test_v_prediction_models_use_compvis_v_denoiser_scalings(demo_dir: str) -> None:
    kd, external = load_k_diffusion()
    inputs = demo_inputs(demo_dir, "sd15")
    config = {**inputs.pipe.scheduler.config, "prediction_type": "v_prediction"}
    with torch.no_grad():
        ours = sample(
            DenoiserModel(inputs.unet, config),
            "DPM++ 2M",
            "Karras",
            8,
            SamplingConds(inputs.batch),
            ImageNoise(NoiseSpec(seeds=(5,)), LATENT, "cpu"),
            cfg_scale=CFG_SCALE,
        )
        rng = ReferenceImageRNG(LATENT, [5])
        wrap = external.CompVisVDenoiser(LdmLikeModel(inputs.unet))
        cfg = ReferenceCFG(wrap, inputs.cond_ref, inputs.uncond_ref, CFG_SCALE)
        sigmas = kd.get_sigmas_karras(8, wrap.sigmas[0].item(), wrap.sigmas[-1].item())
        ref = kd.sample_dpmpp_2m(cfg, rng.next() * sigmas[0], sigmas, disable=True)
    assert torch.equal(ours, ref)


def test_unknown_names_list_the_valid_ones(demo_dir: str) -> None:
    inputs = demo_inputs(demo_dir, "sd15")
    model = DenoiserModel.from_pipeline(inputs.pipe)
    noise = ImageNoise(NoiseSpec(seeds=(1,)), LATENT, "cpu")
    with pytest.raises(ValueError, match="valid samplers: DPM\\+\\+ 2M"):
        sample(model, "DPM++ 2M Karras", "Automatic", 4, SamplingConds(inputs.batch), noise, cfg_scale=7.0)
    with pytest.raises(ValueError, match="valid: Automatic, Uniform"):
        sample(model, "Euler", "Fancy", 4, SamplingConds(inputs.batch), noise, cfg_scale=7.0)


def test_prompt_editing_counts_denoiser_calls_like_a1111(demo_dir: str) -> None:
    """[a:b:3] with Heun: A1111's step counter advances per model call, so the switch comes after
    the fourth call (steps 0-3 use a), i.e. in the middle of the second Heun step."""
    inputs = demo_inputs(demo_dir, "sd15")
    a = inputs.batch.cond[0].parts[0][0].entries[0][1]
    b = TextCond(a.crossattn.flip(0))
    edited = BatchCond(
        cond=(PromptCond(((ScheduledCond(((3, a), (100, b))), 1.0),)),), uncond=inputs.batch.uncond
    )
    seen: list[bool] = []

    def hook(module: Any, args: Any, kwargs: Any) -> None:
        seen.append(torch.equal(kwargs["encoder_hidden_states"][0], a.crossattn))

    handle = inputs.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        sample(
            DenoiserModel.from_pipeline(inputs.pipe),
            "Heun",
            "Karras",
            4,
            SamplingConds(edited),
            ImageNoise(NoiseSpec(seeds=(1,)), LATENT, "cpu"),
            cfg_scale=7.0,
        )
    finally:
        handle.remove()
    assert seen == [True, True, True, True, False, False, False]  # Heun: 2 + 2 + 2 + 1 calls


def test_noise_multiplier_scales_the_img2img_noise_only(demo_dir: str) -> None:
    kd, external = load_k_diffusion()
    inputs = demo_inputs(demo_dir, "sd15")
    init = torch.randn((1, *LATENT))
    ours = sample(
        DenoiserModel.from_pipeline(inputs.pipe),
        "Euler a",
        "Automatic",
        10,
        SamplingConds(inputs.batch),
        ImageNoise(NoiseSpec(seeds=(9,)), LATENT, "cpu"),
        cfg_scale=CFG_SCALE,
        init_latents=init,
        denoise=0.5,
        noise_multiplier=1.1,
    )
    rng = ReferenceImageRNG(LATENT, [9])
    kd.torch = TorchHijack(rng)
    wrap = external.CompVisDenoiser(LdmLikeModel(inputs.unet))
    cfg = ReferenceCFG(wrap, inputs.cond_ref, inputs.uncond_ref, CFG_SCALE)
    sigmas = wrap.get_sigmas(10)[10 - 5 - 1 :]
    with torch.no_grad():
        x = rng.next()
        x *= 1.1
        ref = kd.sample_euler_ancestral(cfg, init + x * sigmas[0], sigmas, disable=True)
    assert torch.equal(ours, ref)


def test_always_discard_next_to_last_sigma_option_shortens_the_tail(demo_dir: str) -> None:
    from stablenew_qt.engine.ksampling import SamplerOptions

    inputs = demo_inputs(demo_dir, "sd15")
    reports: list[StepReport] = []

    def run(options: SamplerOptions) -> torch.Tensor:
        reports.clear()
        return sample(
            DenoiserModel.from_pipeline(inputs.pipe),
            "Euler",
            "Karras",
            6,
            SamplingConds(inputs.batch),
            ImageNoise(NoiseSpec(seeds=(2,)), LATENT, "cpu"),
            cfg_scale=7.0,
            options=options,
            callback=reports.append,
        )

    plain = run(SamplerOptions())
    discarded = run(SamplerOptions(always_discard_next_to_last_sigma=True))
    assert len(reports) == 6 and not torch.equal(plain, discarded)
