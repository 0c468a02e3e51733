"""Reading textual-inversion embeddings in A1111's formats, without running code from the file.

A1111 (``modules/textual_inversion/textual_inversion.py``, ``create_embedding_from_data``) reads:

* ``.pt`` / ``.bin``: a dict with ``string_to_param`` holding exactly one tensor ``[n, dim]``
  (A1111's own format), a dict with ``clip_l`` and ``clip_g`` (SDXL), or a dict of exactly one
  tensor (diffusers' "concept" files, ``[dim]`` or ``[n, dim]``);
* ``.safetensors``: the same shapes (usually ``emb_params``, or ``clip_l`` + ``clip_g``).

Pickle files are read with ``torch.load(weights_only=True)``, which rebuilds only tensors and plain
containers; a file that needs anything else is refused. The embedding's name is its file stem,
never the ``name`` stored inside (A1111 does the same for these formats).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError

if TYPE_CHECKING:
    import torch

__all__ = ["MAX_EMBEDDING_BYTES", "MAX_VECTORS", "LoadedEmbedding", "load_embedding"]

#: Real embeddings are a few KiB to a few hundred KiB.
MAX_EMBEDDING_BYTES = 64 * 1024 * 1024
#: A chunk holds 75 tokens: a longer embedding could never be placed.
MAX_VECTORS = 75
SDXL_KEYS = ("clip_l", "clip_g")


@dataclass(frozen=True)
class LoadedEmbedding:
    """An embedding's vectors (float32, CPU): ``{"clip_l": [n, 768], "clip_g": [n, 1280]}`` for
    SDXL files, ``{"": [n, dim]}`` for single-encoder ones."""

    name: str
    path: Path
    vectors: Mapping[str, torch.Tensor]

    @property
    def count(self) -> int:
        """Vectors per encoder: the token positions the embedding takes in a chunk."""
        return int(next(iter(self.vectors.values())).shape[0])

    @property
    def is_sdxl(self) -> bool:
        return set(self.vectors) == set(SDXL_KEYS)

    @property
    def shape(self) -> int:
        """A1111's ``Embedding.shape``: the vector width, summed over clip_l and clip_g."""
        return sum(int(v.shape[-1]) for v in self.vectors.values())

    def describe(self) -> str:
        widths = " + ".join(f"{k} {v.shape[-1]}" if k else str(v.shape[-1]) for k, v in self.vectors.items())
        return f"{self.count} vector{'s' if self.count != 1 else ''} of width {widths}"


def load_embedding(path: Path, name: str | None = None) -> LoadedEmbedding:
    """Read the embedding file ``path`` (named ``name``, default its stem). Raises ModelError with
    a message naming the file for anything that is not one of A1111's formats."""
    name = name or path.stem
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ModelError(f"embedding '{name}' cannot be read: {exc.strerror or exc}") from exc
    if size > MAX_EMBEDDING_BYTES:
        raise ModelError(f"embedding '{name}' ({path.name}) is {size} bytes; an embedding is far smaller")
    data = (
        _read_safetensors(path, name) if path.suffix.lower() == ".safetensors" else _read_pickle(path, name)
    )
    return LoadedEmbedding(name, path, _vectors(data, name, path.name))


def _read_safetensors(path: Path, name: str) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"embedding '{name}' ({path.name}) is not a readable safetensors file: {exc}"
        ) from exc


def _read_pickle(path: Path, name: str) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "GLOBAL" not in str(exc):  # torch names the class it refused; anything else is damage
            raise ModelError(_unreadable(name, path)) from exc
        raise ModelError(
            f"embedding '{name}' ({path.name}) holds Python objects besides tensors, so it is not loaded "
            "(that would run code from the file); get a .safetensors version of it"
        ) from exc
    except (OSError, EOFError, RuntimeError, ValueError, KeyError) as exc:
        raise ModelError(_unreadable(name, path)) from exc


def _unreadable(name: str, path: Path) -> str:
    return f"embedding '{name}' ({path.name}) cannot be read (damaged, or not an embedding)"


def _vectors(data: Any, name: str, file: str) -> dict[str, torch.Tensor]:
    import torch

    if not isinstance(data, Mapping):
        raise ModelError(f"embedding '{name}' ({file}) holds a {type(data).__name__}, not an embedding")
    if "string_to_param" in data:
        params = data["string_to_param"]
        if not isinstance(params, Mapping) or len(params) != 1:
            raise ModelError(f"embedding '{name}' ({file}) must hold exactly one term in string_to_param")
        found = {"": next(iter(params.values()))}
    elif all(key in data for key in SDXL_KEYS):
        found = {key: data[key] for key in SDXL_KEYS}
    else:
        tensors = [v for v in data.values() if isinstance(v, torch.Tensor)]
        if len(data) != 1 or len(tensors) != 1:
            raise ModelError(
                f"embedding '{name}' ({file}) is neither an A1111 embedding (string_to_param), an SDXL "
                "clip_l/clip_g pair nor a single-tensor concept file"
            )
        found = {"": tensors[0]}
    vectors = {key: _checked(value, name, file) for key, value in found.items()}
    if len({v.shape[0] for v in vectors.values()}) != 1:
        raise ModelError(f"embedding '{name}' ({file}) has a different number of clip_l and clip_g vectors")
    return vectors


def _checked(value: Any, name: str, file: str) -> torch.Tensor:
    import torch

    if not isinstance(value, torch.Tensor) or not value.is_floating_point():
        raise ModelError(f"embedding '{name}' ({file}) does not hold floating-point vectors")
    vectors = value.detach().to(torch.float32)
    if vectors.dim() == 1:
        vectors = vectors.unsqueeze(0)
    if vectors.dim() != 2 or vectors.shape[0] < 1 or vectors.shape[1] < 1:
        raise ModelError(
            f"embedding '{name}' ({file}) has vectors of shape {list(value.shape)}, expected [n, width]"
        )
    if vectors.shape[0] > MAX_VECTORS:
        raise ModelError(
            f"embedding '{name}' ({file}) has {vectors.shape[0]} vectors; "
            f"at most {MAX_VECTORS} fit a prompt chunk"
        )
    return vectors.contiguous()
