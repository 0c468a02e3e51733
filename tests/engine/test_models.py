"""Model catalog, family detection, AutoV2 hashing and the no-pickle-trust rules.

Everything here runs on synthetic files written in tmp_path: safetensors files that hold only the
tensor names and (small) shapes detection looks at, and diffusers folders that hold only configs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import platformdirs
import pytest
from safetensors import safe_open
from safetensors.numpy import save_file

from stablenew_qt.engine import hashing
from stablenew_qt.engine.errors import ModelError
from stablenew_qt.engine.family import (
    ModelFamily,
    describe,
    detect_family,
    family_is_compatible,
    safetensors_shapes,
)
from stablenew_qt.engine.hashing import HashCache, model_hash
from stablenew_qt.engine.models import ModelCatalog, ModelEntry
from stablenew_qt.engine.safety import (
    PICKLE_SUFFIXES,
    check_loadable_checkpoint,
    convert_to_safetensors,
)

UNET_CONV = "model.diffusion_model.input_blocks.0.0.weight"
SD1_TE = "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"
SD2_TE = "cond_stage_model.model.token_embedding.weight"
XL_TE1 = "conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight"
XL_TE2 = "conditioner.embedders.1.model.positional_embedding"
REFINER_TE = "conditioner.embedders.0.model.text_projection"

FAMILY_HEADERS: dict[ModelFamily, dict[str, tuple[int, ...]]] = {
    ModelFamily.SD15: {SD1_TE: (77, 8), UNET_CONV: (320, 4, 3, 3)},
    ModelFamily.SD15_INPAINT: {SD1_TE: (77, 8), UNET_CONV: (320, 9, 3, 3)},
    ModelFamily.SD2: {SD2_TE: (16, 8), UNET_CONV: (320, 4, 3, 3)},
    ModelFamily.SDXL: {XL_TE1: (77, 8), XL_TE2: (77, 8), UNET_CONV: (320, 4, 3, 3)},
    ModelFamily.SDXL_INPAINT: {XL_TE1: (77, 8), XL_TE2: (77, 8), UNET_CONV: (320, 9, 3, 3)},
    ModelFamily.SDXL_REFINER: {REFINER_TE: (8, 8), UNET_CONV: (384, 4, 3, 3)},
}


def write_checkpoint(path: Path, shapes: Mapping[str, tuple[int, ...]] | None = None) -> Path:
    """A real safetensors file holding zero tensors of the given shapes (SD 1.5 by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shapes = FAMILY_HEADERS[ModelFamily.SD15] if shapes is None else shapes
    save_file({k: np.zeros(s, dtype=np.float16) for k, s in shapes.items()}, str(path))
    return path


def write_diffusers(
    folder: Path,
    *,
    te: bool = True,
    te2: bool = False,
    aesthetics: bool | None = None,
    in_channels: int = 4,
    cross_attention_dim: int = 768,
    weights: str = "diffusion_pytorch_model.safetensors",
) -> Path:
    """A diffusers pipeline folder with configs only (plus one tiny weight file)."""
    absent = [None, None]
    index: dict[str, object] = {
        "_class_name": "StableDiffusionXLPipeline" if te2 else "StableDiffusionPipeline",
        "text_encoder": ["transformers", "CLIPTextModel"] if te else absent,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    if te2:
        index["text_encoder_2"] = ["transformers", "CLIPTextModelWithProjection"]
    if aesthetics is not None:
        index["requires_aesthetics_score"] = aesthetics
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text(json.dumps(index))
    unet = {"in_channels": in_channels, "cross_attention_dim": cross_attention_dim}
    (folder / "unet" / "config.json").write_text(json.dumps(unet))
    if weights.endswith(".safetensors"):
        write_checkpoint(folder / "unet" / weights, {"conv_in.weight": (1,)})
    else:
        (folder / "unet" / weights).write_bytes(b"placeholder")
    return folder


# -- family detection -------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(FAMILY_HEADERS))
def test_detects_every_family_from_a_single_file_header(tmp_path: Path, family: ModelFamily) -> None:
    path = write_checkpoint(tmp_path / f"{family.value}.safetensors", FAMILY_HEADERS[family])
    assert detect_family(path) is family


def test_header_parser_agrees_with_the_safetensors_library(tmp_path: Path) -> None:
    shapes = {**FAMILY_HEADERS[ModelFamily.SDXL], "scalar": (), "vector": (3,)}
    path = write_checkpoint(tmp_path / "m.safetensors", shapes)
    with safe_open(str(path), framework="numpy") as f:
        expected = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    assert safetensors_shapes(path) == expected == shapes


@pytest.mark.parametrize(
    ("shapes", "fragment"),
    [
        ({"foo.weight": (2,), "bar.bias": (2,)}, "top-level names bar, foo"),
        ({"lora_unet_down.alpha": (1,)}, "looks like a LoRA"),
        ({"encoder.conv_in.weight": (2,), "decoder.conv_out.weight": (2,)}, "looks like a VAE"),
        ({SD1_TE: (77, 8)}, "no UNet"),
        ({SD1_TE: (77, 8), UNET_CONV: (320, 8, 3, 3)}, "8 input channels"),
        ({REFINER_TE: (8, 8), UNET_CONV: (384, 9, 3, 3)}, "9 input channels"),
    ],
)
def test_unrecognisable_headers_say_what_was_found(
    tmp_path: Path, shapes: dict[str, tuple[int, ...]], fragment: str
) -> None:
    path = write_checkpoint(tmp_path / "odd.safetensors", shapes)
    with pytest.raises(ModelError, match=r"odd.safetensors") as caught:
        detect_family(path)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"\x05\x00", b"\xff" * 8 + b"{}", b"\x02" + b"\x00" * 7 + b"[]"])
def test_damaged_safetensors_is_a_model_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(ModelError, match=r"broken.safetensors is not a valid model file"):
        detect_family(path)


@pytest.mark.parametrize(
    ("options", "family"),
    [
        ({}, ModelFamily.SD15),
        ({"in_channels": 9}, ModelFamily.SD15_INPAINT),
        ({"cross_attention_dim": 1024}, ModelFamily.SD2),
        ({"te2": True, "aesthetics": False}, ModelFamily.SDXL),
        ({"te2": True, "in_channels": 9}, ModelFamily.SDXL_INPAINT),
        ({"te": False, "te2": True}, ModelFamily.SDXL_REFINER),
        ({"te": True, "te2": True, "aesthetics": True}, ModelFamily.SDXL_REFINER),
    ],
)
def test_detects_families_of_diffusers_folders(
    tmp_path: Path, options: dict[str, object], family: ModelFamily
) -> None:
    assert detect_family(write_diffusers(tmp_path / "model", **options)) is family  # type: ignore[arg-type]


def test_diffusers_folders_that_are_not_sd_pipelines_are_refused(tmp_path: Path) -> None:
    no_unet = tmp_path / "flux"
    no_unet.mkdir()
    (no_unet / "model_index.json").write_text(json.dumps({"_class_name": "FluxPipeline"}))
    with pytest.raises(ModelError, match=r"unet/config.json is missing \(pipeline FluxPipeline\)"):
        detect_family(no_unet)
    with pytest.raises(ModelError, match="lists no text encoder"):
        detect_family(write_diffusers(tmp_path / "no-te", te=False))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"empty: model_index.json is missing"):
        detect_family(tmp_path / "empty")


def test_detect_family_refuses_pickles_and_missing_files(tmp_path: Path) -> None:
    ckpt = tmp_path / "old.ckpt"
    ckpt.write_bytes(b"not opened")
    with pytest.raises(ModelError, match=r"old.ckpt is a pickle \(.ckpt\) file"):
        detect_family(ckpt)
    with pytest.raises(ModelError, match="model not found"):
        detect_family(tmp_path / "gone.safetensors")


def test_describe_and_compatibility() -> None:
    assert describe(ModelFamily.SDXL) == "SDXL base"
    assert describe(ModelFamily.SDXL_REFINER) == "SDXL refiner"
    assert len({describe(f) for f in ModelFamily}) == len(ModelFamily)
    assert family_is_compatible(ModelFamily.SDXL, ModelFamily.SDXL_REFINER)
    assert family_is_compatible(ModelFamily.SDXL, ModelFamily.SDXL)
    assert family_is_compatible(ModelFamily.SDXL_INPAINT, ModelFamily.SDXL_REFINER)
    assert family_is_compatible(ModelFamily.SD15, ModelFamily.SD15)
    assert not family_is_compatible(ModelFamily.SD15, ModelFamily.SDXL_REFINER)
    assert not family_is_compatible(ModelFamily.SDXL, ModelFamily.SD15)
    assert not family_is_compatible(ModelFamily.SDXL, ModelFamily.SDXL_INPAINT)
    assert not family_is_compatible(ModelFamily.SDXL_REFINER, ModelFamily.SDXL_REFINER)
    assert not family_is_compatible(ModelFamily.SD2, ModelFamily.SD15)
    assert ModelFamily("sdxl-refiner").is_sdxl and not ModelFamily.SD15.is_sdxl
    assert ModelFamily.SD15_INPAINT.is_inpaint and not ModelFamily.SDXL.is_inpaint


# -- hashing ----------------------------------------------------------------------------------


def _count_reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    reads: list[Path] = []
    real = hashing._hash_file

    def counting(path: Path) -> str:
        reads.append(path)
        return real(path)

    monkeypatch.setattr(hashing, "_hash_file", counting)
    return reads


def test_hash_is_autov2_of_the_whole_file(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(2 * hashing.CHUNK_BYTES + 12345)  # several chunks
    path = tmp_path / "model.safetensors"
    path.write_bytes(data)
    cache = HashCache(tmp_path / "cache" / "hashes.json")
    assert model_hash(path, cache) == hashlib.sha256(data).hexdigest()[:10]
    assert cache.sha256(path) == hashlib.sha256(data).hexdigest()
    assert model_hash(write_diffusers(tmp_path / "folder"), cache) is None


def test_hash_cache_hits_in_memory_and_across_instances(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _count_reads(monkeypatch)
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"weights")
    cache_file = tmp_path / "hashes.json"
    first = model_hash(path, HashCache(cache_file))
    cache = HashCache(cache_file)
    assert model_hash(path, cache) == first
    assert model_hash(path, cache) == first
    assert reads == [path]
    stored = json.loads(cache_file.read_text())
    assert stored[str(path.resolve())]["size"] == len(b"weights")


def test_changed_file_is_hashed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _count_reads(monkeypatch)
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"version one")
    cache = HashCache(tmp_path / "hashes.json")
    model_hash(path, cache)
    path.write_bytes(b"version two")  # same size: only the mtime tells them apart
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert model_hash(path, cache) == hashlib.sha256(b"version two").hexdigest()[:10]
    assert len(reads) == 2


@pytest.mark.parametrize("junk", ["{not json", "[1, 2, 3]", '{"x": 5}', "\udcff"])
def test_corrupt_cache_file_is_ignored_and_rebuilt(tmp_path: Path, junk: str) -> None:
    cache_file = tmp_path / "hashes.json"
    cache_file.write_text(junk, encoding="utf-8", errors="surrogateescape")
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"abc")
    assert model_hash(path, HashCache(cache_file)) == hashlib.sha256(b"abc").hexdigest()[:10]
    assert str(path.resolve()) in json.loads(cache_file.read_text())
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_hash_cache_is_thread_safe(tmp_path: Path) -> None:
    files = []
    for i in range(4):
        files.append(tmp_path / f"m{i}.safetensors")
        files[-1].write_bytes(bytes([i]) * (1000 + i))
    cache = HashCache(tmp_path / "hashes.json")
    results: list[tuple[Path, str | None]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for path in files * 3:
                results.append((path, model_hash(path, cache)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert all(h == hashlib.sha256(p.read_bytes()).hexdigest()[:10] for p, h in results)
    assert len(json.loads((tmp_path / "hashes.json").read_text())) == len(files)


def test_hash_errors_and_default_cache_location(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot hash"):
        model_hash(tmp_path / "missing.safetensors", HashCache(tmp_path / "h.json"))
    assert HashCache().path == platformdirs.user_cache_path("StableNewQt") / "hashes.json"


# -- safety -----------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs ``os.mkdir(marker)``: the stand-in for code hidden in a checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[[str], None], tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_pickle_checkpoints_are_refused_with_a_way_out(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"never opened")
    with pytest.raises(ModelError) as caught:
        check_loadable_checkpoint(path)
    assert str(caught.value) == (
        f"model{suffix} is a pickle ({suffix}) file, which can run code when loaded; convert it to "
        f".safetensors with `stablenew-qt convert {path}` (loads it weights-only) and use the new file"
    )


def test_safetensors_files_and_folders_pass_the_check(tmp_path: Path) -> None:
    check_loadable_checkpoint(write_checkpoint(tmp_path / "m.safetensors"))
    check_loadable_checkpoint(write_diffusers(tmp_path / "ok"))
    mixed = write_diffusers(tmp_path / "mixed")
    (mixed / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"x")  # diffusers prefers safetensors
    check_loadable_checkpoint(mixed)
    pickled = write_diffusers(tmp_path / "pickled", weights="diffusion_pytorch_model.bin")
    with pytest.raises(ModelError, match=r"whose unet/diffusion_pytorch_model.bin weights are a pickle"):
        check_loadable_checkpoint(pickled)
    with pytest.raises(ModelError, match=r"expected .safetensors"):
        check_loadable_checkpoint(_touch(tmp_path / "m.gguf"))


def _touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def test_convert_round_trip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import torch
    from safetensors.torch import load_file

    weight = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    tensors = {"w": weight, "w_t": weight.t(), "tied": weight, "half": torch.ones(2, dtype=torch.float16)}
    src = tmp_path / "old.ckpt"
    torch.save({"state_dict": {**tensors, "note": "x", "step": 3}, "global_step": 10}, src)
    with caplog.at_level(logging.WARNING, logger="stablenew_qt.engine.safety"):
        dst = convert_to_safetensors(src)
    assert dst == tmp_path / "old.safetensors"
    loaded = load_file(str(dst))
    assert loaded.keys() == tensors.keys()
    for key, tensor in tensors.items():
        assert torch.equal(loaded[key], tensor) and loaded[key].dtype == tensor.dtype
    assert "skipped 2 non-tensor entries (note, step)" in caplog.text


def test_convert_never_overwrites_and_names_like_the_libraries(tmp_path: Path) -> None:
    import torch

    src = tmp_path / "pytorch_model.bin"
    torch.save({"a": torch.zeros(2)}, src)
    assert convert_to_safetensors(src) == tmp_path / "model.safetensors"
    existing = tmp_path / "taken.safetensors"
    existing.write_bytes(b"keep me")
    with pytest.raises(ModelError, match="already exists"):
        convert_to_safetensors(src, existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(ModelError, match=r"must end in .safetensors"):
        convert_to_safetensors(src, tmp_path / "out.ckpt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.safetensors",
        "pytorch_model.bin",
        "taken.safetensors",
    ]


def test_convert_refuses_files_without_tensors_or_damaged(tmp_path: Path) -> None:
    import torch

    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3}, empty)
    with pytest.raises(ModelError, match="contains no tensors"):
        convert_to_safetensors(empty)
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(ModelError, match="cannot be read as a PyTorch checkpoint"):
        convert_to_safetensors(junk)
    assert not (tmp_path / "junk.safetensors").exists()


def test_malicious_pickle_is_not_executed(tmp_path: Path) -> None:
    import torch

    # Control: the payload is live; a trusting load of the control file runs it.
    control_marker = tmp_path / "control-ran"
    control = tmp_path / "control.ckpt"
    torch.save({"w": torch.zeros(2), "evil": _Payload(control_marker)}, control)
    torch.load(control, map_location="cpu", weights_only=False)
    assert control_marker.exists()

    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"w": torch.zeros(2), "evil": _Payload(marker)}, evil)
    with pytest.raises(
        ModelError, match=r"non-tensor Python objects \(it needs (posix|nt)\.mkdir\)"
    ) as caught:
        convert_to_safetensors(evil)
    assert "cannot be converted safely" in str(caught.value)
    assert not marker.exists()
    assert not (tmp_path / "evil.safetensors").exists()
    catalog = ModelCatalog(tmp_path / "models")
    with pytest.raises(ModelError, match="is a pickle"):
        catalog.resolve_checkpoint(str(evil))
    assert not marker.exists()


# -- catalog ----------------------------------------------------------------------------------


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """An A1111-style models folder with every kind of entry, and things that must be skipped."""
    root = tmp_path / "models"
    sd = root / "Stable-diffusion"
    write_checkpoint(sd / "v1-5-pruned-emaonly.safetensors")
    write_checkpoint(sd / "sdxl" / "juggernautXL_v9.safetensors", FAMILY_HEADERS[ModelFamily.SDXL])
    write_checkpoint(sd / "sdxl" / "Beta.safetensors", FAMILY_HEADERS[ModelFamily.SDXL])
    write_checkpoint(sd / "alpha.safetensors")
    write_checkpoint(sd / "dup" / "twin.safetensors")
    _touch(sd / "dup" / "twin.ckpt")
    _touch(sd / "old-model.ckpt")
    write_diffusers(sd / "diffusers-xl", te2=True)
    write_checkpoint(sd / ".hidden" / "secret.safetensors")
    write_checkpoint(sd / "._appledouble.safetensors")
    _touch(sd / "Put Stable Diffusion checkpoints here.txt")
    _touch(sd / "README.safetensors")
    vae = root / "VAE"
    write_checkpoint(vae / "sdxl_vae.safetensors", {"decoder.conv_out.weight": (3, 4, 3, 3)})
    _touch(vae / "vae-ft-mse-840000.pt")
    (vae / "fp16-fix").mkdir(parents=True)
    (vae / "fp16-fix" / "config.json").write_text("{}")
    write_checkpoint(
        vae / "fp16-fix" / "diffusion_pytorch_model.safetensors", {"decoder.conv_out.weight": (1,)}
    )
    (root / "ESRGAN").mkdir()
    for name in ("4x-UltraSharp.pth", "RealESRGAN_x4plus.safetensors", "nmkd.pt", "notes.txt"):
        _touch(root / "ESRGAN" / name)
    (root / "adetailer").mkdir()
    for name in ("face_yolov8n.pt", "hand_yolov8n.pt", "not-a-detector.safetensors"):
        _touch(root / "adetailer" / name)
    return root


def _names(entries: tuple[ModelEntry, ...]) -> list[str]:
    return [e.name for e in entries]


def test_discovers_an_a1111_models_folder(models_dir: Path) -> None:
    demo = models_dir.parent / "demo"
    catalog = ModelCatalog(models_dir, {"demo-tiny-sd15": demo})
    checkpoints = catalog.checkpoints()
    assert _names(checkpoints) == [
        "demo-tiny-sd15",
        "alpha",
        "diffusers-xl",
        "dup/twin",
        "dup/twin.ckpt",
        "old-model",
        "sdxl/Beta",
        "sdxl/juggernautXL_v9",
        "v1-5-pruned-emaonly",
    ]
    by_name = {e.name: e for e in checkpoints}
    assert by_name["demo-tiny-sd15"] == ModelEntry("demo-tiny-sd15", demo, "checkpoint", "demo")
    assert by_name["diffusers-xl"].source == "folder"
    assert (
        by_name["sdxl/juggernautXL_v9"].path
        == models_dir / "Stable-diffusion/sdxl/juggernautXL_v9.safetensors"
    )
    assert by_name["dup/twin"].path is not None and by_name["dup/twin"].path.suffix == ".safetensors"
    assert all(e.kind == "checkpoint" for e in checkpoints)
    assert _names(catalog.vaes()) == ["fp16-fix", "sdxl_vae", "vae-ft-mse-840000"]
    assert _names(catalog.upscalers()) == ["4x-UltraSharp", "nmkd", "RealESRGAN_x4plus"]
    assert _names(catalog.detectors()) == ["face_yolov8n", "hand_yolov8n"]


def test_refresh_and_missing_or_differently_cased_folders(tmp_path: Path, models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    assert "new" not in _names(catalog.checkpoints())
    write_checkpoint(models_dir / "Stable-diffusion" / "new.safetensors")
    assert "new" not in _names(catalog.checkpoints())  # listed from the last scan
    catalog.refresh()
    assert "new" in _names(catalog.checkpoints())

    lower = tmp_path / "lower"
    write_checkpoint(lower / "stable-diffusion" / "m.safetensors")
    assert _names(ModelCatalog(lower).checkpoints()) == ["m"]

    empty = ModelCatalog(tmp_path / "nowhere")
    assert empty.checkpoints() == () and empty.vaes() == () and empty.detectors() == ()
    with pytest.raises(
        ModelError, match=r"not found in .*nowhere.Stable-diffusion \(the folder does not exist\)"
    ):
        empty.resolve_checkpoint("anything")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("sdxl/juggernautXL_v9", "sdxl/juggernautXL_v9"),
        ("sdxl/juggernautXL_v9.safetensors", "sdxl/juggernautXL_v9"),
        ("juggernautXL_v9", "sdxl/juggernautXL_v9"),
        ("juggernautXL_v9.safetensors", "sdxl/juggernautXL_v9"),
        ("JuggernautXL_V9", "sdxl/juggernautXL_v9"),
        ("sdxl\\juggernautXL_v9.safetensors", "sdxl/juggernautXL_v9"),
        ("juggernautXL_v9.safetensors [1a2b3c4d5e]", "sdxl/juggernautXL_v9"),
        ("  alpha  ", "alpha"),
        ("diffusers-xl", "diffusers-xl"),
        ("dup/twin", "dup/twin"),
        ("demo-tiny-sd15", "demo-tiny-sd15"),
    ],
)
def test_resolve_checkpoint_by_every_accepted_name(models_dir: Path, query: str, expected: str) -> None:
    catalog = ModelCatalog(models_dir, {"demo-tiny-sd15": models_dir.parent / "demo"})
    assert catalog.resolve_checkpoint(query).name == expected


def test_resolve_by_absolute_path(tmp_path: Path, models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    inside = models_dir / "Stable-diffusion" / "sdxl" / "Beta.safetensors"
    assert catalog.resolve_checkpoint(str(inside)).name == "sdxl/Beta"
    outside = write_checkpoint(tmp_path / "elsewhere" / "mine.safetensors")
    assert catalog.resolve_checkpoint(str(outside)) == ModelEntry("mine", outside, "checkpoint", "file")
    folder = write_diffusers(tmp_path / "elsewhere" / "pipe")
    assert catalog.resolve_checkpoint(str(folder)) == ModelEntry("pipe", folder, "checkpoint", "folder")
    with pytest.raises(ModelError, match=r"checkpoint not found: .*gone.safetensors"):
        catalog.resolve_checkpoint(str(tmp_path / "gone.safetensors"))
    with pytest.raises(ModelError, match=r"is a folder but not a usable checkpoint \(no model_index.json\)"):
        catalog.resolve_checkpoint(str(tmp_path / "elsewhere"))
    text = _touch(tmp_path / "elsewhere" / "notes.txt")
    with pytest.raises(ModelError, match=r"notes.txt is not a usable upscaler file: expected .pth, "):
        catalog.resolve_upscaler(str(text))


def test_hub_ids_for_checkpoints_and_vaes(models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    hub = catalog.resolve_checkpoint("stabilityai/stable-diffusion-xl-base-1.0")
    assert hub == ModelEntry("stabilityai/stable-diffusion-xl-base-1.0", None, "checkpoint", "hub")
    assert catalog.resolve_vae("madebyollin/sdxl-vae-fp16-fix").source == "hub"
    # An existing local subfolder makes it a typo of a local name, not a hub id.
    with pytest.raises(ModelError, match="closest installed: sdxl/juggernautXL_v9"):
        catalog.resolve_checkpoint("sdxl/juggernautXL_v8")
    with pytest.raises(ModelError, match="upscaler 'someone/some-upscaler' not found"):
        catalog.resolve_upscaler("someone/some-upscaler")


def test_unknown_name_lists_close_names_and_the_folder(models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    with pytest.raises(ModelError) as caught:
        catalog.resolve_checkpoint("juggernaut_v9")
    message = str(caught.value)
    assert message.startswith(f"checkpoint 'juggernaut_v9' not found in {models_dir / 'Stable-diffusion'}")
    assert "closest installed: sdxl/juggernautXL_v9" in message
    with pytest.raises(ModelError, match="installed: face_yolov8n, hand_yolov8n"):
        catalog.resolve_detector("zzz")
    with pytest.raises(ModelError, match="no checkpoint was chosen"):
        catalog.resolve_checkpoint("  ")


def test_ambiguous_stem_is_an_error_naming_both(models_dir: Path) -> None:
    write_checkpoint(models_dir / "Stable-diffusion" / "other" / "juggernautXL_v9.safetensors")
    catalog = ModelCatalog(models_dir)
    with pytest.raises(
        ModelError, match=r"several checkpoints \(other/juggernautXL_v9, sdxl/juggernautXL_v9\)"
    ):
        catalog.resolve_checkpoint("juggernautXL_v9")
    assert catalog.resolve_checkpoint("other/juggernautXL_v9").name == "other/juggernautXL_v9"


def test_resolve_refuses_pickles_and_resolves_other_kinds(models_dir: Path) -> None:
    catalog = ModelCatalog(models_dir)
    with pytest.raises(ModelError, match=r"old-model.ckpt is a pickle \(.ckpt\) file"):
        catalog.resolve_checkpoint("old-model")
    with pytest.raises(ModelError, match=r"twin.ckpt is a pickle"):
        catalog.resolve_checkpoint("dup/twin.ckpt")
    with pytest.raises(ModelError, match=r"vae-ft-mse-840000.pt is a pickle"):
        catalog.resolve_vae("vae-ft-mse-840000.pt")
    assert catalog.resolve_vae("fp16-fix").source == "folder"
    assert catalog.resolve_vae("sdxl_vae.safetensors").name == "sdxl_vae"
    # Upscalers and detectors are loaded by spandrel/ultralytics, which apply their own rules.
    assert catalog.resolve_upscaler("4x-UltraSharp.pth").kind == "upscaler"
    assert catalog.resolve_detector("face_yolov8n.pt").name == "face_yolov8n"


def test_catalog_family_and_hash_never_import_torch(models_dir: Path, tmp_path: Path) -> None:
    code = f"""
import sys
from pathlib import Path
from stablenew_qt.engine.models import ModelCatalog
from stablenew_qt.engine.family import detect_family
from stablenew_qt.engine.hashing import HashCache, model_hash
catalog = ModelCatalog(Path({str(models_dir)!r}))
for entry in catalog.checkpoints():
    if entry.source != "file" or entry.path.suffix == ".safetensors":
        detect_family(entry.path)
entry = catalog.resolve_checkpoint("juggernautXL_v9")
model_hash(entry.path, HashCache(Path({str(tmp_path / "h.json")!r})))
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "diffusers", "transformers", "PySide6"))
print(heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
