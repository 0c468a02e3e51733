"""Textual-inversion embeddings: A1111's formats, fit checks, token-id matching and the splice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from lora_files import write, write_pt_embedding

from stablenew_qt.core.extra_networks import ExtraNetworksCatalog
from stablenew_qt.engine.embeddings import EmbeddingLibrary, EmbeddingStore, encoder_slots, load_embedding
from stablenew_qt.engine.errors import ModelError
from stablenew_qt.engine.pipelines import PipelineCache

WIDTH = 32  # the demo text encoders' width (768 / 1280 on real models)


@pytest.fixture
def sd15(pipeline_cache: PipelineCache) -> Any:
    return pipeline_cache.base("demo-tiny-sd15").pipe


@pytest.fixture
def embeddings_dir(models_dir: Path) -> Path:
    folder = models_dir / "embeddings"
    folder.mkdir()
    return folder


def vectors(n: int, width: int = WIDTH, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, width, generator=torch.Generator().manual_seed(seed))


# -- formats ------------------------------------------------------------------------------------


def test_a1111_pt_file_is_named_by_its_stem_not_the_name_inside(tmp_path: Path) -> None:
    path = write_pt_embedding(tmp_path / "MyStyle.pt", vectors(3), stored_name="trained-as-something")
    loaded = load_embedding(path)
    assert loaded.name == "MyStyle" and loaded.count == 3 and torch.equal(loaded.vectors[""], vectors(3))


def test_safetensors_single_tensor_and_sdxl_pair_and_concept_bin(tmp_path: Path) -> None:
    single = load_embedding(write(tmp_path / "neg.safetensors", {"emb_params": vectors(2)}))
    assert single.count == 2 and not single.is_sdxl and single.shape == WIDTH
    pair = load_embedding(
        write(tmp_path / "xl.safetensors", {"clip_l": vectors(4, 768), "clip_g": vectors(4, 1280)})
    )
    assert pair.is_sdxl and pair.count == 4 and pair.shape == 2048
    concept = tmp_path / "learned_embeds.bin"
    torch.save({"<cat-toy>": torch.ones(WIDTH)}, concept)
    loaded = load_embedding(concept)
    assert loaded.count == 1 and loaded.name == "learned_embeds"


class _NotATensor:
    pass


def test_a_pickle_with_python_objects_is_refused_without_running_it(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"string_to_param": {"*": vectors(1)}, "extra": _NotATensor()}, path)
    with pytest.raises(
        ModelError, match=r"embedding 'evil' \(evil.pt\) holds Python objects besides tensors"
    ):
        load_embedding(path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"string_to_param": {"*": vectors(1), "#": vectors(1)}}, "exactly one term"),
        ({"a": vectors(1), "b": vectors(1)}, "neither an A1111 embedding"),
        ({"string_to_param": {"*": vectors(80)}}, "80 vectors; at most 75"),
        ({"clip_l": vectors(2, 768), "clip_g": vectors(3, 1280)}, "different number of clip_l and clip_g"),
        ({"string_to_param": {"*": torch.zeros(2, 3, dtype=torch.int64)}}, "floating-point"),
    ],
)
def test_malformed_embeddings_are_clear_errors(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    path = tmp_path / "bad.pt"
    torch.save(data, path)
    with pytest.raises(ModelError, match=message):
        load_embedding(path)


# -- fit and lookup ----------------------------------------------------------------------------


def test_library_keeps_what_fits_and_explains_the_rest(sd15: Any, embeddings_dir: Path) -> None:
    write_pt_embedding(embeddings_dir / "MyStyle.pt", vectors(2))
    write(embeddings_dir / "xlonly.safetensors", {"clip_l": vectors(1, 768), "clip_g": vectors(1, 1280)})
    write(embeddings_dir / "wide.safetensors", {"emb_params": vectors(1, 768)})
    (embeddings_dir / "broken.pt").write_bytes(b"not a pickle at all")
    catalog = ExtraNetworksCatalog(embeddings_dir.parent)
    library = EmbeddingStore().library_for(sd15, catalog.embeddings())
    assert library.names() == ("MyStyle",)
    assert set(library.unavailable) == {"xlonly", "wide", "broken"}
    tokens = _ids(sd15, "a wide shot, xlonly, broken, mystyle")
    plain_words = "its name is read as plain words (as A1111 does)"
    assert library.unavailable_in(tokens) == [
        "embedding 'wide' does not fit this model: it has 1 vector of width 768, the text encoders take "
        f"sd1-clip-l {WIDTH}; {plain_words}",
        "embedding 'xlonly' does not fit this model: it has 1 vector of width clip_l 768 + clip_g 1280, "
        f"the text encoders take sd1-clip-l {WIDTH}; {plain_words}",
        "embedding 'broken' (broken.pt) cannot be read (damaged, or not an embedding)",
    ]


def _ids(pipe: Any, text: str) -> list[int]:
    return list(pipe.tokenizer(text, add_special_tokens=False)["input_ids"])


def test_matching_is_by_token_ids_case_insensitive_and_whole_tokens(sd15: Any, tmp_path: Path) -> None:
    embedding = load_embedding(write(tmp_path / "MyStyle.safetensors", {"emb_params": vectors(3)}))
    library = EmbeddingLibrary([embedding], encoder_slots(sd15), lambda t: _ids(sd15, t))
    for text in ("MyStyle", "mystyle", "MYSTYLE"):
        match = library.match_at(_ids(sd15, text), 0)
        assert match is not None and (match.name, match.vectors) == ("MyStyle", 3)
    assert library.match_at(_ids(sd15, "mystyles"), 0) is None, "only whole tokens match"
    assert library.match_at(_ids(sd15, "my style"), 0) is None


def test_the_longest_name_wins_where_both_fit(sd15: Any, tmp_path: Path) -> None:
    short = load_embedding(write(tmp_path / "bad.safetensors", {"emb_params": vectors(1)}))
    long = load_embedding(write(tmp_path / "bad_hands.safetensors", {"emb_params": vectors(2)}))
    library = EmbeddingLibrary([short, long], encoder_slots(sd15), lambda t: _ids(sd15, t))
    assert library.match_at(_ids(sd15, "bad_hands"), 0).name == "bad_hands"  # type: ignore[union-attr]
    assert library.match_at(_ids(sd15, "bad"), 0).name == "bad"  # type: ignore[union-attr]


def test_sdxl_gets_each_encoder_its_own_vectors(pipeline_cache: PipelineCache, tmp_path: Path) -> None:
    pipe = pipeline_cache.base("demo-tiny-sdxl").pipe
    l_vectors, g_vectors = vectors(2, seed=1), vectors(2, seed=2)
    pair = load_embedding(write(tmp_path / "xl.safetensors", {"clip_l": l_vectors, "clip_g": g_vectors}))
    sd1 = load_embedding(write(tmp_path / "sd1.safetensors", {"emb_params": vectors(1)}))
    library = EmbeddingLibrary([pair, sd1], encoder_slots(pipe), lambda t: _ids(pipe, t))
    assert torch.equal(library.vectors_for("sdxl-clip-l", "xl"), l_vectors)
    assert torch.equal(library.vectors_for("sdxl-clip-g", "xl"), g_vectors)
    assert "sd1" in library.unavailable, "A1111 skips an SD 1.x embedding on SDXL"


def test_the_refiner_skips_sdxl_pairs_as_a1111_does(pipeline_cache: PipelineCache, tmp_path: Path) -> None:
    base = pipeline_cache.base("demo-tiny-sdxl")
    refiner = pipeline_cache.refiner("demo-tiny-sdxl-refiner", base).pipe
    pair = load_embedding(write(tmp_path / "xl.safetensors", {"clip_l": vectors(1), "clip_g": vectors(1)}))
    tokenize = lambda text: list(refiner.tokenizer_2(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    library = EmbeddingLibrary([pair], encoder_slots(refiner), tokenize)
    assert library.names() == () and "xl" in library.unavailable


def test_store_reads_each_file_once_across_models(
    pipeline_cache: PipelineCache, embeddings_dir: Path
) -> None:
    write(embeddings_dir / "a.safetensors", {"emb_params": vectors(1)})
    write_pt_embedding(embeddings_dir / "b.pt", vectors(2))
    catalog = ExtraNetworksCatalog(embeddings_dir.parent)
    store = EmbeddingStore()
    first = store.library_for(pipeline_cache.base("demo-tiny-sd15").pipe, catalog.embeddings())
    store.library_for(pipeline_cache.base("demo-tiny-sd15-inpaint").pipe, catalog.embeddings())
    assert store.library_for(pipeline_cache.base("demo-tiny-sd15").pipe, catalog.embeddings()) is first
    assert store.loads == 2


# -- the splice the conditioning encoder performs (A1111's EmbeddingsWithFixes, written here) ----


def _chunk(pipe: Any, library: EmbeddingLibrary, text: str) -> tuple[list[int], list[tuple[int, str]]]:
    """One 77-token chunk of ``text`` as A1111 lays it out: id 0 where an embedding's vectors go."""
    tokenizer = pipe.tokenizer
    ids = _ids(pipe, text)
    chunk: list[int] = []
    fixes: list[tuple[int, str]] = []
    position = 0
    while position < len(ids):
        match = library.match_at(ids, position)
        if match is None:
            chunk.append(ids[position])
            position += 1
            continue
        fixes.append((len(chunk), match.name))
        chunk += [0] * match.vectors
        position += match.length_in_tokens
    row = [tokenizer.bos_token_id, *chunk, tokenizer.eos_token_id]
    return row + [tokenizer.eos_token_id] * (77 - len(row)), fixes


def _encode(
    pipe: Any, library: EmbeddingLibrary, row: list[int], fixes: list[tuple[int, str]]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings and hidden states of ``row`` with ``fixes`` spliced at ``offset + 1``."""
    seen: list[torch.Tensor] = []

    def splice(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        row_embeds = output[0]
        for offset, name in fixes:
            emb = library.vectors_for("sd1-clip-l", name).to(row_embeds.dtype)
            length = min(row_embeds.shape[0] - offset - 1, emb.shape[0])
            row_embeds = torch.cat(
                [row_embeds[: offset + 1], emb[:length], row_embeds[offset + 1 + length :]]
            )
        seen.append(row_embeds)
        return row_embeds.unsqueeze(0)

    handle = pipe.text_encoder.get_input_embeddings().register_forward_hook(splice)
    try:
        with torch.no_grad():
            hidden = pipe.text_encoder(torch.tensor([row])).last_hidden_state[0]
    finally:
        handle.remove()
    return seen[0], hidden


def test_an_embedding_changes_only_its_own_positions(sd15: Any, tmp_path: Path) -> None:
    embedding = load_embedding(write(tmp_path / "MyStyle.safetensors", {"emb_params": vectors(3, seed=5)}))
    library = EmbeddingLibrary([embedding], encoder_slots(sd15), lambda t: _ids(sd15, t))
    row, fixes = _chunk(sd15, library, "a cat, MyStyle")
    assert len(fixes) == 1 and row.count(0) >= 3
    start = fixes[0][0] + 1
    embeds, hidden = _encode(sd15, library, row, fixes)
    assert torch.equal(embeds[start : start + 3], vectors(3, seed=5))
    plain_embeds, plain_hidden = _encode(sd15, library, row, [])  # the same ids, nothing spliced
    changed = (embeds != plain_embeds).any(dim=1).nonzero().flatten().tolist()
    assert changed == [start, start + 1, start + 2]
    assert torch.equal(hidden[:start], plain_hidden[:start]), "CLIP is causal: earlier tokens unchanged"
    assert not torch.equal(hidden[start:], plain_hidden[start:])
    upper_row, upper_fixes = _chunk(sd15, library, "A CAT, MYSTYLE")
    assert (upper_row, upper_fixes) == (row, fixes), "case does not matter: the tokenizer lower-cases"
    assert torch.equal(_encode(sd15, library, upper_row, upper_fixes)[1], hidden)
