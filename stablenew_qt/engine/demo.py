"""Tiny random-weight demo pipelines: the app's embedded default and the one place tests get models.

Each demo is a real diffusers folder (``save_pretrained``, safetensors) with the architecture of its
family shrunk to a few thousand parameters: CLIP text encoders of width 32, a VAE of four 8-channel
blocks (so latents are 1/8 of the image, as in real SD) and a two-block UNet whose default image is
64x64 px. The weights are random, so the images are coloured noise: the demos let a user try the
app without weights or a GPU, and let tests run every diffusers code path on the CPU in milliseconds.

Building is deterministic (each component is seeded on its own, inside a forked RNG, so building
never disturbs the caller's random state), takes about a second, and is atomic: a model is built in
a temporary folder and renamed into place; a builder that loses a race uses the winner's folder.
Components the SDXL models share (the VAE and the second text encoder) are built from the same
seed, so the refiner's copies equal the base's and a cache can share them.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEMO_MODELS: tuple[str, ...] = (
    "demo-tiny-sd15",
    "demo-tiny-sdxl",
    "demo-tiny-sdxl-refiner",
    "demo-tiny-sd15-inpaint",
    "demo-tiny-sdxl-inpaint",
)

# Bump whenever a builder changes what it writes: folders with another version are rebuilt.
BUILDER_VERSION = 1
MARKER_FILE = "stablenew_demo.json"

# One seed per component role, so a component's weights do not depend on what was built before it.
_SEEDS = {"vae": 0, "text_encoder": 1, "text_encoder_2": 2, "unet": 3}
_TEXT_WIDTH = 32  # hidden size and projection size of every demo CLIP text encoder
_TIME_EMBED = 8  # SDXL addition_time_embed_dim
_LATENT_SIZE = 8  # UNet sample_size: 8 latent px x VAE factor 8 = 64x64 px by default
_MAX_TOKENS = 77
# torch's default RNG is process-wide: two builds in one process at once would interleave draws.
_BUILD_LOCK = threading.Lock()

# A few common English pairs, so the vocabulary has some multi-character tokens like CLIP's.
_MERGES: tuple[tuple[str, str], ...] = (
    ("t", "h"),
    ("th", "e</w>"),
    ("a", "n"),
    ("an", "d</w>"),
    ("i", "n"),
    ("in", "g</w>"),
    ("o", "n</w>"),
    ("e", "r</w>"),
    ("a", "t</w>"),
    ("o", "f</w>"),
)

_ARCHITECTURES = {
    "demo-tiny-sd15": "Stable Diffusion 1.5",
    "demo-tiny-sdxl": "SDXL base",
    "demo-tiny-sdxl-refiner": "SDXL refiner",
    "demo-tiny-sd15-inpaint": "Stable Diffusion 1.5 inpainting",
    "demo-tiny-sdxl-inpaint": "SDXL inpainting",
}

_README = """# {name}: random-weight demo model

**Random weights: this is not a real Stable Diffusion model.** StableNew Qt built it on this
machine with the {family} architecture shrunk to well under 1 MB, seeded so that every machine
builds the same one. It draws coloured noise, not pictures.

It exists so that the app can be tried without downloading weights or owning a GPU, and so the
tests can run every stage on the CPU. Put real checkpoints under `models/Stable-diffusion/` to make
real images.

Builder version {version}. Delete this folder to have it rebuilt.
"""


def default_demo_root() -> Path:
    """Where demo models are cached when no root is given: the user cache dir's ``demo-models``."""
    import platformdirs

    return platformdirs.user_cache_path("StableNewQt") / "demo-models"


def ensure_demo_model(name: str, root: Path | None = None) -> Path:
    """The diffusers folder of demo model ``name`` under ``root``, built there on first use.

    ``root`` defaults to :func:`default_demo_root`. A folder written by another builder version is
    rebuilt. Raises ``ValueError`` for a name not in :data:`DEMO_MODELS`.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown demo model {name!r}; the demo models are: {', '.join(DEMO_MODELS)}")
    root = default_demo_root() if root is None else Path(root)
    target = root / name
    if is_current_demo_model(target, name):
        return target
    with _BUILD_LOCK:
        if not is_current_demo_model(target, name):  # another thread may have built it meanwhile
            _build(name, root, target)
    return target


def ensure_demo_models(root: Path | None = None) -> dict[str, Path]:
    """Every demo model, built where missing: name -> diffusers folder, in :data:`DEMO_MODELS` order."""
    return {name: ensure_demo_model(name, root) for name in DEMO_MODELS}


def is_demo_model(folder: Path) -> bool:
    """True when ``folder`` holds a demo model written by this module (any builder version)."""
    return _read_marker(folder) is not None


def is_current_demo_model(folder: Path, name: str) -> bool:
    """True when ``folder`` holds demo model ``name`` built by the current builder version."""
    marker = _read_marker(folder)
    return marker is not None and marker.get("name") == name and marker.get("version") == BUILDER_VERSION


# -- building and installing -----------------------------------------------------------------------


def _build(name: str, root: Path, target: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-building-", dir=root))
    try:
        with _quiet_saving():
            _BUILDERS[name](staging)
        _write_readme_and_marker(staging, name)
        _install(staging, target, name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _read_marker(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_readme_and_marker(folder: Path, name: str) -> None:
    readme = _README.format(name=name, family=_ARCHITECTURES[name], version=BUILDER_VERSION)
    (folder / "README.md").write_text(readme, encoding="utf-8")
    # Written last: a folder with a current marker is complete.
    marker = {"name": name, "version": BUILDER_VERSION, "random_weights": True}
    (folder / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _install(staging: Path, target: Path, name: str) -> None:
    """Rename ``staging`` to ``target``, moving a stale ``target`` aside first."""
    if target.exists() and not is_current_demo_model(target, name):
        stale = target.with_name(f".{target.name}-stale-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):  # another builder moved it first
            os.replace(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(staging, target)
    except OSError:
        # A concurrent builder installed its folder first; use it if it is complete.
        if not is_current_demo_model(target, name):
            raise


def _module(name: str) -> Any:
    # diffusers' lazy top-level module types as its dummy objects under mypy; use it untyped.
    return importlib.import_module(name)


@contextmanager
def _seeded(role: str) -> Iterator[None]:
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEEDS[role])
        yield


@contextmanager
def _quiet_saving() -> Iterator[None]:
    """Hide transformers' per-shard progress bars: a demo build is too quick to need them."""
    hf_logging = _module("transformers.utils.logging")

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


# -- components -------------------------------------------------------------------------------------


def _byte_characters() -> list[str]:
    """The 256 printable characters byte-level BPE uses for the bytes 0..255, in byte order."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _tokenizer() -> Any:
    """A CLIP tokenizer over single bytes (so any text tokenizes), a few merges and CLIP's specials."""
    from transformers import CLIPTokenizer

    characters = _byte_characters()
    tokens = [*characters, *(c + "</w>" for c in characters), *(a + b for a, b in _MERGES)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        merges = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in _MERGES)
        (Path(folder) / "merges.txt").write_text(merges, encoding="utf-8")
        # transformers 5 ignores CLIPTokenizer(vocab_file=...); from_pretrained(dir) reads the files.
        return CLIPTokenizer.from_pretrained(
            folder, model_max_length=_MAX_TOKENS, pad_token="<|endoftext|>", unk_token="<|endoftext|>"
        )


def _text_encoder(tokenizer: Any, role: str, *, with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=_TEXT_WIDTH,
        intermediate_size=37,
        projection_dim=_TEXT_WIDTH,
        num_attention_heads=4,
        num_hidden_layers=2,
        max_position_embeddings=_MAX_TOKENS,
        hidden_act="gelu" if with_projection else "quick_gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model_class: Any = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    with _seeded(role):
        return model_class(config).eval()


def _vae(scaling_factor: float) -> Any:
    diffusers = _module("diffusers")

    with _seeded("vae"):
        return diffusers.AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(8, 8, 8, 8),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=2,
            sample_size=_LATENT_SIZE * 8,
            scaling_factor=scaling_factor,
            # Real SD VAEs ask pipelines to upcast to fp32 (fp16 overflow); this tiny one never overflows.
            force_upcast=False,
        ).eval()


def _unet(*, in_channels: int, cross_attention_dim: int, sdxl_time_ids: int = 0) -> Any:
    """A two-block UNet; ``sdxl_time_ids`` > 0 adds SDXL's text_time embedding over that many ids."""
    diffusers = _module("diffusers")

    sdxl: dict[str, Any] = {}
    if sdxl_time_ids:
        sdxl = {
            "addition_embed_type": "text_time",
            "addition_time_embed_dim": _TIME_EMBED,
            "projection_class_embeddings_input_dim": sdxl_time_ids * _TIME_EMBED + _TEXT_WIDTH,
            "use_linear_projection": True,
        }
    with _seeded("unet"):
        return diffusers.UNet2DConditionModel(
            sample_size=_LATENT_SIZE,
            in_channels=in_channels,
            out_channels=4,
            block_out_channels=(8, 16),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=cross_attention_dim,
            attention_head_dim=4,
            norm_num_groups=2,
            **sdxl,
        ).eval()


def _sd15_scheduler() -> Any:
    """The scheduler config of the real SD 1.5 repository (PNDM, leading spacing, offset 1)."""
    diffusers = _module("diffusers")

    return diffusers.PNDMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
        timestep_spacing="leading",
    )


def _sdxl_scheduler() -> Any:
    """The scheduler config of the real SDXL base and refiner repositories (Euler, leading, offset 1)."""
    diffusers = _module("diffusers")

    return diffusers.EulerDiscreteScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        steps_offset=1,
        timestep_spacing="leading",
        use_karras_sigmas=False,
    )


# -- pipelines --------------------------------------------------------------------------------------


def _build_sd15(folder: Path, *, inpaint: bool = False) -> None:
    diffusers = _module("diffusers")

    tokenizer = _tokenizer()
    pipeline_class = (
        diffusers.StableDiffusionInpaintPipeline if inpaint else diffusers.StableDiffusionPipeline
    )
    pipe = pipeline_class(
        vae=_vae(0.18215),
        text_encoder=_text_encoder(tokenizer, "text_encoder", with_projection=False),
        tokenizer=tokenizer,
        unet=_unet(in_channels=9 if inpaint else 4, cross_attention_dim=_TEXT_WIDTH),
        scheduler=_sd15_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


def _build_sdxl(folder: Path, *, inpaint: bool = False) -> None:
    diffusers = _module("diffusers")

    tokenizer = _tokenizer()
    components: dict[str, Any] = {
        "vae": _vae(0.13025),
        "text_encoder": _text_encoder(tokenizer, "text_encoder", with_projection=False),
        "text_encoder_2": _text_encoder(tokenizer, "text_encoder_2", with_projection=True),
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer,
        # Base: 6 time ids (original size, crop, target size); cross-attention on both encoders.
        "unet": _unet(in_channels=9 if inpaint else 4, cross_attention_dim=2 * _TEXT_WIDTH, sdxl_time_ids=6),
        "scheduler": _sdxl_scheduler(),
        "force_zeros_for_empty_prompt": True,
        "add_watermarker": False,
    }
    if inpaint:
        pipe: Any = diffusers.StableDiffusionXLInpaintPipeline(**components, requires_aesthetics_score=False)
    else:
        pipe = diffusers.StableDiffusionXLPipeline(**components)
    pipe.save_pretrained(folder, safe_serialization=True)


def _build_sdxl_refiner(folder: Path) -> None:
    diffusers = _module("diffusers")

    tokenizer = _tokenizer()
    pipe = diffusers.StableDiffusionXLImg2ImgPipeline(
        vae=_vae(0.13025),
        text_encoder=None,
        text_encoder_2=_text_encoder(tokenizer, "text_encoder_2", with_projection=True),
        tokenizer=None,
        tokenizer_2=tokenizer,
        # Refiner: 5 time ids (original size, crop, aesthetic score); second encoder only.
        unet=_unet(in_channels=4, cross_attention_dim=_TEXT_WIDTH, sdxl_time_ids=5),
        scheduler=_sdxl_scheduler(),
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        add_watermarker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "demo-tiny-sd15": _build_sd15,
    "demo-tiny-sdxl": _build_sdxl,
    "demo-tiny-sdxl-refiner": _build_sdxl_refiner,
    "demo-tiny-sd15-inpaint": lambda folder: _build_sd15(folder, inpaint=True),
    "demo-tiny-sdxl-inpaint": lambda folder: _build_sdxl(folder, inpaint=True),
}
