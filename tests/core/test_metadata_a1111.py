"""Reading A1111-family images through the metadata dispatcher: A1111 text exactly as
infotext_to_config reads it, Forge and SD.Next keys, EXIF UserComment variants, stealth
metadata, and the messages for images without settings."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from metadata_samples import jpeg_with_comment, png, stealth_png
from PIL import Image

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.infotext import config_from_image, infotext_to_config, png_metadata
from stablenew_qt.core.metadata import NoGenerationSettings, read_generation_settings
from stablenew_qt.core.metadata.stealth import read_stealth

A1111 = (
    "a lighthouse at dusk, <lora:ink:0.7>\nNegative prompt: blurry\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 1234, Size: 640x448, "
    "Model hash: 6ce0161689, Model: dreamshaper_8, Denoising strength: 0.45, Hires upscale: 1.5, "
    "Hires upscaler: Latent, ENSD: 31337, Version: v1.10.1"
)
FORGE = (
    "portrait, film grain\nSteps: 20, Sampler: Euler, Schedule type: Simple, CFG scale: 1, "
    "Distilled CFG Scale: 3.5, Seed: 7, Size: 896x1152, Model hash: 1c7c2e2b, Model: flux1-dev-bnb-nf4-v2, "
    'Module 1: ae, Diffusion in Low Bits: "bnb-nf4 (fp16 LoRA)", '
    "Version: f2.0.1v1.10.1-previous-535-gb20cb4bf"
)
SDNEXT = (
    "castle on a cliff\nNegative prompt: lowres\nSteps: 30, Seed: 99, Sampler: DPM SDE, CFG scale: 6, "
    "Size: 1024x1024, Parser: Full parser, Model: sd_xl_base_1.0, Model hash: 31e35c80fc, "
    "Backend: Diffusers, "
    "App: SD.Next, Version: 2a5d3f1, Operations: txt2img; refine, Second pass: True, "
    "Refiner: sd_xl_refiner_1.0, Refiner steps: 10, Refiner start: 0.75, CFG rescale: 0.7"
)


def test_a1111_png_reads_exactly_as_infotext_to_config(tmp_path: Path) -> None:
    settings = read_generation_settings(png(tmp_path / "a.png", {"parameters": A1111}))
    assert settings.config == infotext_to_config(A1111)
    assert (settings.generator, settings.source) == ("A1111", "PNG text chunk 'parameters'")
    assert settings.notes == ()
    assert settings.config.eta_noise_seed_delta == 31337


def test_forge_keys_are_named_in_notes(tmp_path: Path) -> None:
    settings = read_generation_settings(png(tmp_path / "f.png", {"parameters": FORGE}))
    t2i = settings.config.txt2img
    assert settings.generator == "Forge"
    assert (t2i.sampler, t2i.scheduler, t2i.cfg_scale, t2i.width, t2i.model) == (
        "Euler",
        "Simple",
        1.0,
        896,
        "flux1-dev-bnb-nf4-v2",
    )
    assert "'Distilled CFG Scale: 3.5' has no equivalent here" in settings.notes
    assert "'Module 1: ae' has no equivalent here" in settings.notes
    assert any(note.startswith("'Diffusion in Low Bits") for note in settings.notes)


def test_sdnext_sampler_label_and_refiner_start_map(tmp_path: Path) -> None:
    settings = read_generation_settings(png(tmp_path / "s.png", {"parameters": SDNEXT}))
    t2i = settings.config.txt2img
    assert settings.generator == "SD.Next"
    assert (t2i.sampler, t2i.scheduler) == ("DPM++ SDE", "Automatic")
    assert (t2i.refiner_enabled, t2i.refiner_model_name, t2i.refiner_switch_at) == (
        True,
        "sd_xl_refiner_1.0",
        0.75,
    )
    assert "'CFG rescale: 0.7' has no equivalent here" in settings.notes
    assert "'Refiner steps: 10' has no equivalent here" in settings.notes
    assert not any("App" in n or "Operations" in n for n in settings.notes)  # informational keys


def test_unknown_sampler_and_schedule_are_dropped_with_a_note_not_refused(tmp_path: Path) -> None:
    text = "x\nSteps: 20, Sampler: Euler Turbo, Schedule type: Align Your Steps GITS, CFG scale: 7, Seed: 3"
    settings = read_generation_settings(png(tmp_path / "t.png", {"parameters": text, "Software": "x"}))
    assert settings.config.txt2img.sampler == "DPM++ 2M" and settings.config.seed == 3
    assert (
        "A1111's sampler 'Euler Turbo' has no equivalent here; the default sampler is used" in settings.notes
    )
    assert any("'Align Your Steps GITS' has no equivalent" in n for n in settings.notes)
    with pytest.raises(ConfigError, match="unknown sampler"):  # the A1111 road itself stays strict
        config_from_image(tmp_path / "t.png")


def test_malformed_a1111_value_names_file_generator_and_key(tmp_path: Path) -> None:
    path = png(tmp_path / "bad.png", {"parameters": "x\nSteps: twenty, Sampler: Euler, CFG scale: 7"})
    with pytest.raises(ConfigError) as info:
        read_generation_settings(path)
    assert str(info.value).splitlines() == [
        "bad.png: looks like an A1111 image, but its generation parameters cannot be used:",
        "Steps: 'twenty' is not a whole number",
    ]


def test_prompt_only_text_restores_the_prompt(tmp_path: Path) -> None:
    settings = read_generation_settings(
        png(tmp_path / "p.png", {"parameters": "just a cat\nNegative prompt: dog"})
    )
    assert (settings.config.prompt, settings.config.negative_prompt) == ("just a cat", "dog")
    assert "only a prompt was stored" in settings.notes[0]


def test_our_own_png_replays_losslessly(tmp_path: Path) -> None:
    config = infotext_to_config(A1111)
    path = tmp_path / "ours.png"
    Image.new("RGB", (8, 8)).save(
        path, pnginfo=png_metadata("ignored\nSteps: 1, Seed: 1, CFG scale: 1", config)
    )
    settings = read_generation_settings(path)
    assert (settings.config, settings.generator, settings.notes) == (config, "StableNew Qt", ())


@pytest.mark.parametrize(
    ("suffix", "comment"),
    [
        (".jpg", b"UNICODE\0" + A1111.encode("utf-16-be")),  # A1111's own
        (".webp", b"UNICODE\0" + A1111.encode("utf-16-le")),
        (".jpg", b"UNICODE\0" + A1111.encode("utf-16")),  # with a byte-order mark
        (".jpg", b"UNICODE\0" + A1111.encode("utf-8")),  # mislabelled UTF-8
        (".jpg", b"ASCII\0\0\0" + A1111.encode("ascii")),
        (".jpg", b"\0" * 8 + A1111.encode("utf-8")),  # undefined character code
        (".jpg", A1111),  # Pillow's plain string, no prefix
    ],
)
def test_exif_user_comment_in_every_encoding(tmp_path: Path, suffix: str, comment: bytes | str) -> None:
    settings = read_generation_settings(jpeg_with_comment(tmp_path / f"a{suffix}", comment))
    assert settings.config == infotext_to_config(A1111)
    assert settings.source == "EXIF UserComment"


def test_fooocus_jpeg_keeps_its_json_in_ifd0(tmp_path: Path) -> None:
    data = {
        "prompt": "a cat",
        "full_prompt": ["a cat"],
        "steps": 30,
        "guidance_scale": 4,
        "base_model": "juggernautXL",
    }
    path = jpeg_with_comment(tmp_path / "f.jpg", json.dumps(data), ifd0=True, tag_927C="fooocus")
    settings = read_generation_settings(path)
    assert settings.generator == "Fooocus"
    assert (settings.config.prompt, settings.config.txt2img.steps, settings.config.txt2img.cfg_scale) == (
        "a cat",
        30,
        4.0,
    )


@pytest.mark.parametrize("mode", ["alpha", "rgb"])
@pytest.mark.parametrize("compressed", [True, False])
def test_stealth_metadata_in_alpha_and_rgb(tmp_path: Path, mode: str, compressed: bool) -> None:
    path = stealth_png(tmp_path / "s.png", A1111, mode=mode, compressed=compressed)
    settings = read_generation_settings(path)
    assert settings.config == infotext_to_config(A1111)
    where = "alpha channel" if mode == "alpha" else "RGB"
    assert settings.source == f"stealth metadata in the {where} bits" + (", compressed" if compressed else "")


def test_stealth_novelai_payload_is_its_chunks(tmp_path: Path) -> None:
    comment = {"prompt": "{cat}", "uc": "lowres", "steps": 28, "scale": 5, "seed": 9, "sampler": "k_euler"}
    chunks = {
        "Software": "NovelAI",
        "Source": "NovelAI Diffusion V4 4F49EC75",
        "Comment": json.dumps(comment),
    }
    settings = read_generation_settings(stealth_png(tmp_path / "n.png", json.dumps(chunks), size=(128, 64)))
    assert settings.generator == "NovelAI" and settings.config.prompt == "(cat:1.05)"


def test_stealth_reading_stays_bounded_on_a_large_image(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGBA", (4096, 4096), (1, 2, 3, 255)).save(path, compress_level=1)
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=r"big\.png: no generation settings in this image"):
        read_generation_settings(path)
    assert time.perf_counter() - start < 5.0
    with Image.open(path) as image:
        image.load()
        assert read_stealth(image.resize((8, 8))) is None


def test_stealth_with_a_lying_length_is_ignored(tmp_path: Path) -> None:
    path = stealth_png(tmp_path / "s.png", "x" * 50, compressed=False, size=(32, 32))
    with Image.open(path) as image:
        rgba = image.convert("RGBA")
    pixels = rgba.load()
    assert pixels is not None
    for bit in range(120, 136):  # the length's high bits: far more than the image holds
        x, yy = divmod(bit, 32)
        r, g, b, a = pixels[x, yy]  # type: ignore[misc]
        pixels[x, yy] = (r, g, b, a | 1)
    assert read_stealth(rgba) is None


def test_plain_png_says_no_generation_settings(tmp_path: Path) -> None:
    path = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(path)
    with pytest.raises(NoGenerationSettings, match=r"^plain\.png: no generation settings in this image$"):
        read_generation_settings(path)
    broken = png(tmp_path / "broken.png", {"prompt": "{}"})
    with pytest.raises(ConfigError, match="looks like a ComfyUI image") as info:
        read_generation_settings(broken)
    assert not isinstance(info.value, NoGenerationSettings)  # settings that failed: not an input image


def test_edited_image_names_the_program_that_saved_it(tmp_path: Path) -> None:
    path = png(tmp_path / "edited.png", {"Software": "Adobe Photoshop 25.0"})
    with pytest.raises(
        ConfigError, match=r"no generation settings in this image \(it was last saved by Adobe"
    ):
        read_generation_settings(path)


def test_config_from_image_now_restores_other_generators(tmp_path: Path) -> None:
    data = {"sui_image_params": {"prompt": "a dog", "steps": 12, "seed": 5}}
    assert config_from_image(png(tmp_path / "sw.png", {"parameters": json.dumps(data)})).txt2img.steps == 12


def test_text_chunks_over_the_cap_are_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stablenew_qt.core.metadata import sources

    monkeypatch.setattr(sources, "MAX_CHUNK_CHARS", 1000)
    path = png(tmp_path / "huge.png", {"workflow": "{" + " " * 2000 + "}"})
    with pytest.raises(
        ConfigError, match=r"no generation settings in this image could be read: the 'workflow' text"
    ):
        read_generation_settings(path)
    ok = png(tmp_path / "ok.png", {"workflow": "{" + " " * 2000 + "}", "parameters": A1111})
    assert any("too large to read" in note for note in read_generation_settings(ok).notes)


def test_stealth_gzip_bomb_is_not_inflated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stablenew_qt.core.metadata import stealth

    monkeypatch.setattr(stealth, "MAX_TEXT_BYTES", 1000)
    path = stealth_png(tmp_path / "bomb.png", "a" * 100_000, size=(64, 64))
    with Image.open(path) as image:
        assert read_stealth(image) is None


def test_png_settings_are_read_without_decoding_the_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import PngImagePlugin

    path = png(tmp_path / "early.png", {"parameters": A1111})

    def no_decoding(_self: object) -> None:
        raise AssertionError("the pixels were decoded to read the metadata")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    assert read_generation_settings(path).config == infotext_to_config(A1111)
