"""The extra-networks catalog: folders, entries, A1111's name rules, sidecars, hashes and by-hash lookup."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

import pytest
from safetensors_files import (
    SD1_ATTN2,
    lora_tensors,
    sd1_lora,
    sdxl_lora,
    write_safetensors,
)

from stablenew_qt.core.extra_networks import (
    DigestCache,
    ExtraNetworkError,
    ExtraNetworksCatalog,
    ModuleType,
    NetworkFamily,
)


@pytest.fixture
def models(tmp_path: Path) -> Path:
    (tmp_path / "models" / "Lora").mkdir(parents=True)
    return tmp_path / "models"


def lora(
    models: Path, relative: str, metadata: dict[str, str] | None = None, tensors: dict | None = None
) -> Path:
    return write_safetensors(models / "Lora" / f"{relative}.safetensors", tensors or sd1_lora(), metadata)


# -- entries -----------------------------------------------------------------------------------


def test_lists_lora_and_lycoris_with_subfolders_in_a1111_walk_order(models: Path) -> None:
    lora(models, "zeta")
    lora(models, "chars/alpha")
    lora(models, "chars/10_beta")
    lora(models, "chars/2_gamma")
    write_safetensors(models / "LyCORIS" / "loha.safetensors", {"lora_unet_x.hada_w1_a": ("F16", (4, 2))})
    (models / "Lora" / ".hidden").mkdir()
    lora(models, ".hidden/secret")
    (models / "Lora" / "empty.safetensors").write_bytes(b"")
    entries = ExtraNetworksCatalog(models).loras()
    assert [e.relative for e in entries] == ["zeta", "chars/2_gamma", "chars/10_beta", "chars/alpha", "loha"]
    assert entries[-1].folder == "models/LyCORIS" and entries[0].folder == "models/Lora"
    assert entries[1].name == "2_gamma", "A1111 names a LoRA by its file stem"


def test_pickles_and_damaged_files_are_listed_with_their_reason(models: Path) -> None:
    (models / "Lora" / "old.pt").write_bytes(b"PK\x03\x04 not really")
    (models / "Lora" / "cut.safetensors").write_bytes(struct.pack("<Q", 10_000) + b"{")
    entries = {e.name: e for e in ExtraNetworksCatalog(models).loras()}
    assert "pickle (.pt) LoRA, which can run code when loaded" in entries["old"].error
    assert "stablenew-qt convert" in entries["old"].error
    assert "does not fit the file" in entries["cut"].error and not entries["cut"].usable


def test_entry_reads_type_family_tags_alias_and_sidecars(models: Path) -> None:
    tags = json.dumps({"10_folder": {"red hat": 12, "smile": 30}, "5_other": {"red hat": 20, "": 99}})
    path = lora(
        models,
        "hat_v2",
        {"ss_output_name": "redhat", "ss_tag_frequency": tags, "ss_base_model_version": "sd_v1"},
    )
    (models / "Lora" / "hat_v2.preview.png").write_bytes(b"png")
    (models / "Lora" / "hat_v2.json").write_text(
        json.dumps({"activation text": "red hat, smiling", "preferred weight": 0.7, "notes": "n"}),
        encoding="utf-8",
    )
    (models / "Lora" / "hat_v2.txt").write_text("A hat.", encoding="utf-8")
    entry = ExtraNetworksCatalog(models).loras()[0]
    assert (entry.name, entry.alias, entry.prompt_name) == ("hat_v2", "redhat", "redhat")
    assert entry.family is NetworkFamily.SD1 and entry.family_source == "metadata"
    assert entry.network_type == "LoRA" and entry.components == {"unet", "text_encoder"}
    assert entry.training_tags == (("red hat", 32), ("smile", 30))
    assert entry.sidecars.preview == path.with_name("hat_v2.preview.png")
    assert entry.sidecars.preferred_weight == 0.7 and entry.trigger_words == "red hat, smiling"
    assert entry.sidecars.description == "A hat." and entry.sidecars.notes == "n"


def test_preview_follows_a1111s_candidates_in_order(models: Path) -> None:
    path = lora(models, "p")
    folder = path.parent
    for name in ("p.webp", "p.preview.jpg", "p.jpeg"):
        (folder / name).write_bytes(b"x")
    assert ExtraNetworksCatalog(models).loras()[0].sidecars.preview == folder / "p.preview.jpg"
    (folder / "p.png").write_bytes(b"x")
    catalog = ExtraNetworksCatalog(models)
    assert catalog.loras()[0].sidecars.preview == folder / "p.png"


@pytest.mark.parametrize(
    ("metadata", "tensors", "family", "source"),
    [
        ({"ss_base_model_version": "sdxl_base_v1-0"}, sd1_lora(), NetworkFamily.SDXL, "metadata"),
        ({"ss_v2": "True"}, sd1_lora(), NetworkFamily.SD2, "metadata"),
        (
            {"modelspec.architecture": "stable-diffusion-xl-v1-base/lora"},
            sd1_lora(),
            NetworkFamily.SDXL,
            "modelspec",
        ),
        ({"ss_base_model_version": "flux1"}, sd1_lora(), NetworkFamily.OTHER, "metadata"),
        ({}, sd1_lora(), NetworkFamily.SD1, "shapes"),
        ({}, sdxl_lora(), NetworkFamily.SDXL, "shapes"),
        ({}, lora_tensors({SD1_ATTN2: (320, 1024)}), NetworkFamily.SD2, "shapes"),
        (
            {},
            lora_tensors({"lora_te2_text_model_encoder_layers_0_mlp_fc1": (32, 32)}),
            NetworkFamily.SDXL,
            "key names",
        ),
        (
            {},
            lora_tensors({"lora_unet_input_blocks_4_1_transformer_blocks_3_attn1_to_q": (8, 8)}),
            NetworkFamily.SDXL,
            "key names",
        ),
        ({}, lora_tensors({"lora_unet_input_blocks_1_1_proj_in": (8, 8)}), NetworkFamily.SD1, "key names"),
        ({}, lora_tensors({"lora_unet_down_blocks_0_resnets_0_conv1": (8, 8)}), NetworkFamily.UNKNOWN, ""),
    ],
)
def test_family_from_metadata_then_shapes_then_key_names(
    models: Path, metadata: dict[str, str], tensors: dict, family: NetworkFamily, source: str
) -> None:
    lora(models, "f", metadata, tensors)
    entry = ExtraNetworksCatalog(models).loras()[0]
    assert (entry.family, entry.family_source) == (family, source)


def test_the_users_sd_version_choice_wins(models: Path) -> None:
    lora(models, "u", {"ss_base_model_version": "sd_v1"})
    (models / "Lora" / "u.json").write_text(json.dumps({"sd version": "SDXL"}), encoding="utf-8")
    entry = ExtraNetworksCatalog(models).loras()[0]
    assert (entry.family, entry.family_source) == (NetworkFamily.SDXL, "user metadata")


@pytest.mark.parametrize(
    ("parts", "kind"),
    [
        (
            {"lora_down.weight": ("F16", (4, 8, 3, 3)), "lora_up.weight": ("F16", (8, 4, 1, 1))},
            ModuleType.LOCON,
        ),
        (
            {
                "lora_down.weight": ("F16", (4, 8, 1, 1)),
                "lora_up.weight": ("F16", (8, 4, 1, 1)),
                "lora_mid.weight": ("F16", (4, 4, 3, 3)),
            },
            ModuleType.LORA_CP,
        ),
        (
            {
                "lora_down.weight": ("F16", (4, 8)),
                "lora_up.weight": ("F16", (8, 4)),
                "dora_scale": ("F16", (1, 8)),
            },
            ModuleType.DORA,
        ),
        ({p: ("F16", (4, 4)) for p in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")}, ModuleType.LOHA),
        (
            {"lokr_w1": ("F16", (2, 2)), "lokr_w2_a": ("F16", (4, 2)), "lokr_w2_b": ("F16", (2, 4))},
            ModuleType.LOKR,
        ),
        ({"weight": ("F16", (8,)), "on_input": ("BOOL", ())}, ModuleType.IA3),
        ({"diff": ("F16", (8, 8))}, ModuleType.FULL),
        ({"w_norm": ("F16", (8,)), "b_norm": ("F16", (8,))}, ModuleType.NORM),
        ({"oft_blocks": ("F16", (2, 4, 4))}, ModuleType.OFT),
        (
            {p: ("F16", (4, 4)) for p in ("a1.weight", "a2.weight", "b1.weight", "b2.weight")},
            ModuleType.GLORA,
        ),
    ],
)
def test_module_types_as_a1111_tells_them_apart(models: Path, parts: dict, kind: ModuleType) -> None:
    lora(models, "t", tensors={f"lora_unet_layer.{p}": v for p, v in parts.items()})
    entry = ExtraNetworksCatalog(models).loras()[0]
    assert entry.module_types == {kind} and entry.network_type == kind.value


def test_diffusers_format_keys_are_understood(models: Path) -> None:
    key = "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    tensors = {f"{key}.lora_A.weight": ("F16", (4, 320)), f"{key}.lora_B.weight": ("F16", (320, 4))}
    tensors["text_encoder_2.text_model.encoder.layers.0.self_attn.q_proj.lora_A.weight"] = ("F16", (4, 1280))
    lora(models, "d", tensors=tensors)
    entry = ExtraNetworksCatalog(models).loras()[0]
    assert entry.module_count == 2 and entry.components == {"unet", "text_encoder_2"}
    assert entry.family is NetworkFamily.SDXL and entry.network_type == "LoRA"


# -- names ------------------------------------------------------------------------------------


def test_lookup_by_stem_alias_path_and_case(models: Path) -> None:
    lora(models, "detail_v3", {"ss_output_name": "AddDetail"})
    lora(models, "sdxl/Style", tensors=sdxl_lora())
    catalog = ExtraNetworksCatalog(models)
    assert catalog.find_lora("detail_v3").matched_by == "name"  # type: ignore[union-attr]
    assert catalog.find_lora("AddDetail").entry.name == "detail_v3"  # type: ignore[union-attr]
    assert catalog.find_lora("sdxl/Style.safetensors").matched_by == "path"  # type: ignore[union-attr]
    match = catalog.find_lora("adddetail")
    assert match is not None and match.matched_by == "case", (
        "A1111 is case-sensitive; we accept a unique case fold"
    )
    assert catalog.find_lora("nothing") is None


def test_an_alias_two_files_claim_is_forbidden_as_in_a1111(models: Path) -> None:
    lora(models, "a_first", {"ss_output_name": "shared"})
    lora(models, "b_second", {"ss_output_name": "shared"}, lora_tensors({SD1_ATTN2: (320, 768)}, rank=2))
    lora(models, "c_third", {"ss_output_name": "NONE"})
    catalog = ExtraNetworksCatalog(models)
    entries = {e.name: e for e in catalog.loras()}
    assert entries["a_first"].prompt_name == "a_first" and entries["b_second"].prompt_name == "b_second"
    assert entries["c_third"].prompt_name == "c_third", "'none' is forbidden from the start"
    with pytest.raises(ExtraNetworkError, match=r"'shared' matches several files .*\(a_first, b_second\)"):
        catalog.find_lora("shared")
    assert catalog.find_lora("b_second").entry.name == "b_second"  # type: ignore[union-attr]


def test_same_stem_in_two_folders_resolves_to_the_later_one_like_a1111(models: Path) -> None:
    lora(models, "a/dup")
    lora(models, "b/dup", tensors=lora_tensors({SD1_ATTN2: (320, 768)}, rank=2))
    catalog = ExtraNetworksCatalog(models)
    assert catalog.resolve_lora("dup").relative == "b/dup"
    assert catalog.resolve_lora("a/dup").relative == "a/dup"


def test_missing_and_unusable_loras_are_clear_errors(models: Path) -> None:
    lora(models, "add_detail")
    lora(models, "add_details_xl", tensors=sdxl_lora())
    (models / "Lora" / "old.ckpt").write_bytes(b"x")
    catalog = ExtraNetworksCatalog(models)
    with pytest.raises(
        ExtraNetworkError,
        match=r"LoRA 'add_detial' not found in .*; closest installed: add_detail, add_details_xl",
    ):
        catalog.resolve_lora("add_detial")
    with pytest.raises(ExtraNetworkError, match=r"LoRA 'old': old.ckpt is a pickle"):
        catalog.resolve_lora("old")
    empty = ExtraNetworksCatalog(models.parent / "nowhere" / "models")
    with pytest.raises(ExtraNetworkError, match="no LoRA is installed there"):
        empty.resolve_lora("x")


def test_refresh_sees_new_changed_and_removed_files(models: Path) -> None:
    first = lora(models, "one")
    catalog = ExtraNetworksCatalog(models)
    assert [e.name for e in catalog.loras()] == ["one"]
    lora(models, "two")
    first.unlink()
    catalog.refresh()
    assert [e.name for e in catalog.loras()] == ["two"]


# -- hashes ------------------------------------------------------------------------------------


def _addnet(path: Path) -> str:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    return hashlib.sha256(data[8 + length :]).hexdigest()


def test_lora_hash_is_a1111s_addnet_hash_and_survives_metadata_edits(models: Path) -> None:
    path = lora(models, "h", {"ss_output_name": "x"})
    catalog = ExtraNetworksCatalog(models, digests=DigestCache())
    entry = catalog.loras()[0]
    assert catalog.lora_hash(entry) == _addnet(path)[:12]
    lora(models, "h", {"ss_output_name": "renamed", "extra": "key"})  # same tensors, new header
    catalog.refresh()
    assert catalog.lora_hash(catalog.loras()[0]) == _addnet(path)[:12]
    assert hashlib.sha256(path.read_bytes()).hexdigest()[:12] != _addnet(path)[:12]


def test_sshs_model_hash_is_used_when_present(models: Path) -> None:
    lora(models, "m", {"sshs_model_hash": "ABCDEF0123456789" * 4})
    catalog = ExtraNetworksCatalog(models)
    assert catalog.lora_hash(catalog.loras()[0]) == "abcdef012345"


def test_hashes_are_cached_by_size_and_mtime(models: Path, tmp_path: Path) -> None:
    path = lora(models, "c")
    digests = DigestCache(tmp_path / "hashes.json")
    catalog = ExtraNetworksCatalog(models, digests=digests)
    entry = catalog.loras()[0]
    catalog.lora_hash(entry)
    catalog.lora_hash(entry)
    assert digests.computed == 1
    again = DigestCache(tmp_path / "hashes.json")
    assert again.cached(path, "addnet") == _addnet(path), "kept across runs"
    os.utime(path, ns=(1, 1))
    assert again.cached(path, "addnet") is None, "a touched file is hashed again"


def test_find_by_hash_hashes_only_what_it_must(models: Path) -> None:
    lora(models, "a", tensors=lora_tensors({SD1_ATTN2: (320, 768)}, rank=1))
    target = lora(models, "b", tensors=lora_tensors({SD1_ATTN2: (320, 768)}, rank=2))
    lora(models, "c", tensors=lora_tensors({SD1_ATTN2: (320, 768)}, rank=3))
    digests = DigestCache()
    catalog = ExtraNetworksCatalog(models, digests=digests)
    assert catalog.lora_by_hash(_addnet(target)[:12], compute=False) is None
    found = catalog.lora_by_hash(_addnet(target)[:12].upper())
    assert found is not None and found.name == "b" and digests.computed == 2


def test_embeddings_from_both_folders_with_family_and_ti_hash(models: Path) -> None:
    write_safetensors(
        models.parent / "embeddings" / "EasyNegative.safetensors", {"emb_params": ("F32", (8, 768))}
    )
    write_safetensors(
        models / "embeddings" / "xl" / "neg_xl.safetensors",
        {"clip_l": ("F16", (2, 768)), "clip_g": ("F16", (2, 1280))},
    )
    write_safetensors(models / "embeddings" / "EasyNegative.safetensors", {"emb_params": ("F32", (1, 768))})
    (models / "embeddings" / "bad_hands.pt").write_bytes(b"pickle bytes")
    write_safetensors(models / "embeddings" / "two.safetensors", {"a": ("F32", (1, 4)), "b": ("F32", (1, 4))})
    catalog = ExtraNetworksCatalog(models)
    entries = {e.name: e for e in catalog.embeddings()}
    assert list(entries) == ["bad_hands", "EasyNegative", "neg_xl", "two"]
    easy = entries["EasyNegative"]
    assert easy.folder == "embeddings" and easy.vectors == 8 and easy.family is NetworkFamily.SD1
    assert (entries["neg_xl"].family, entries["neg_xl"].widths) == (NetworkFamily.SDXL, (768, 1280))
    assert entries["bad_hands"].usable and entries["bad_hands"].vectors is None
    assert "holds 2 tensors" in entries["two"].error
    whole = hashlib.sha256(easy.path.read_bytes()).hexdigest()[:12]
    assert catalog.embedding_hash(easy) == whole, "TI hashes: the whole file's SHA-256"
    assert catalog.embedding_by_hash(whole) == easy
    with pytest.raises(
        ExtraNetworkError, match=r"embedding 'easynegativ' not found .*closest installed: EasyNegative"
    ):
        catalog.resolve_embedding("easynegativ")
