"""Tiny text encoders over the real CLIP vocabulary, with non-trivial final LayerNorms.

The demo models' final LayerNorm has weight 1 and bias 0, which makes a chunk's mean exactly 0
and Original emphasis divide 0 by 0; these fixtures randomize every LayerNorm so means are not 0.
Four layers, so clip skip 1-4 (and the embedding output, 5) all exist.
"""

from __future__ import annotations

from typing import Any

import pytest

from stablenew_qt.core.clip_tokens import default_tokenizer_dir

WIDTH = 32
LAYERS = 4


def _tokenizer(pad_token: str) -> Any:
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(
        str(default_tokenizer_dir()), pad_token=pad_token, model_max_length=77
    )


def _encoder(seed: int, *, projection: bool) -> Any:
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=WIDTH,
        intermediate_size=37,
        projection_dim=WIDTH,
        num_attention_heads=4,
        num_hidden_layers=LAYERS,
        max_position_embeddings=77,
        hidden_act="gelu" if projection else "quick_gelu",
        bos_token_id=0,  # the published SD configs say 0/2 (argmax pooling); kept here
        eos_token_id=2,
        pad_token_id=1,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(config).eval()
        for module in model.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.weight.data = 1.0 + 0.5 * torch.randn_like(module.weight)
                module.bias.data = 0.3 + 0.2 * torch.randn_like(module.bias)
    return model


def _unet(cross_attention_dim: int, sdxl_time_ids: int = 0) -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    extra: dict[str, Any] = {}
    if sdxl_time_ids:
        extra = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": 8,
            "projection_class_embeddings_input_dim": sdxl_time_ids * 8 + WIDTH,
            "use_linear_projection": True,
        }
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=4,
            norm_num_groups=2,
            **extra,
        ).eval()


def _vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8,), norm_num_groups=2, latent_channels=4, layers_per_block=1, sample_size=8
    ).eval()


@pytest.fixture(scope="session")
def sd15_pipe() -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=_vae(),
        text_encoder=_encoder(1, projection=False),
        tokenizer=_tokenizer("<|endoftext|>"),
        unet=_unet(WIDTH),
        scheduler=EulerDiscreteScheduler(steps_offset=1),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def sdxl_pipe() -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(
        vae=_vae(),
        text_encoder=_encoder(1, projection=False),
        text_encoder_2=_encoder(2, projection=True),
        tokenizer=_tokenizer("<|endoftext|>"),
        tokenizer_2=_tokenizer("!"),
        unet=_unet(2 * WIDTH, sdxl_time_ids=6),
        scheduler=EulerDiscreteScheduler(steps_offset=1),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def refiner_pipe(sdxl_pipe: Any) -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=sdxl_pipe.vae,
        text_encoder=None,
        text_encoder_2=sdxl_pipe.text_encoder_2,
        tokenizer=None,
        tokenizer_2=sdxl_pipe.tokenizer_2,
        unet=_unet(WIDTH, sdxl_time_ids=5),
        scheduler=EulerDiscreteScheduler(steps_offset=1),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        add_watermarker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe
