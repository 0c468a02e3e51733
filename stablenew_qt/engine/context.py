"""What every stage needs from the engine: the device, the model catalog, the caches of loaded
pipelines, upscalers and detectors (all under one memory budget), and preview settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image

from ..core.executor import CancelToken, ProgressCallback
from .adetailer.detector import Detector, DetectorCache, DetectorTrust
from .device import DeviceChoice
from .memory import MemoryBudget
from .models import ModelCatalog
from .oom import RememberedRungs
from .pipelines import LoadedModel, PipelineCache
from .progress import StepReporter
from .upscalers import Upscaler, UpscalerCache

if TYPE_CHECKING:
    from .conditioning import ConditioningOptions, PromptEncoder
    from .extra_networks_run import ExtraNetworks

# Where a resident model keeps its prompt encoders and their ConditioningCache (in
# ``LoadedModel.derived``, so both go when the model is evicted).
_CONDITIONING = "conditioning"

# Above this many output pixels the VAE decodes and encodes in tiles (about 2.4 MP: bigger than
# 1536x1536), keeping VRAM flat for hires and large img2img at a small speed cost.
VAE_TILING_PIXELS = 1536 * 1536


@dataclass
class EngineContext:
    """One engine's state. ``cache``, ``upscalers`` and ``detectors`` are the pools of ``budget``:
    whatever was used least recently, of any kind, is evicted first to make room."""

    cache: PipelineCache
    catalog: ModelCatalog
    device: DeviceChoice
    models_dir: Path
    trust: DetectorTrust
    upscalers: UpscalerCache
    detectors: DetectorCache
    preview_every: int = 5
    vae_tiling_pixels: int = VAE_TILING_PIXELS
    _extra_networks: ExtraNetworks | None = None
    #: VAE tiling whatever the size (a rung of the out-of-memory ladder, see :mod:`.oom`).
    force_vae_tiling: bool = False
    #: The out-of-memory step that worked, per (model, width, height), for later jobs.
    oom_steps: RememberedRungs = field(default_factory=RememberedRungs)
    _taesd: dict[Path, Any] = field(default_factory=dict)
    _ultralytics_ready: bool = False

    @property
    def budget(self) -> MemoryBudget:
        return self.cache.budget

    @property
    def esrgan_dir(self) -> Path:
        return self.models_dir / "ESRGAN"

    def upscaler(self, name: str) -> Upscaler:
        """The pixel upscaler ``name``: a built-in or a model from models/ESRGAN (loaded once)."""
        from .upscalers import resolve_upscaler

        device = self.device
        return resolve_upscaler(
            name, self.esrgan_dir, str(device.device), device.is_cuda, cache=self.upscalers
        )

    def reporter(self, progress: ProgressCallback, token: CancelToken, total: int) -> StepReporter:
        """A step reporter for one stage; the stage adds previews once it knows the model family."""
        return StepReporter(progress, token, max(total, 1), self.preview_every)

    def previewer(self, family: str) -> Callable[[Any], Image.Image]:
        """Latents -> an RGB preview for ``family``: full size with TAESD when its weights are in
        ``models/VAE-approx/taesd`` (or ``taesdxl``), else the cheap linear approximation."""
        from .previews import TaesdPreviewer, latent_preview, taesd_folder

        folder = taesd_folder(self.models_dir, family)
        if folder not in self._taesd:
            self._taesd[folder] = TaesdPreviewer.load(folder, self.device.device, self.device.dtype)
        taesd = self._taesd[folder]
        if taesd is not None:
            decode: Callable[[Any], Image.Image] = taesd.preview
            return decode
        return lambda latents: latent_preview(latents, family)

    def prompt_encoder(self, model: LoadedModel, options: ConditioningOptions) -> PromptEncoder:
        """The one place stages get A1111's prompt encoder for ``model``'s text encoders.

        One :class:`ConditioningCache` per resident model (it lives and dies with the model), so a
        second run with the same prompts, clip skip and emphasis encodes nothing; one encoder per
        ``options``. Embedding arguments come from :meth:`_embedding_args`.
        """
        from .conditioning import ConditioningCache, PromptEncoder
        from .extra_networks_run import conditioning_state, lora_aware_encoder

        cache, encoders = model.derived.setdefault(_CONDITIONING, (ConditioningCache(), {}))
        extra = self._embedding_args(model)
        # The active te LoRAs and the embedding files change every encoding: part of both keys.
        state = conditioning_state(self, model)
        key = (options, state, tuple(sorted((k, id(v)) for k, v in extra.items())))
        encoder = encoders.get(key)
        if encoder is None:
            cache_key = (*model.key, state) if state else model.key
            encoder = PromptEncoder.from_pipeline(
                model.pipe, options=options, cache=cache, cache_key=cache_key, **extra
            )
            encoders[key] = encoder
        found: PromptEncoder = lora_aware_encoder(self, model, encoder)
        return found

    def _embedding_args(self, model: LoadedModel) -> dict[str, Any]:
        """Extra ``PromptEncoder`` arguments for ``model`` (``embeddings=``, ``embedding_override=``:
        the installed textual-inversion embeddings that fit it; see ``embedding_args_for``).
        Whatever changes the encoders' output (an embedding set, a LoRA on the text encoders)
        must also change the encoder's ``cache_key`` or clear ``model``'s ConditioningCache."""
        from .extra_networks_run import embedding_args_for

        return embedding_args_for(self, model)

    def detector(self, name: str) -> Detector:
        """The YOLO detector ``name`` from models/adetailer (loaded once; trusted files only)."""
        from ..core.outputs import app_data_dir
        from .adetailer.detector import configure_ultralytics, load_detector

        if not self._ultralytics_ready:  # once per engine, not once per unit and image
            configure_ultralytics(app_data_dir() / "ultralytics")
            self._ultralytics_ready = True
        entry = self.catalog.resolve_detector(name)
        assert entry.path is not None
        return load_detector(entry.path, self.trust, cache=self.detectors)

    def tile_vae_for(self, pipe: Any, width: int, height: int) -> None:
        """Switch VAE tiling on for big images (or while the out-of-memory ladder wants it) and
        off again for small ones."""
        if self.force_vae_tiling or width * height > self.vae_tiling_pixels:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()

    # -- LoRAs and embeddings (engine/extra_networks_run.py) --------------------------------
    @property
    def extra_networks(self) -> ExtraNetworks:
        """The LoRA/embedding catalog of ``models_dir`` and the per-pipeline LoRA managers."""
        if self._extra_networks is None:
            from .extra_networks_run import ExtraNetworks

            self._extra_networks = ExtraNetworks.for_models(self.models_dir)
        return self._extra_networks

    @contextmanager
    def lora_suspended(self, model: LoadedModel) -> Iterator[None]:
        """No LoRA active on ``model`` in the block (the SDXL refiner's prompt encoding)."""
        from .extra_networks_run import lora_suspended

        with lora_suspended(self, model):
            yield
