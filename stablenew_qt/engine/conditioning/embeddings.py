"""The textual-inversion seam: replace token-embedding rows where the chunker placed embeddings.

The chunker (``core.prompt_chunks``) asks an ``EmbeddingMatcher`` for embeddings by token ids and
records an ``EmbeddingFix`` per match; the encoder then runs the text encoder with a forward hook
on its token-embedding layer that hands the layer's output to a :class:`TokenEmbeddingOverride`.
:func:`splice_vectors` is A1111's splice (``EmbeddingsWithFixes``): the vectors go at
``offset + 1`` (after the start token). Nothing is installed unless an override is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from stablenew_qt.core.prompt_chunks import EmbeddingFix

if TYPE_CHECKING:
    import torch


class TokenEmbeddingOverride(Protocol):
    """Changes the token embeddings ``[B, 77, C]`` of one chunk batch for encoder ``role``."""

    def __call__(
        self, role: str, embeds: torch.Tensor, fixes: Sequence[Sequence[EmbeddingFix]]
    ) -> torch.Tensor: ...


def splice_vectors(
    embeds: torch.Tensor,
    fixes: Sequence[Sequence[EmbeddingFix]],
    vectors: Callable[[str], torch.Tensor],
) -> torch.Tensor:
    """``embeds`` with each fix's vectors (``vectors(name)``, ``[n, C]``) from ``offset + 1`` on."""
    import torch

    rows = []
    for row, row_fixes in zip(embeds, fixes, strict=True):
        for fix in row_fixes:
            emb = vectors(fix.name).to(device=row.device, dtype=row.dtype)
            length = min(row.shape[0] - fix.offset - 1, emb.shape[0])
            row = torch.cat([row[: fix.offset + 1], emb[:length], row[fix.offset + 1 + length :]])
        rows.append(row)
    return torch.stack(rows)


@contextmanager
def token_embedding_hook(
    token_embedding: Any,
    role: str,
    fixes: Sequence[Sequence[EmbeddingFix]],
    override: TokenEmbeddingOverride | None,
) -> Iterator[None]:
    """Apply ``override`` to ``token_embedding``'s output for the duration of one encoder call."""
    if override is None or not any(fixes):
        yield
        return
    handle = token_embedding.register_forward_hook(lambda _m, _i, out: override(role, out, fixes))
    try:
        yield
    finally:
        handle.remove()
