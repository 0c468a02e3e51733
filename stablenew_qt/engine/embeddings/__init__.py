"""Textual-inversion embeddings: A1111's file formats, fit checks and token-id lookup (see ``library``)."""

from .library import EmbeddingLibrary, EmbeddingStore, EncoderSlot, encoder_slots
from .loader import LoadedEmbedding, load_embedding

__all__ = [
    "EmbeddingLibrary",
    "EmbeddingStore",
    "EncoderSlot",
    "LoadedEmbedding",
    "encoder_slots",
    "load_embedding",
]
