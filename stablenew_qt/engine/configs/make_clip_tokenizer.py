"""Rebuild CLIP's BPE tokenizer files (``vocab.json``, ``merges.txt``) from OpenAI's merge list.

The merge list ships as ``open_clip/bpe_simple_vocab_16e6.txt.gz`` inside the ``open-clip-torch``
wheel. Stable Diffusion's tokenizers (SD 1.x ``tokenizer``, SDXL ``tokenizer`` and ``tokenizer_2``)
all use this vocabulary: 256 byte symbols, the same with ``</w>``, one token per merge, then
``<|startoftext|>`` and ``<|endoftext|>``, 49408 tokens in all.

Usage (run once; the output is committed to ``configs/clip-tokenizer/``)::

    pip download --no-deps open-clip-torch -d /tmp/oc
    unzip -o /tmp/oc/open_clip_torch-*.whl open_clip/bpe_simple_vocab_16e6.txt.gz -d /tmp/oc
    python make_clip_tokenizer.py /tmp/oc/open_clip/bpe_simple_vocab_16e6.txt.gz [OUTPUT_DIR]

Standard library only, so it runs without the app's dependencies.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

VOCAB_SIZE = 49408
SPECIAL_TOKENS = ("<|startoftext|>", "<|endoftext|>")
# The merges that CLIP uses: the vocabulary minus the 512 byte symbols and the 2 special tokens.
MERGE_COUNT = VOCAB_SIZE - 2 * 256 - len(SPECIAL_TOKENS)
MERGES_HEADER = "#version: 0.2"


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for raw bytes, in CLIP's (and GPT-2's) vocabulary order.

    Bytes that are already visible characters map to themselves and come first, in byte order;
    the rest (control characters, space, a few Latin-1 ones) map to code points from 256 up.
    """
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    hidden = [b for b in range(256) if b not in visible]
    return [chr(b) for b in visible] + [chr(256 + i) for i in range(len(hidden))]


def read_merges(gz_path: Path) -> list[tuple[str, str]]:
    """The first ``MERGE_COUNT`` merges of the gzipped list, skipping its one header line."""
    lines = gzip.decompress(gz_path.read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 1 + MERGE_COUNT]]
    if len(merges) != MERGE_COUNT or any(len(m) != 2 for m in merges):
        raise ValueError(f"{gz_path} does not hold {MERGE_COUNT} two-part merges after its header")
    return [(m[0], m[1]) for m in merges]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """Token -> id: byte symbols, byte symbols with ``</w>``, merged pairs, special tokens."""
    symbols = byte_symbols()
    tokens = [*symbols, *(s + "</w>" for s in symbols), *(a + b for a, b in merges), *SPECIAL_TOKENS]
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"built {len(vocab)} distinct tokens, expected {VOCAB_SIZE}")
    return vocab


def write_tokenizer_files(gz_path: Path, out_dir: Path) -> None:
    """Write ``vocab.json`` and ``merges.txt`` for ``CLIPTokenizer.from_pretrained`` into ``out_dir``."""
    merges = read_merges(gz_path)
    vocab = build_vocab(merges)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.json").write_text(
        json.dumps(vocab, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
    )
    merge_lines = [MERGES_HEADER, *(f"{a} {b}" for a, b in merges)]
    (out_dir / "merges.txt").write_text("\n".join(merge_lines) + "\n", encoding="utf-8")


def main(argv: list[str]) -> int:
    """Command line: ``make_clip_tokenizer.py BPE_GZ [OUTPUT_DIR]``; defaults to ``clip-tokenizer/``."""
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[2]) if len(argv) == 3 else Path(__file__).with_name("clip-tokenizer")
    write_tokenizer_files(Path(argv[1]), out_dir)
    print(f"wrote {out_dir / 'vocab.json'} and {out_dir / 'merges.txt'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
