"""The embeddings one model can use, found by token ids and handed to the prompt encoder.

This is A1111's ``EmbeddingDatabase`` for one model: every installed embedding is loaded once
(``EmbeddingStore`` caches files across models), kept only if its shape fits the model's text
encoders (A1111's ``expected_shape``: the token-embedding width, summed over SDXL's two encoders,
so an SD 1.x embedding is skipped on SDXL and vice versa, and SDXL embeddings are skipped on the
refiner, whose only encoder is 1280 wide), and indexed by its name's token ids.

The prompt encoder (``engine/conditioning``) needs three things from a library:

* ``match_at(tokens, position)``: the chunker's ``EmbeddingMatcher``;
* ``vectors_for(role, name)``: the ``[n, width]`` vectors to splice for encoder ``role``
  (``"sd1-clip-l"``, ``"sdxl-clip-l"``, ``"sdxl-clip-g"``) at ``offset + 1`` of each fix;
* ``unavailable_in(tokens)``: messages for embeddings the prompt names that this model cannot
  use (wrong shape, unreadable file), which A1111 would silently treat as words.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stablenew_qt.core.extra_networks import EmbeddingEntry, EmbeddingIndex, EmbeddingMatch, IndexedEmbedding

from ..errors import ModelError
from .loader import LoadedEmbedding, load_embedding

if TYPE_CHECKING:
    import torch

__all__ = ["EmbeddingLibrary", "EmbeddingStore", "EncoderSlot", "encoder_slots"]


@dataclass(frozen=True)
class EncoderSlot:
    """One text encoder of a model as embeddings see it: its role, the key of its vectors in an
    SDXL file (``""`` for single-tensor files) and its token-embedding width."""

    role: str
    key: str
    width: int


def encoder_slots(pipe: Any) -> tuple[EncoderSlot, ...]:
    """The text encoders of an SD 1.x, SDXL or SDXL-refiner pipeline."""
    first, second = getattr(pipe, "text_encoder", None), getattr(pipe, "text_encoder_2", None)
    if first is not None and second is not None:
        return (
            EncoderSlot("sdxl-clip-l", "clip_l", _width(first)),
            EncoderSlot("sdxl-clip-g", "clip_g", _width(second)),
        )
    if second is not None:
        return (EncoderSlot("sdxl-clip-g", "", _width(second)),)
    if first is None:
        raise ModelError("this pipeline has no text encoder, so it cannot use embeddings")
    return (EncoderSlot("sd1-clip-l", "", _width(first)),)


def _width(model: Any) -> int:
    return int(model.get_input_embeddings().weight.shape[1])


class EmbeddingLibrary:
    """The usable embeddings of one model, their token-id index and the ones it cannot use."""

    def __init__(
        self,
        embeddings: Iterable[LoadedEmbedding],
        slots: Sequence[EncoderSlot],
        tokenize: Callable[[str], list[int]],
        failed: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.slots = tuple(slots)
        self.embeddings: dict[str, LoadedEmbedding] = {}
        self.unavailable: dict[str, str] = dict(failed)
        self._index, self._unavailable_index = EmbeddingIndex(), EmbeddingIndex()
        for embedding in embeddings:
            reason = self._misfit(embedding)
            if reason:
                self.unavailable[embedding.name] = reason
                continue
            self.embeddings[embedding.name] = embedding
            self._index.register(
                IndexedEmbedding(embedding.name, tuple(tokenize(embedding.name)), embedding.count)
            )
        for name in self.unavailable:
            self._unavailable_index.register(IndexedEmbedding(name, tuple(tokenize(name)), 1))

    def match_at(self, tokens: Sequence[int], position: int) -> EmbeddingMatch | None:
        """A1111's ``find_embedding_at_position``: the embedding whose name's tokens start at
        ``position``, longest name first."""
        return self._index.match_at(tokens, position)

    def vectors_for(self, role: str, name: str) -> torch.Tensor:
        """The vectors ``[n, width]`` of embedding ``name`` for the encoder playing ``role``."""
        slot = next((s for s in self.slots if s.role == role), None)
        if slot is None:
            raise ModelError(f"this model has no text encoder playing {role!r}")
        return self.embeddings[name].vectors[slot.key]

    def unavailable_in(self, tokens: Sequence[int]) -> list[str]:
        """One message per embedding named in ``tokens`` that this model cannot use (first mention order)."""
        names = dict.fromkeys(match.name for _position, match in self._unavailable_index.find_all(tokens))
        return [self.unavailable[name] for name in names]

    def names(self) -> tuple[str, ...]:
        return tuple(self.embeddings)

    def _misfit(self, embedding: LoadedEmbedding) -> str:
        expected = sum(slot.width for slot in self.slots)
        keys = {slot.key for slot in self.slots}
        fits = embedding.shape == expected and set(embedding.vectors) == keys
        fits = fits and all(embedding.vectors[s.key].shape[-1] == s.width for s in self.slots)
        if fits:
            return ""
        model = " + ".join(f"{s.role} {s.width}" for s in self.slots)
        return (
            f"embedding '{embedding.name}' does not fit this model: it has {embedding.describe()}, the text "
            f"encoders take {model}; its name is read as plain words (as A1111 does)"
        )


class EmbeddingStore:
    """Loads each embedding file once (by path, size and mtime) and builds per-model libraries.

    ``loads`` counts files actually read. A library is rebuilt only when the catalog's entries
    change; libraries are dropped with their pipeline (held weakly).
    """

    def __init__(self) -> None:
        self._files: dict[tuple[str, int, int], LoadedEmbedding | ModelError] = {}
        self._libraries: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], EmbeddingLibrary]] = (
            weakref.WeakKeyDictionary()
        )
        self.loads = 0

    def library_for(self, pipe: Any, entries: Sequence[EmbeddingEntry]) -> EmbeddingLibrary:
        """The library of ``pipe`` for the catalog's ``entries`` (usable or not)."""
        identity = tuple((str(e.path), e.size, e.mtime_ns) for e in entries)
        cached = self._libraries.get(pipe)
        if cached is not None and cached[0] == identity:
            return cached[1]
        loaded: list[LoadedEmbedding] = []
        failed: list[tuple[str, str]] = []
        for entry in entries:
            result = self._load(entry)
            if isinstance(result, ModelError):
                failed.append((entry.name, str(result)))
            else:
                loaded.append(result)
        library = EmbeddingLibrary(loaded, encoder_slots(pipe), _tokenizer_of(pipe), failed)
        self._libraries[pipe] = (identity, library)
        return library

    def _load(self, entry: EmbeddingEntry) -> LoadedEmbedding | ModelError:
        if entry.error:
            return ModelError(entry.error)
        key = (str(entry.path), entry.size, entry.mtime_ns)
        if key not in self._files:
            try:
                self._files[key] = load_embedding(entry.path, entry.name)
            except ModelError as exc:
                self._files[key] = exc
            self.loads += 1
        return self._files[key]


def _tokenizer_of(pipe: Any) -> Callable[[str], list[int]]:
    """The ids A1111 registers an embedding's name under: the first tokenizer, no start/end."""
    tokenizer = getattr(pipe, "tokenizer", None) or getattr(pipe, "tokenizer_2", None)
    if tokenizer is None:
        raise ModelError("this pipeline has no tokenizer, so it cannot use embeddings")

    def tokenize(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"])

    return tokenize
