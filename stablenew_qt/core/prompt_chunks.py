"""A1111's 75-token chunks: how a prompt's tokens and weights are laid out for CLIP.

Re-implemented from A1111 1.10's documented behaviour (``sd_hijack_clip.tokenize_line``): the
tokens of each attention piece are appended with the piece's weight; a chunk holds 75 of them and
is then framed as ``[start] + 75 + [end]`` (77 positions, padded with the end token). When a chunk
is full and the next token is not a comma, the tokens after the chunk's last comma move to the
next chunk if that comma is at most ``comma_padding_backtrack`` (default 20, 0 = off) tokens back.
A BREAK marker closes the current chunk. The token count the window shows is 75 per closed chunk
plus the tokens of the last one.

Textual-inversion seam: an :class:`EmbeddingMatcher` may claim token runs as embeddings; their
vectors take ``vectors`` positions (token id 0 there, to be replaced by the encoder's embedding
hook at ``offset + 1``, after the start token). As in A1111, a run moved by the comma back-track
keeps its zero ids but loses its fix, and the fix stays with the chunk it came from.

Pure Python; the tokenizer is passed in, so the window's counter and the engine share this code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from stablenew_qt.core.prompt_attention import is_break, parse_attention

CHUNK_LENGTH = 75
DEFAULT_COMMA_BACKTRACK = 20


class Emphasis(StrEnum):
    """A1111's ``Emphasis`` option (``sd_emphasis.py``); infotext ``Emphasis: <value>`` when not Original."""

    ORIGINAL = "Original"  # multiply by the weights, then restore the mean of the chunk batch
    NO_NORM = "No norm"  # multiply only
    IGNORE = "Ignore"  # brackets and BREAK parsed, weights not applied
    NONE = "None"  # no parsing at all: brackets and BREAK are literal text


@dataclass(frozen=True)
class EmbeddingMatch:
    """A textual-inversion embedding found at a token position."""

    name: str
    vectors: int  # positions its vectors take in the chunk
    length_in_tokens: int  # prompt tokens it replaces


class EmbeddingMatcher(Protocol):
    """Finds an embedding whose trigger tokens start at ``position`` of ``tokens`` (the LoRA/TI issue)."""

    def match_at(self, tokens: Sequence[int], position: int) -> EmbeddingMatch | None: ...


@dataclass(frozen=True)
class EmbeddingFix:
    """Put embedding ``name``'s vectors at chunk position ``offset + 1`` onwards."""

    offset: int
    name: str
    vectors: int


@dataclass
class PromptChunk:
    """77 token ids (start, 75, end), their 77 weights, and the embedding fixes of the chunk."""

    tokens: list[int] = field(default_factory=list)
    multipliers: list[float] = field(default_factory=list)
    fixes: list[EmbeddingFix] = field(default_factory=list)


@dataclass(frozen=True)
class ChunkSpec:
    """What the chunker needs to know about one text encoder's tokenizer."""

    id_start: int
    id_end: int
    comma_id: int | None
    comma_padding_backtrack: int = DEFAULT_COMMA_BACKTRACK

    def empty_chunk(self) -> PromptChunk:
        """The chunk A1111 encodes for a text that has fewer chunks than others in its batch."""
        return PromptChunk(
            tokens=[self.id_start] + [self.id_end] * (CHUNK_LENGTH + 1),
            multipliers=[1.0] * (CHUNK_LENGTH + 2),
        )


Tokenize = Callable[[list[str]], list[list[int]]]


def attention_pieces(line: str, emphasis: Emphasis) -> list[tuple[str, float]]:
    """The weighted pieces of one scheduled text; with emphasis None the whole line, weight 1."""
    return [(line, 1.0)] if emphasis == Emphasis.NONE else parse_attention(line)


def chunk_prompt(
    line: str,
    tokenize: Tokenize,
    spec: ChunkSpec,
    emphasis: Emphasis = Emphasis.ORIGINAL,
    embeddings: EmbeddingMatcher | None = None,
) -> tuple[list[PromptChunk], int]:
    """The chunks of one scheduled text and its token count (A1111's ``tokenize_line``)."""
    pieces = attention_pieces(line, emphasis)
    token_lists = tokenize([text for text, _ in pieces])
    builder = _ChunkBuilder(spec)
    for tokens, piece in zip(token_lists, pieces, strict=True):
        if is_break(piece):
            builder.close()
        else:
            builder.add(tokens, piece[1], embeddings)
    return builder.finish()


def target_token_count(token_count: int) -> int:
    """The limit the counter shows: whole chunks of 75, at least one (``12/75``, ``80/150``)."""
    return -(-max(token_count, 1) // CHUNK_LENGTH) * CHUNK_LENGTH


class _ChunkBuilder:
    def __init__(self, spec: ChunkSpec) -> None:
        self.spec = spec
        self.chunks: list[PromptChunk] = []
        self.current = PromptChunk()
        self.token_count = 0
        self.last_comma = -1

    def add(self, tokens: Sequence[int], weight: float, embeddings: EmbeddingMatcher | None) -> None:
        position = 0
        while position < len(tokens):
            self._make_room(tokens[position])
            match = embeddings.match_at(tokens, position) if embeddings is not None else None
            if match is None:
                self.current.tokens.append(tokens[position])
                self.current.multipliers.append(weight)
                position += 1
                continue
            if len(self.current.tokens) + match.vectors > CHUNK_LENGTH:
                self.close()
            self.current.fixes.append(EmbeddingFix(len(self.current.tokens), match.name, match.vectors))
            self.current.tokens += [0] * match.vectors
            self.current.multipliers += [weight] * match.vectors
            position += match.length_in_tokens

    def _make_room(self, token: int) -> None:
        current = self.current
        backtrack = self.spec.comma_padding_backtrack
        if token == self.spec.comma_id:
            self.last_comma = len(current.tokens)
        elif (
            backtrack != 0
            and len(current.tokens) == CHUNK_LENGTH
            and self.last_comma != -1
            and len(current.tokens) - self.last_comma <= backtrack
        ):
            cut = self.last_comma + 1
            moved_tokens, moved_weights = current.tokens[cut:], current.multipliers[cut:]
            del current.tokens[cut:], current.multipliers[cut:]
            self.close()
            self.current.tokens, self.current.multipliers = moved_tokens, moved_weights
        if len(self.current.tokens) == CHUNK_LENGTH:
            self.close()

    def close(self, *, is_last: bool = False) -> None:
        chunk = self.current
        self.token_count += len(chunk.tokens) if is_last else CHUNK_LENGTH
        padding = CHUNK_LENGTH - len(chunk.tokens)
        if padding > 0:
            chunk.tokens += [self.spec.id_end] * padding
            chunk.multipliers += [1.0] * padding
        chunk.tokens = [self.spec.id_start, *chunk.tokens, self.spec.id_end]
        chunk.multipliers = [1.0, *chunk.multipliers, 1.0]
        self.last_comma = -1
        self.chunks.append(chunk)
        self.current = PromptChunk()

    def finish(self) -> tuple[list[PromptChunk], int]:
        if self.current.tokens or not self.chunks:
            self.close(is_last=True)
        return self.chunks, self.token_count
