"""A1111's textual-inversion lookup by token ids (``EmbeddingDatabase.find_embedding_at_position``).

Each embedding's name is tokenized without start/end tokens; an embedding matches where its whole
token sequence appears in a prompt piece's token ids. Candidates are kept per first token id,
longest sequence first (ties in registration order), so ``bad_hands_v2`` wins over ``bad_hands``
where both fit. Matching is on ids, so it inherits the tokenizer's rules: CLIP lower-cases, which
makes ``EasyNegative`` and ``easynegative`` the same, and a name only matches whole tokens.

Pure Python: the engine tokenizes the names with the model's tokenizer; the window can use the same
index with core's CLIP tokenizer to count an embedding as its vectors in the token counter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["EmbeddingIndex", "EmbeddingMatch", "IndexedEmbedding"]


@dataclass(frozen=True)
class EmbeddingMatch:
    """A textual-inversion embedding found at a token position (the shape ``core.prompt_chunks``
    expects from an ``EmbeddingMatcher``; the integration replaces this class with that one)."""

    name: str
    vectors: int  # positions its vectors take in the chunk
    length_in_tokens: int  # prompt tokens it replaces


@dataclass(frozen=True)
class IndexedEmbedding:
    """One embedding as the index knows it: its name, the name's token ids and its vector count."""

    name: str
    token_ids: tuple[int, ...]
    vectors: int


class EmbeddingIndex:
    """Finds embeddings by token ids; register order decides ties, a later name replaces an earlier."""

    def __init__(self, embeddings: Iterable[IndexedEmbedding] = ()) -> None:
        self._by_name: dict[str, IndexedEmbedding] = {}
        self._by_first: dict[int, list[IndexedEmbedding]] = {}
        for embedding in embeddings:
            self.register(embedding)

    def register(self, embedding: IndexedEmbedding) -> None:
        """Add ``embedding`` (replacing one of the same name). Names that tokenize to nothing, and
        embeddings without vectors, are skipped: they could never match."""
        if not embedding.token_ids or embedding.vectors < 1:
            return
        old = self._by_name.pop(embedding.name, None)
        if old is not None:
            self._by_first[old.token_ids[0]].remove(old)
        self._by_name[embedding.name] = embedding
        candidates = [*self._by_first.get(embedding.token_ids[0], []), embedding]
        self._by_first[embedding.token_ids[0]] = sorted(candidates, key=lambda e: -len(e.token_ids))

    def __len__(self) -> int:
        return len(self._by_name)

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._by_name)

    def match_at(self, tokens: Sequence[int], position: int) -> EmbeddingMatch | None:
        """The embedding whose token ids start at ``tokens[position]``, longest first, or None."""
        if not 0 <= position < len(tokens):
            return None
        for candidate in self._by_first.get(tokens[position], ()):
            length = len(candidate.token_ids)
            if tuple(tokens[position : position + length]) == candidate.token_ids:
                return EmbeddingMatch(candidate.name, candidate.vectors, length)
        return None

    def find_all(self, tokens: Sequence[int]) -> list[tuple[int, EmbeddingMatch]]:
        """Every match in ``tokens`` scanning left to right as A1111's chunker does (a match skips
        the tokens it covers), as (position, match) pairs."""
        found: list[tuple[int, EmbeddingMatch]] = []
        position = 0
        while position < len(tokens):
            match = self.match_at(tokens, position)
            if match is None:
                position += 1
                continue
            found.append((position, match))
            position += match.length_in_tokens
        return found
