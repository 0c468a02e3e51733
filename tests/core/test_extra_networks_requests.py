"""LoRA tags to checked requests, hypernetwork warnings, restoring hashes, and the embedding index."""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from safetensors_files import SD1_ATTN2, lora_tensors, sd1_lora, sdxl_lora, write_safetensors

from stablenew_qt.core.extra_networks import (
    EmbeddingIndex,
    ExtraNetworksCatalog,
    IndexedEmbedding,
    LoraRequest,
    NetworkFamily,
    check_loras,
    hypernetwork_warnings,
    ignored_dyn_warnings,
    lora_requests,
    parse_network_hashes,
    restore_embedding_names,
    restore_lora_names,
)


@dataclass(frozen=True)
class Tag:
    """A parsed ``<name:args>`` tag, split like ``core.prompt_parser.ExtraNetworkTag``."""

    name: str
    args: tuple[str, ...]
    positional: tuple[str, ...] = field(init=False)
    named: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        pairs = [a.split("=", 1) for a in self.args]
        object.__setattr__(
            self, "positional", tuple(a for a, p in zip(self.args, pairs, strict=True) if len(p) != 2)
        )
        object.__setattr__(self, "named", {p[0]: p[1] for p in pairs if len(p) == 2})


def tag(text: str) -> Tag:
    kind, _, rest = text.strip("<>").partition(":")
    return Tag(kind, tuple(rest.split(":")))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<lora:detail>", LoraRequest("detail", 1.0, 1.0)),
        ("<lora:detail:0.8>", LoraRequest("detail", 0.8, 0.8)),
        ("<lora:detail:0.8:0.3>", LoraRequest("detail", 0.8, 0.3)),
        ("<lora:detail:te=0.2>", LoraRequest("detail", 0.2, 0.2)),
        ("<lora:detail:1:unet=0.5>", LoraRequest("detail", 1.0, 0.5)),
        ("<lora:detail:0.9:0.4:te=0.1>", LoraRequest("detail", 0.1, 0.4)),
        ("<lyco:loha_style:0.6>", LoraRequest("loha_style", 0.6, 0.6)),
    ],
)
def test_a1111_tag_forms(text: str, expected: LoraRequest) -> None:
    requests, problems = lora_requests([tag(text)])
    assert requests == [expected] and problems == []


def test_repeated_names_count_and_keep_the_last_weights() -> None:
    requests, _ = lora_requests(
        [tag("<lora:a:0.5>"), tag("<lora:b>"), tag("<lora:a:0.9:0.1>"), tag("<hypernet:h:1>")]
    )
    assert requests == [LoraRequest("a", 0.9, 0.1, count=2), LoraRequest("b", 1.0, 1.0)]


def test_bad_numbers_and_names_are_problems() -> None:
    _, problems = lora_requests([tag("<lora:a:strong>"), tag("<lora::1>"), tag("<lora:b:1:inf>")])
    assert [p.message for p in problems] == [
        "<lora:a:strong>: the te weight 'strong' is not a number",
        "<lora::1>: a LoRA tag must start with the LoRA's name, e.g. <lora:add_detail:0.8>",
        "<lora:b:1:inf>: the unet weight 'inf' is not a finite number",
    ]
    assert all(p.field == "prompt" for p in problems)


def test_hypernetworks_and_dyn_get_warnings() -> None:
    tags = [tag("<hypernet:anime:0.5>"), tag("<lora:a:1:1:8>"), tag("<lora:b:dyn=4>"), tag("<lora:c:1>")]
    assert hypernetwork_warnings(tags) == [
        "hypernetworks are not supported; <hypernet:anime:0.5> was removed"
    ]
    assert ignored_dyn_warnings(tags) == [
        "<lora:a:1:1:8>: dyn (rank truncation) is not supported and was ignored",
        "<lora:b:dyn=4>: dyn (rank truncation) is not supported and was ignored",
    ]


def test_check_loras_before_anything_loads(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_safetensors(models / "Lora" / "sd1.safetensors", sd1_lora())
    write_safetensors(
        models / "Lora" / "xl.safetensors", sdxl_lora(), {"ss_base_model_version": "sdxl_base_v1-0"}
    )
    write_safetensors(models / "Lora" / "oft.safetensors", {"lora_unet_x.oft_blocks": ("F16", (2, 4, 4))})
    (models / "Lora" / "old.pt").write_bytes(b"x")
    requests = [LoraRequest(n) for n in ("sd1", "xl", "oft", "old", "sd_1")]
    resolved, problems = check_loras(requests, ExtraNetworksCatalog(models), NetworkFamily.SD1, "v1-5-pruned")
    assert list(resolved) == ["sd1"]
    messages = [p.message for p in problems]
    assert messages[0].startswith(
        "LoRA 'xl' was made for SDXL but the model 'v1-5-pruned' is SD 1.x (family from metadata)"
    )
    assert messages[1].startswith("LoRA 'oft' uses OFT modules, which this app cannot apply yet")
    assert "old.pt is a pickle" in messages[2]
    assert "LoRA 'sd_1' not found" in messages[3] and "closest installed: sd1" in messages[3]


# -- restoring an image's hashes ---------------------------------------------------------------


def _addnet(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha256(data[8 + struct.unpack("<Q", data[:8])[0] :]).hexdigest()[:12]


def test_parse_hashes_as_a1111_splits_them() -> None:
    assert parse_network_hashes('"add_detail: 0123456789AB, style v2: ba9876543210"') == {
        "add_detail": "0123456789ab",
        "style v2": "ba9876543210",
    }
    assert parse_network_hashes("garbage, :x") == {}


def test_lora_hash_wins_over_the_name_then_the_name_then_missing(tmp_path: Path) -> None:
    models = tmp_path / "models"
    renamed = write_safetensors(
        models / "Lora" / "detail_renamed.safetensors", lora_tensors({SD1_ATTN2: (320, 768)}, rank=2)
    )
    other = write_safetensors(
        models / "Lora" / "style.safetensors", lora_tensors({SD1_ATTN2: (320, 768)}, rank=3)
    )
    catalog = ExtraNetworksCatalog(models)
    prompt = "a <lora:add_detail:0.8> and <lora:style:1> and <lyco:gone:0.5>, <lora:add_detail:0.2>"
    hashes = f"add_detail: {_addnet(renamed)}, style: 000000000000, gone: ffffffffffff"
    restored, notes = restore_lora_names(prompt, hashes, catalog)
    assert (
        restored
        == "a <lora:detail_renamed:0.8> and <lora:style:1> and <lyco:gone:0.5>, <lora:detail_renamed:0.2>"
    )
    assert [(n.written, n.found, n.local, n.hash_differs) for n in notes] == [
        ("add_detail", "hash", "detail_renamed", False),
        ("style", "name", "style", True),
        ("gone", "missing", None, False),
    ]
    assert notes[2].message == "LoRA 'gone' is not installed (neither its name nor its hash was found)"
    assert _addnet(other) != "000000000000"


def test_embedding_names_then_hashes(tmp_path: Path) -> None:
    models = tmp_path / "models"
    local = write_safetensors(
        models / "embeddings" / "EasyNeg_v2.safetensors", {"emb_params": ("F32", (2, 768))}
    )
    write_safetensors(models / "embeddings" / "badhand.safetensors", {"emb_params": ("F32", (1, 768))})
    catalog = ExtraNetworksCatalog(models)
    whole = hashlib.sha256(local.read_bytes()).hexdigest()[:12]
    (prompt, negative), notes = restore_embedding_names(
        ("portrait", "EasyNegative, easynegative:1.2, badhand, lost"),
        f"EasyNegative: {whole}, badhand: 111111111111, lost: 222222222222",
        catalog,
    )
    assert negative == "EasyNeg_v2, EasyNeg_v2:1.2, badhand, lost" and prompt == "portrait"
    assert [(n.written, n.found, n.hash_differs) for n in notes] == [
        ("EasyNegative", "hash", False),
        ("badhand", "name", True),
        ("lost", "missing", False),
    ]


# -- embedding index ----------------------------------------------------------------------------


def test_index_prefers_the_longest_and_replaces_by_name() -> None:
    index = EmbeddingIndex([IndexedEmbedding("bad", (5, 6), 1), IndexedEmbedding("bad_hands", (5, 6, 7), 4)])
    assert index.match_at([1, 5, 6, 7], 1) == index.match_at([5, 6, 7], 0)
    match = index.match_at([5, 6, 7], 0)
    assert match is not None and (match.name, match.vectors, match.length_in_tokens) == ("bad_hands", 4, 3)
    assert index.match_at([5, 6, 8], 0).name == "bad"  # type: ignore[union-attr]
    index.register(IndexedEmbedding("bad_hands", (9,), 2))
    assert index.match_at([5, 6, 7], 0).name == "bad" and index.match_at([9], 0).vectors == 2  # type: ignore[union-attr]
    assert [(p, m.name) for p, m in index.find_all([9, 5, 6, 9, 1])] == [
        (0, "bad_hands"),
        (1, "bad"),
        (3, "bad_hands"),
    ]
    assert index.match_at([5], 3) is None and len(index) == 2
    index.register(IndexedEmbedding("nothing", (), 3))
    assert "nothing" not in index.names()


def test_an_images_config_gets_its_loras_and_embeddings_back_by_hash(tmp_path: Path) -> None:
    from stablenew_qt.core.config import RunConfig
    from stablenew_qt.core.extra_networks import restore_networks_in_config

    models = tmp_path / "models"
    renamed = write_safetensors(
        models / "Lora" / "detail_v2.safetensors", lora_tensors({SD1_ATTN2: (320, 768)}, rank=2)
    )
    emb = write_safetensors(
        models / "embeddings" / "neg_local.safetensors", {"emb_params": ("F32", (2, 768))}
    )
    catalog = ExtraNetworksCatalog(models)
    config = RunConfig.from_dict(
        {
            "prompt": "a cat <lora:add_detail:0.8>",
            "negative_prompt": "EasyNeg, <lora:gone:1>",
            "txt2img": {"hires_enabled": True, "hires_prompt": "a cat <lora:add_detail:0.4>"},
        }
    )
    ti = hashlib.sha256(emb.read_bytes()).hexdigest()[:12]
    parameters = (
        f"{config.prompt}\nNegative prompt: {config.negative_prompt}\nSteps: 20, Seed: 1, "
        f'Lora hashes: "add_detail: {_addnet(renamed)}, gone: ffffffffffff", TI hashes: "EasyNeg: {ti}"'
    )
    restored, notes = restore_networks_in_config(config, parameters, catalog)
    assert restored.prompt == "a cat <lora:detail_v2:0.8>"
    assert restored.txt2img.hires_prompt == "a cat <lora:detail_v2:0.4>"
    assert restored.negative_prompt == "neg_local, <lora:gone:1>"
    assert {(n.kind, n.written, n.found, n.local) for n in notes} == {
        ("lora", "add_detail", "hash", "detail_v2"),
        ("lora", "gone", "missing", None),
        ("embedding", "EasyNeg", "hash", "neg_local"),
    }
    assert restored.seed == config.seed and restored.txt2img.hires_enabled


def test_a_configs_tags_are_checked_with_or_without_the_checkpoint_family(tmp_path: Path) -> None:
    from stablenew_qt.core.config import RunConfig
    from stablenew_qt.core.extra_networks.run_check import check_config_networks

    models = tmp_path / "models"
    write_safetensors(models / "Lora" / "xl_style.safetensors", sdxl_lora())
    catalog = ExtraNetworksCatalog(models)
    config = RunConfig.from_dict(
        {
            "prompt": "a <lora:xl_style:1> <lora:nope:1> <hypernet:old:1>",
            "img2img": {"enabled": True, "model": "other", "prompt": "<lora:xl_style:0.5>"},
        }
    )
    families = {"": NetworkFamily.SD1, "other": NetworkFamily.SDXL}
    problems, warnings = check_config_networks(config, catalog, families.get)
    assert [(p.field, p.message.split(" ")[1]) for p in problems] == [
        ("prompt", "'xl_style'"),
        ("prompt", "'nope'"),
    ]
    assert "made for SDXL" in problems[0].message
    assert warnings == ["hypernetworks are not supported; <hypernet:old:1> was removed"]
    names_only, _ = check_config_networks(config, catalog, lambda _model: None)
    assert [p.message.split(" ")[1] for p in names_only] == ["'nope'"]
