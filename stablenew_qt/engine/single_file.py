"""Load single-file ``.safetensors`` checkpoints offline, with the config folders shipped in the package.

diffusers' ``from_single_file`` converts the original (LDM/SGM) tensor layout into diffusers
modules, but it needs each component's diffusers config and the tokenizer files to build them. By
default it downloads those from the Hub repo the checkpoint resembles; offline that fails. So the
package ships the configs of the official repos under ``configs/<family>/`` (no weights), and the
CLIP tokenizer vocabulary once under ``configs/clip-tokenizer/``. ``config_folder`` assembles a
complete folder from both in the user cache (diffusers reads tokenizer files only from inside the
folder it is given), and ``load_single_file`` passes it as ``config=``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ModelError

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline

CONFIGS_DIR = Path(__file__).with_name("configs")
TOKENIZER_DIR = CONFIGS_DIR / "clip-tokenizer"
TOKENIZER_FILES = ("vocab.json", "merges.txt")
FAMILIES = ("sd15", "sd15-inpaint", "sdxl", "sdxl-inpaint", "sdxl-refiner")
_CACHE_APP_NAME = "StableNewQt"
_CACHE_SUBDIR = "single-file-configs"
# diffusers' wording when a checkpoint tensor does not fit the model built from the config.
_SHAPE_MISMATCH = re.compile(
    r"(?P<name>[\w.]+) expected shape torch\.Size\((?P<want>\[[^\]]*\])\), "
    r"but got torch\.Size\((?P<got>\[[^\]]*\])\)"
)
_MISSING_COMPONENT = re.compile(
    r"Failed to load (?P<component>\w+)\. Weights for this component appear to be missing"
)


def shipped_config_dir(family: str) -> Path:
    """The packaged config folder of ``family`` (without the shared tokenizer vocabulary).

    ``family`` is one of ``FAMILIES``; anything else is a ModelError that lists them.
    """
    if family not in FAMILIES:
        raise ModelError(
            f"no single-file config for model family {family!r}; known families: {', '.join(FAMILIES)}"
        )
    return CONFIGS_DIR / family


def config_folder(family: str, cache_root: Path | None = None) -> Path:
    """A complete diffusers config folder for ``family``: configs plus tokenizer files, no weights.

    It is made once per content version in ``cache_root`` (default: the user cache directory,
    ``.../StableNewQt/single-file-configs``) as ``<family>-<version>``, where the version is a hash
    of the shipped files, so an app update never reuses stale configs. Creation is atomic: a folder
    that exists is complete.
    """
    source = shipped_config_dir(family)
    root = cache_root if cache_root is not None else _default_cache_root()
    target = root / f"{family}-{_content_version(source)}"
    if not (target / "model_index.json").is_file():
        try:
            _materialise(source, target)
        except OSError as exc:
            raise ModelError(f"cannot prepare the {family} config folder in {root}: {exc}") from exc
    return target


def load_single_file(
    path: Path,
    family: str,
    pipeline_cls: type[Any],
    torch_dtype: torch.dtype | None,
    *,
    config_dir: Path | None = None,
    **components: Any,
) -> DiffusionPipeline:
    """Build ``pipeline_cls`` from the single-file checkpoint at ``path``, without the network.

    ``pipeline_cls`` is a diffusers pipeline class with ``from_single_file`` whose components the
    family's folder provides (e.g. ``StableDiffusionXLImg2ImgPipeline`` for ``"sdxl-refiner"``).
    ``torch_dtype`` is the dtype of the loaded weights (None keeps the checkpoint's). ``family``
    picks the shipped config folder (see ``FAMILIES``); ``config_dir`` overrides it with another
    complete diffusers config folder (tests use one made from tiny models). ``components`` go to
    diffusers unchanged: ready modules to use instead of loading them (``vae=...``) or pipeline
    options (``requires_safety_checker=False``). Raises ModelError when the file is missing or
    unreadable or malformed (UnreadableModelError), or its tensors do not fit the family's shapes.
    """
    from .model_files import read_safetensors_header

    if not path.exists():
        raise ModelError(f"checkpoint not found: {path}")
    read_safetensors_header(path)  # a malformed header is refused here, before diffusers is imported
    from diffusers.loaders.single_file_utils import SingleFileComponentError

    folder = config_dir if config_dir is not None else config_folder(family)
    kwargs: dict[str, Any] = {
        "config": str(folder),
        "torch_dtype": torch_dtype,
        "local_files_only": True,
        **components,
    }
    try:
        pipe: DiffusionPipeline = pipeline_cls.from_single_file(str(path), **kwargs)
    except (SingleFileComponentError, ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ModelError(_load_failure(path, family, exc)) from exc
    _require_all_weights(pipe, path, family)
    return pipe


def _default_cache_root() -> Path:
    import platformdirs

    return platformdirs.user_cache_path(_CACHE_APP_NAME) / _CACHE_SUBDIR


def _content_version(source: Path) -> str:
    digest = hashlib.sha256()
    files = [(p.relative_to(source).as_posix(), p) for p in sorted(source.rglob("*")) if p.is_file()]
    files += [(f"{TOKENIZER_DIR.name}/{name}", TOKENIZER_DIR / name) for name in TOKENIZER_FILES]
    for relative, file in files:
        digest.update(relative.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def _materialise(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        shutil.copytree(source, staging)
        for tokenizer in (d for d in staging.iterdir() if d.is_dir() and d.name.startswith("tokenizer")):
            for name in TOKENIZER_FILES:
                shutil.copyfile(TOKENIZER_DIR / name, tokenizer / name)
        try:
            staging.rename(target)
        except OSError:
            # Another process finished the same folder first; theirs is as good as ours.
            if not (target / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_failure(path: Path, family: str, exc: BaseException) -> str:
    label = _label(family)
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else type(exc).__name__
    if shape := _SHAPE_MISMATCH.search(text):
        reason = f"tensor {shape['name']} has shape {shape['got']} where {label} has {shape['want']}"
    elif missing := _MISSING_COMPONENT.search(text):
        reason = f"it has no {missing['component']} weights"
    elif "meta tensor" in text:
        reason = "it lacks the weights for part of the model"
    else:
        reason = (text[:300] + "...") if len(text) > 300 else text
    return (
        f"{path.name} does not load as {label}: {reason.rstrip('.')}. It must be a complete {label} "
        "checkpoint (UNet, VAE and text encoders) in the original single-file layout; a LoRA, a VAE, "
        "another model family or an incomplete download will not load"
    )


def _label(family: str) -> str:
    from .family import ModelFamily, describe

    return describe(ModelFamily(family))


def _require_all_weights(pipe: Any, path: Path, family: str) -> None:
    import torch

    # diffusers leaves parameters the checkpoint lacks on the "meta" device instead of failing.
    for name, module in pipe.components.items():
        if not isinstance(module, torch.nn.Module):
            continue
        missing = [p_name for p_name, p in module.named_parameters() if p.device.type == "meta"]
        if missing:
            raise ModelError(
                f"{path.name} does not load as {_label(family)}: it has no weights for {len(missing)} "
                f"{name} parameters (first: {missing[0]}); the file is incomplete or of another family"
            )
