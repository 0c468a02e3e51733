"""CLIP's BPE tokenizer in pure Python, and A1111's prompt token counter (``12/75``, ``80/150``).

The window cannot import transformers, so this reads the ``vocab.json``/``merges.txt`` shipped in
``engine/configs/clip-tokenizer`` (the vocabulary of SD 1.x and both SDXL tokenizers) and gives the
ids of transformers' ``CLIPTokenizer`` on it: NFC, whitespace runs to one space, lower case; the
pieces CLIP's pattern finds (``'s 't 're 've 'm 'll 'd``, letter runs, single digits, runs of
other non-space characters); UTF-8 bytes as byte symbols; then the ranked merges, the last symbol
of a piece marked ``</w>``. The special tokens ``<|startoftext|>`` and ``<|endoftext|>`` in the
text are kept whole.

:func:`count_prompt_tokens` counts as A1111's ``update_token_counter``: extra-network tags out,
the positive prompt split at ``AND``, every text of every part's schedule chunked (emphasis,
BREAK and the comma back-track included), and the largest count shown against its chunk limit.
"""

from __future__ import annotations

import itertools
import json
import threading
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from stablenew_qt.core.prompt_chunks import (
    DEFAULT_COMMA_BACKTRACK,
    ChunkSpec,
    Emphasis,
    chunk_prompt,
    target_token_count,
)
from stablenew_qt.core.prompt_parser import extract_extra_networks, prompt_schedule, split_and

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"
_CONTRACTIONS = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d")
# Unicode White_Space (what the Rust regex ``\s`` of the reference tokenizer matches).
_WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def default_tokenizer_dir() -> Path:
    """The CLIP vocabulary shipped with the package."""
    return Path(__file__).resolve().parent.parent / "engine" / "configs" / "clip-tokenizer"


def _byte_symbols() -> list[str]:
    """The printable stand-in of each byte 0..255, as byte-level BPE vocabularies spell bytes."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in visible else chr(next(extra)) for b in range(256)]


_BYTE_SYMBOLS = _byte_symbols()


class ClipTokenizer:
    """CLIP BPE over a ``vocab.json`` and ``merges.txt``; ``encode`` gives ids without start/end."""

    def __init__(self, folder: Path) -> None:
        self.vocab: dict[str, int] = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
        lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
        merges = [tuple(line.split()) for line in lines if line and not line.startswith("#version")]
        self.ranks: dict[tuple[str, str], int] = {(m[0], m[1]): i for i, m in enumerate(merges)}
        self.start_id = self.vocab[START_TOKEN]
        self.end_id = self.vocab[END_TOKEN]
        self.comma_id = self.vocab.get("," + END_OF_WORD)
        self._word_cache: dict[str, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    def encode(self, text: str) -> list[int]:
        """The token ids of ``text`` (``CLIPTokenizer(text, add_special_tokens=False)``)."""
        ids: list[int] = []
        for piece in _pieces(_normalize(text)):
            if piece in (START_TOKEN, END_TOKEN):
                ids.append(self.vocab[piece])
            else:
                ids.extend(self._word_ids(piece))
        return ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """:meth:`encode` for each text."""
        return [self.encode(text) for text in texts]

    def _word_ids(self, word: str) -> tuple[int, ...]:
        cached = self._word_cache.get(word)
        if cached is None:
            symbols = "".join(_BYTE_SYMBOLS[b] for b in word.encode("utf-8"))
            cached = tuple(self.vocab[token] for token in self._bpe(symbols))
            with self._lock:
                if len(self._word_cache) > 50_000:
                    self._word_cache.clear()
                self._word_cache[word] = cached
        return cached

    def _bpe(self, symbols: str) -> list[str]:
        """Merge the lowest-ranked adjacent pair, everywhere it occurs, until no pair has a rank."""
        parts = [*symbols[:-1], symbols[-1] + END_OF_WORD]
        while len(parts) > 1:
            best: tuple[int, str, str] | None = None
            for first, second in itertools.pairwise(parts):
                rank = self.ranks.get((first, second))
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, first, second)
            if best is None:
                break
            parts = _merge_pair(parts, best[1], best[2])
        return parts


def _merge_pair(parts: list[str], first: str, second: str) -> list[str]:
    merged: list[str] = []
    i = 0
    while i < len(parts):
        if i + 1 < len(parts) and parts[i] == first and parts[i + 1] == second:
            merged.append(first + second)
            i += 2
        else:
            merged.append(parts[i])
            i += 1
    return merged


def _normalize(text: str) -> str:
    # Lower case per character, as the reference normalizer does (no final-sigma rule).
    return "".join(char.lower() for char in unicodedata.normalize("NFC", text))


def _kind(char: str) -> str:
    """``L`` letter, ``N`` number, ``S`` white space, ``P`` anything else (CLIP's pattern classes)."""
    if char in _WHITESPACE:
        return "S"
    category = unicodedata.category(char)[0]
    return category if category in "LN" else "P"


def _pieces(text: str) -> Iterator[str]:
    """The pieces CLIP's pre-tokenizer pattern finds, left to right, first alternative first."""
    position = 0
    while position < len(text):
        piece, position = _piece_at(text, position)
        if piece:
            yield piece


def _piece_at(text: str, position: int) -> tuple[str, int]:
    """The piece starting at ``position`` ("" for a skipped space) and where the next one starts."""
    for fixed in (START_TOKEN, END_TOKEN, *_CONTRACTIONS):
        if text.startswith(fixed, position):
            return fixed, position + len(fixed)
    kind = _kind(text[position])
    if kind == "S":
        return "", position + 1
    if kind == "N":
        return text[position], position + 1
    end = position + 1
    while end < len(text) and _kind(text[end]) == kind and not _starts_special(text, end):
        end += 1
    return text[position:end], end


def _starts_special(text: str, position: int) -> bool:
    return text.startswith(START_TOKEN, position) or text.startswith(END_TOKEN, position)


@lru_cache(maxsize=4)
def shared_tokenizer(folder: Path | None = None) -> ClipTokenizer:
    """One tokenizer per vocabulary folder, read once (about 0.3 s) and then shared."""
    return ClipTokenizer(folder if folder is not None else default_tokenizer_dir())


def count_prompt_tokens(
    prompt: str,
    steps: int = 20,
    *,
    negative: bool = False,
    emphasis: Emphasis = Emphasis.ORIGINAL,
    comma_padding_backtrack: int = DEFAULT_COMMA_BACKTRACK,
    tokenizer: ClipTokenizer | None = None,
) -> tuple[int, int]:
    """``(used, limit)`` as A1111's token counter shows it under a prompt box: ``(12, 75)``, ``(80, 150)``.

    ``steps`` is the Steps value (it decides which texts prompt editing produces); the count is
    that of the longest text. A prompt A1111 cannot parse is counted as written, as A1111 does.
    """
    tokenizer = tokenizer or shared_tokenizer()
    spec = ChunkSpec(tokenizer.start_id, tokenizer.end_id, tokenizer.comma_id, comma_padding_backtrack)
    try:
        text, _ = extract_extra_networks(prompt)
        parts = [text] if negative else [part.text for part in split_and(text)]
        texts = [scheduled for part in parts for _, scheduled in prompt_schedule(part, steps)]
        counts = [chunk_prompt(t, tokenizer.encode_batch, spec, emphasis)[1] for t in texts]
    except ValueError:
        counts = [chunk_prompt(prompt, tokenizer.encode_batch, spec, Emphasis.NONE)[1]]
    used = max(counts)
    return used, target_token_count(used)
