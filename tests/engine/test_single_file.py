"""Single-file checkpoints load offline.

The shipped config folders materialise and parse with the right diffusers classes and the key
dimensions of the official repos; their CLIP tokenizers give CLIP's ids; a tiny SD 1.5 checkpoint
written in the original key layout loads (with the session's socket guard on, so any Hub access
would fail the test) and gives the same pixels as the diffusers pipeline it was written from.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch
from ldm_keys import write_sd15_checkpoint
from safetensors.torch import load_file, save_file

from stablenew_qt.engine.errors import ModelError
from stablenew_qt.engine.single_file import (
    CONFIGS_DIR,
    FAMILIES,
    TOKENIZER_DIR,
    config_folder,
    load_single_file,
)

CAT_PROMPT = "a photo of a cat"
CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's ids, as every SD tokenizer gives them

# family -> (pipeline class, UNet in_channels, cross_attention_dim, addition_embed_type, text encoders)
EXPECTED: dict[str, tuple[str, int, int, str | None, tuple[str, ...]]] = {
    "sd15": ("StableDiffusionPipeline", 4, 768, None, ("text_encoder",)),
    "sd15-inpaint": ("StableDiffusionInpaintPipeline", 9, 768, None, ("text_encoder",)),
    "sdxl": ("StableDiffusionXLPipeline", 4, 2048, "text_time", ("text_encoder", "text_encoder_2")),
    "sdxl-inpaint": (
        "StableDiffusionXLInpaintPipeline",
        9,
        2048,
        "text_time",
        ("text_encoder", "text_encoder_2"),
    ),
    "sdxl-refiner": ("StableDiffusionXLImg2ImgPipeline", 4, 1280, "text_time", ("text_encoder_2",)),
}
TOKENIZERS = [
    (family, f"tokenizer{suffix}")
    for family, (*_, encoders) in EXPECTED.items()
    for suffix in ("", "_2")
    if f"text_encoder{suffix}" in encoders
]


@pytest.fixture(scope="module")
def cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache directory for the module, so each family's folder is materialised once."""
    return tmp_path_factory.mktemp("cache-home")


@pytest.fixture(autouse=True)
def _user_cache_in_tmp(cache_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # platformdirs honours XDG_CACHE_HOME on Linux: never write to the real user cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_home))


def _read(folder: Path, relative: str) -> dict[str, Any]:
    data = json.loads((folder / relative).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# -- shipped config folders ----------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_materialises_a_folder_the_diffusers_classes_read(family: str, cache_home: Path) -> None:
    import diffusers
    from transformers import CLIPTextConfig

    pipeline_name, in_channels, cross_dim, addition, encoders = EXPECTED[family]
    folder = config_folder(family, cache_root=cache_home)

    index = _read(folder, "model_index.json")
    assert index["_class_name"] == pipeline_name
    assert getattr(diffusers, pipeline_name).load_config(folder)["_class_name"] == pipeline_name
    unet = diffusers.UNet2DConditionModel.load_config(folder, subfolder="unet")
    assert (unet["in_channels"], unet["cross_attention_dim"], unet.get("addition_embed_type")) == (
        in_channels,
        cross_dim,
        addition,
    )
    vae = diffusers.AutoencoderKL.load_config(folder, subfolder="vae")
    assert vae["latent_channels"] == 4 and len(vae["block_out_channels"]) == 4
    scheduler_class = getattr(diffusers, index["scheduler"][1])
    assert scheduler_class.from_pretrained(folder, subfolder="scheduler").config.num_train_timesteps == 1000
    present = {name for name in ("text_encoder", "text_encoder_2") if index.get(name, [None])[0] is not None}
    assert present == set(encoders)
    for name in encoders:
        config = CLIPTextConfig.from_pretrained(folder / name)
        assert (config.vocab_size, config.max_position_embeddings) == (49408, 77)
        assert (folder / name.replace("text_encoder", "tokenizer") / "vocab.json").is_file()


def test_key_dimensions_are_those_of_the_official_repos(cache_home: Path) -> None:
    sdxl = _read(config_folder("sdxl", cache_root=cache_home), "unet/config.json")
    assert sdxl["projection_class_embeddings_input_dim"] == 2816
    assert sdxl["transformer_layers_per_block"] == [1, 2, 10]
    refiner_folder = config_folder("sdxl-refiner", cache_root=cache_home)
    refiner = _read(refiner_folder, "unet/config.json")
    assert refiner["projection_class_embeddings_input_dim"] == 2560
    assert refiner["block_out_channels"] == [384, 768, 1536, 1536]
    assert _read(refiner_folder, "model_index.json")["requires_aesthetics_score"] is True
    bigg = _read(refiner_folder, "text_encoder_2/config.json")
    assert (bigg["hidden_size"], bigg["projection_dim"], bigg["num_hidden_layers"]) == (1280, 1280, 32)
    vae = {f: _read(config_folder(f, cache_root=cache_home), "vae/config.json") for f in FAMILIES}
    assert vae["sd15"]["scaling_factor"] == 0.18215
    assert vae["sdxl"]["scaling_factor"] == vae["sdxl-refiner"]["scaling_factor"] == 0.13025


@pytest.mark.parametrize(("family", "subfolder"), TOKENIZERS)
def test_tokenizers_give_clips_ids(family: str, subfolder: str, cache_home: Path) -> None:
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(config_folder(family, cache_root=cache_home) / subfolder)
    assert len(tokenizer) == 49408
    assert tokenizer(CAT_PROMPT).input_ids == CAT_IDS
    assert tokenizer.model_max_length == 77
    # SDXL's second tokenizer (OpenCLIP bigG) pads with "!" (id 0); the others with <|endoftext|>.
    expected_pad = ("!", 0) if subfolder == "tokenizer_2" else ("<|endoftext|>", 49407)
    assert (tokenizer.pad_token, tokenizer.pad_token_id) == expected_pad


def test_config_folder_is_made_once_in_the_user_cache(cache_home: Path) -> None:
    folder = config_folder("sd15")
    if sys.platform == "linux":
        assert folder.parent == cache_home / "StableNewQt" / "single-file-configs"
    family, _, version = folder.name.rpartition("-")
    assert family == "sd15" and len(version) == 12
    stamp = (folder / "tokenizer" / "vocab.json").stat().st_mtime_ns
    assert config_folder("sd15") == folder
    assert (folder / "tokenizer" / "vocab.json").stat().st_mtime_ns == stamp
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]


def test_an_unknown_family_is_a_model_error_listing_the_known_ones() -> None:
    with pytest.raises(ModelError, match="known families: sd15, sd15-inpaint, sdxl"):
        config_folder("sd3")


def _generator_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_clip_tokenizer", CONFIGS_DIR / "make_clip_tokenizer.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_tokenizer_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    # Rebuild the gzipped merge list (header, merges, then extra lines CLIP does not use).
    merges = (TOKENIZER_DIR / "merges.txt").read_text(encoding="utf-8").splitlines()[1:]
    source = tmp_path / "bpe_simple_vocab_16e6.txt.gz"
    source.write_bytes(gzip.compress("\n".join(["header", *merges, "un used", "x y"]).encode()))
    _generator_module().write_tokenizer_files(source, tmp_path / "out")
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "out" / name).read_bytes() == (TOKENIZER_DIR / name).read_bytes()
    vocab = json.loads((TOKENIZER_DIR / "vocab.json").read_text(encoding="utf-8"))
    assert len(merges) == 48894 and len(vocab) == 49408
    assert vocab["<|startoftext|>"] == 49406 and vocab["<|endoftext|>"] == 49407 and vocab["!"] == 0


# -- loading a tiny checkpoint --------------------------------------------------------------------


@dataclass(frozen=True)
class TinyCheckpoint:
    """A tiny SD 1.5 pipeline, a config folder made from its own configs, and its single file."""

    pipe: Any
    config_dir: Path
    path: Path


def _tiny_sd15_pipeline(tokenizer_dir: Path, scheduler_dir: Path) -> Any:
    diffusers: Any = importlib.import_module("diffusers")  # untyped library: treat as Any
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(8, 16),
        layers_per_block=1,
        sample_size=8,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=2,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=(8, 8, 8, 8),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=2,
        layers_per_block=1,
        sample_size=64,
    )
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            projection_dim=32,
            vocab_size=49408,
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
        )
    )
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(tokenizer_dir),
        scheduler=diffusers.PNDMScheduler.from_pretrained(scheduler_dir),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _save_configs(pipe: Any, folder: Path) -> Path:
    """Only configs and tokenizer files, no weights: what ``config=`` needs."""
    pipe.save_config(folder)
    for name in ("unet", "vae", "scheduler"):
        getattr(pipe, name).save_config(folder / name)
    pipe.text_encoder.config.save_pretrained(folder / "text_encoder")
    pipe.tokenizer.save_pretrained(folder / "tokenizer")
    return folder


@pytest.fixture(scope="module")
def tiny(cache_home: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyCheckpoint:
    shipped = config_folder("sd15", cache_root=cache_home)
    pipe = _tiny_sd15_pipeline(shipped / "tokenizer", shipped / "scheduler")
    root = tmp_path_factory.mktemp("tiny-sd15")
    config_dir = _save_configs(pipe, root / "config")
    assert not list(config_dir.rglob("*.safetensors"))
    return TinyCheckpoint(pipe, config_dir, write_sd15_checkpoint(pipe, root / "tiny-sd15.safetensors"))


def _generate(pipe: Any) -> np.ndarray:
    generator = torch.Generator().manual_seed(1234)
    result = pipe(
        CAT_PROMPT, num_inference_steps=2, height=32, width=32, generator=generator, output_type="np"
    )
    return np.asarray(result.images)


def test_the_checkpoint_uses_the_original_key_layout(tiny: TinyCheckpoint) -> None:
    prefixes = {key.split(".")[0] for key in load_file(str(tiny.path))}
    assert {"model", "first_stage_model", "cond_stage_model"} <= prefixes
    assert not prefixes & {"unet", "vae", "text_encoder"}


def test_a_single_file_checkpoint_gives_the_pixels_of_its_diffusers_pipeline(tiny: TinyCheckpoint) -> None:
    from diffusers import StableDiffusionPipeline

    loaded: Any = load_single_file(
        tiny.path, "sd15", StableDiffusionPipeline, torch.float32, config_dir=tiny.config_dir
    )
    loaded.set_progress_bar_config(disable=True)
    for name in ("unet", "vae", "text_encoder"):
        want, got = getattr(tiny.pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert want.keys() == got.keys(), name
        assert all(torch.equal(want[key], got[key]) for key in want), name
    assert loaded.tokenizer(CAT_PROMPT).input_ids == CAT_IDS
    assert np.array_equal(_generate(loaded), _generate(tiny.pipe))


def test_a_checkpoint_that_does_not_fit_the_family_is_a_model_error(tiny: TinyCheckpoint) -> None:
    from diffusers import StableDiffusionPipeline

    # The shipped SD 1.5 configs have the real sizes; the tiny tensors cannot fill them.
    with pytest.raises(ModelError, match=r"does not load as SD 1\.5: tensor .* has shape \[77, 32\] where"):
        load_single_file(tiny.path, "sd15", StableDiffusionPipeline, torch.float32)


def _without(tiny: TinyCheckpoint, tmp_path: Path, drop: str) -> Path:
    tensors = {key: value for key, value in load_file(str(tiny.path)).items() if drop not in key}
    path = tmp_path / "partial.safetensors"
    save_file(tensors, str(path))
    return path


def test_a_checkpoint_without_a_vae_is_a_model_error(tiny: TinyCheckpoint, tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    path = _without(tiny, tmp_path, "first_stage_model.")
    with pytest.raises(
        ModelError, match=r"partial\.safetensors does not load as SD 1\.5: it has no AutoencoderKL"
    ):
        load_single_file(path, "sd15", StableDiffusionPipeline, torch.float32, config_dir=tiny.config_dir)


@pytest.mark.parametrize("dtype", [None, torch.float32])
def test_a_checkpoint_missing_unet_weights_is_a_model_error(
    tiny: TinyCheckpoint, tmp_path: Path, dtype: torch.dtype | None
) -> None:
    from diffusers import StableDiffusionPipeline

    path = _without(tiny, tmp_path, "model.diffusion_model.output_blocks.1.")
    with pytest.raises(
        ModelError, match=r"does not load as SD 1\.5: it (has no weights for|lacks the weights)"
    ):
        load_single_file(path, "sd15", StableDiffusionPipeline, dtype, config_dir=tiny.config_dir)


def test_a_missing_checkpoint_is_a_model_error(tmp_path: Path) -> None:
    from diffusers import StableDiffusionPipeline

    with pytest.raises(ModelError, match="checkpoint not found"):
        load_single_file(tmp_path / "nope.safetensors", "sd15", StableDiffusionPipeline, torch.float32)
