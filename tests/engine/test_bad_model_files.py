"""Malformed model files are refused by the strict reader (engine/model_files.py) with an
UnreadableModelError naming the file, before diffusers or safetensors parse them, in bounded time.

Each safetensors case is checked through detect_family, check_loadable_checkpoint, the catalog's
resolve, the listing label and load_single_file (whose diffusers class must never be reached);
a few go through a whole run on the real engine, which must end in FAILED with that message
instead of an "unexpected error". Real files (the demo pipelines, the shipped SD configs, files
written by the safetensors library) must all pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.engine import model_files
from stablenew_qt.engine.errors import ModelError, UnreadableModelError
from stablenew_qt.engine.family import detect_family, family_label
from stablenew_qt.engine.models import ModelCatalog
from stablenew_qt.engine.safety import check_loadable_checkpoint, convert_to_safetensors
from stablenew_qt.engine.single_file import CONFIGS_DIR, load_single_file

pytestmark = pytest.mark.timeout(60)

SD1 = {
    "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight": (2, 2),
    "model.diffusion_model.input_blocks.0.0.weight": (4, 4, 1, 1),
}


def safetensors_bytes(header: object, data: bytes = b"", *, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def tensor(shape: object, offsets: object, dtype: object = "F32") -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": offsets}


HEADER_CASES: dict[str, tuple[bytes, str]] = {
    'shape ["x"]': (safetensors_bytes({"a": tensor(["x"], [0, 4])}, bytes(4)), "not a list of whole numbers"),
    "shape [null]": (
        safetensors_bytes({"a": tensor([None], [0, 4])}, bytes(4)),
        "not a list of whole numbers",
    ),
    "negative dimension": (safetensors_bytes({"a": tensor([-1], [0, 4])}, bytes(4)), "not a list of whole"),
    "shape [true]": (safetensors_bytes({"a": tensor([True], [0, 4])}, bytes(4)), "not a list of whole"),
    "unknown dtype": (safetensors_bytes({"a": tensor([1], [0, 4], "F99")}, bytes(4)), "unknown dtype"),
    "offsets past the data": (safetensors_bytes({"a": tensor([100], [0, 400])}, bytes(4)), "cover 400 bytes"),
    "offsets reversed": (safetensors_bytes({"a": tensor([1], [4, 0])}, bytes(4)), "do not fit"),
    "negative offset": (safetensors_bytes({"a": tensor([1], [-4, 0])}, bytes(4)), "not [start, end]"),
    "overlapping tensors": (
        safetensors_bytes({"a": tensor([1], [0, 4]), "b": tensor([1], [0, 4])}, bytes(8)),
        "overlaps the one before it",
    ),
    "gap between tensors": (
        safetensors_bytes({"a": tensor([1], [0, 4]), "b": tensor([1], [8, 12])}, bytes(12)),
        "leaves a gap",
    ),
    "offsets not matching the shape": (safetensors_bytes({"a": tensor([2], [0, 4])}, bytes(4)), "do not fit"),
    "header nested 200k deep": (safetensors_bytes(b"[" * 200_000 + b"]" * 200_000), "nested too deeply"),
    "header length larger than the file": (safetensors_bytes(b"{}", length=10**6), "larger than the file"),
    "header length of 2^64-1": (safetensors_bytes(b"{}", length=2**64 - 1), "the most read is"),
    "shorter than 8 bytes": (b"\x05\x00", "only 2 bytes long"),
    "non-JSON header": (safetensors_bytes(b"{this is not json}"), "not JSON"),
    "non-UTF-8 header": (safetensors_bytes(b'{"\xff": 1}'), "not UTF-8"),
    "header a list": (safetensors_bytes([1, 2]), "not a JSON object"),
    "entry not an object": (safetensors_bytes({"a": [1, 2]}), "not described by an object"),
    "metadata not text": (safetensors_bytes({"__metadata__": {"k": 1}}), "__metadata__ is not a map"),
}


@pytest.fixture(params=list(HEADER_CASES))
def bad_checkpoint(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    content, fragment = HEADER_CASES[request.param]
    path = tmp_path / "models" / "Stable-diffusion" / "broken.safetensors"
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    return path, fragment


def _assert_unreadable(error: BaseException, name: str, fragment: str) -> None:
    assert isinstance(error, UnreadableModelError), repr(error)
    message = str(error)
    assert message.startswith(f"{name} is not a valid model file: "), message
    assert fragment in message and message.endswith("remove it from the models folder")
    assert "\n" not in message and len(message) < 400


def test_detect_family_refuses(bad_checkpoint: tuple[Path, str]) -> None:
    path, fragment = bad_checkpoint
    with pytest.raises(UnreadableModelError) as info:
        detect_family(path)
    _assert_unreadable(info.value, "broken.safetensors", fragment)


def test_check_and_resolve_refuse(bad_checkpoint: tuple[Path, str]) -> None:
    path, fragment = bad_checkpoint
    with pytest.raises(UnreadableModelError) as info:
        check_loadable_checkpoint(path)
    _assert_unreadable(info.value, "broken.safetensors", fragment)
    with pytest.raises(UnreadableModelError):
        ModelCatalog(path.parent.parent).resolve_checkpoint("broken")


def test_listing_shows_the_file_as_unreadable(bad_checkpoint: tuple[Path, str]) -> None:
    path, fragment = bad_checkpoint
    label = family_label(path)
    assert label.startswith("unreadable: broken.safetensors is not a valid model file") and fragment in label


class _MustNotLoad:
    @classmethod
    def from_single_file(cls, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("diffusers was handed a malformed checkpoint")


def test_load_single_file_refuses_before_diffusers(bad_checkpoint: tuple[Path, str], tmp_path: Path) -> None:
    path, fragment = bad_checkpoint
    with pytest.raises(UnreadableModelError) as info:
        load_single_file(path, "sd15", _MustNotLoad, None, config_dir=tmp_path)
    _assert_unreadable(info.value, "broken.safetensors", fragment)


@pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev/zero are POSIX")
@pytest.mark.parametrize("kind", ["FIFO", "/dev/zero link"])
def test_a_non_regular_checkpoint_is_refused_without_reading(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "odd.safetensors"
    if kind == "FIFO":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    expected = "a FIFO (named pipe)" if kind == "FIFO" else "a device"
    for check in (detect_family, check_loadable_checkpoint):
        with pytest.raises(UnreadableModelError, match=re.escape(f"it is {expected}")):
            check(path)
    with pytest.raises(UnreadableModelError, match="not a regular file"):
        model_files.read_safetensors_header(path)
    assert family_label(path).startswith("unreadable: ") and expected in family_label(path)


def test_files_the_safetensors_library_writes_pass(tmp_path: Path) -> None:
    arrays = {
        "f16": np.zeros((3, 5), dtype=np.float16),
        "f32": np.ones((2, 2, 2), dtype=np.float32),
        "i64": np.arange(7, dtype=np.int64),
        "scalar": np.zeros((), dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "u8": np.zeros(3, dtype=np.uint8),
        "bool": np.zeros(2, dtype=bool),
    }
    path = tmp_path / "real.safetensors"
    save_file(arrays, str(path), metadata={"format": "pt", "note": "ok"})
    header = model_files.read_safetensors_header(path)
    assert {name: info.shape for name, info in header.items()} == {k: v.shape for k, v in arrays.items()}


# -- diffusers folders ---------------------------------------------------------------------------

FolderCase = Callable[[Path], None]


def _unet_config(text: str) -> FolderCase:
    def damage(folder: Path) -> None:
        (folder / "unet" / "config.json").write_text(text, encoding="utf-8")

    return damage


def _replace_with_fifo(relative: str) -> FolderCase:
    def damage(folder: Path) -> None:
        (folder / relative).unlink()
        os.mkfifo(folder / relative)

    return damage


def _text_encoder_key(key: str, value: object) -> FolderCase:
    def damage(folder: Path) -> None:
        path = folder / "text_encoder" / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text("utf-8")), key: value}), encoding="utf-8")

    return damage


def _bad_weights(folder: Path) -> None:
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(
        safetensors_bytes({"w": tensor(["x"], [0, 4])}, bytes(4))
    )


FOLDER_CASES: dict[str, tuple[FolderCase, str, str]] = {
    'in_channels "four"': (
        _unet_config('{"in_channels": "four"}'),
        "unet/config.json",
        "in_channels is 'four'",
    ),
    "config nested 200k deep": (
        _unet_config("[" * 200_000 + "]" * 200_000),
        "unet/config.json",
        "nested too",
    ),
    "config nested 40 deep": (
        _unet_config('{"a":' * 40 + "1" + "}" * 40),
        "unet/config.json",
        "more than 16",
    ),
    "config of 2 MiB": (
        _unet_config(json.dumps({"pad": "x" * 2 * 2**20})),
        "unet/config.json",
        "the most this",
    ),
    "config not JSON": (_unet_config("{oops"), "unet/config.json", "not JSON"),
    "hidden_size 1e12": (
        _text_encoder_key("hidden_size", 1e12),
        "text_encoder/config.json",
        "hidden_size is",
    ),
    "FIFO as the unet config": (_replace_with_fifo("unet/config.json"), "unet/config.json", "FIFO"),
    "FIFO as a tokenizer file": (
        _replace_with_fifo("tokenizer/tokenizer.json"),
        "tokenizer/tokenizer.json",
        "FIFO",
    ),
    "malformed unet weights": (
        _bad_weights,
        "unet/diffusion_pytorch_model.safetensors",
        "not a list of whole numbers",
    ),
}


@pytest.fixture(params=list(FOLDER_CASES))
def bad_folder(
    request: pytest.FixtureRequest, demo_models: dict[str, Path], tmp_path: Path
) -> tuple[Path, str, str]:
    if "FIFO" in request.param and sys.platform == "win32":
        pytest.skip("FIFOs are POSIX")
    damage, relative, fragment = FOLDER_CASES[request.param]
    folder = tmp_path / "models" / "Stable-diffusion" / "broken-pipe"
    shutil.copytree(demo_models["demo-tiny-sd15"], folder)
    damage(folder)
    return folder, relative, fragment


def test_a_malformed_diffusers_folder_is_refused(bad_folder: tuple[Path, str, str]) -> None:
    folder, relative, fragment = bad_folder
    with pytest.raises(ModelError) as info:
        check_loadable_checkpoint(folder)
    message = str(info.value)
    assert isinstance(info.value, UnreadableModelError)
    assert f"broken-pipe/{relative}" in message or f"{relative} is" in message, message
    assert fragment in message and "\n" not in message
    assert family_label(folder).startswith(("unreadable: ", "sd15")), "the listing never raises"


def test_detect_family_reads_configs_strictly(bad_folder: tuple[Path, str, str]) -> None:
    folder, relative, _ = bad_folder
    if relative != "unet/config.json":
        pytest.skip("detect_family reads only model_index.json and unet/config.json")
    with pytest.raises(UnreadableModelError, match="broken-pipe/unet/"):
        detect_family(folder)


def test_real_folders_and_shipped_configs_pass(demo_models: dict[str, Path]) -> None:
    for folder in demo_models.values():
        model_files.check_model_folder(folder)
    shipped = sorted(CONFIGS_DIR.rglob("*config.json")) + sorted(CONFIGS_DIR.rglob("model_index.json"))
    assert len(shipped) > 20
    for path in shipped:
        model_files.read_config_json(path)


# -- through a run -------------------------------------------------------------------------------


@pytest.fixture
def executor(demo_models: dict[str, Path], tmp_path: Path) -> Any:
    from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings

    models = tmp_path / "models"
    for sub in ("Stable-diffusion", "VAE", "ESRGAN"):
        (models / sub).mkdir(parents=True, exist_ok=True)
    demo_root = next(iter(demo_models.values())).parent
    return DiffusersExecutor(EngineSettings(models_dir=models, device="cpu", demo_dir=demo_root))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("write", "fragment"),
    [
        (
            lambda m: (m / "broken.safetensors").write_bytes(HEADER_CASES['shape ["x"]'][0]),
            "not a list of whole",
        ),
        (
            lambda m: (m / "broken.safetensors").write_bytes(HEADER_CASES["header nested 200k deep"][0]),
            "nested",
        ),
    ],
    ids=['shape ["x"]', "nested 200k deep"],
)
def test_a_run_with_a_malformed_checkpoint_ends_in_a_clear_error(
    executor: Any, tmp_path: Path, write: Callable[[Path], None], fragment: str
) -> None:
    write(tmp_path / "models" / "Stable-diffusion")
    config = RunConfig.from_dict({"txt2img": {"model": "broken", "width": 64, "height": 64, "steps": 1}})
    result = PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert result.status == "FAILED"
    assert result.error is not None and result.error.startswith("txt2img: broken.safetensors is not a valid")
    assert fragment in result.error and "unexpected" not in result.error
    assert not (tmp_path / "runs").exists()


def test_a_run_with_in_channels_four_ends_in_a_clear_error(
    executor: Any, demo_models: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "models" / "Stable-diffusion" / "broken-pipe"
    shutil.copytree(demo_models["demo-tiny-sd15"], folder)
    _unet_config('{"in_channels": "four"}')(folder)
    config = RunConfig.from_dict({"txt2img": {"model": "broken-pipe", "width": 64, "height": 64, "steps": 1}})
    result = PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert result.status == "FAILED" and result.error is not None
    assert "broken-pipe/unet/config.json is not a valid model file: in_channels is 'four'" in result.error
    assert not (tmp_path / "runs").exists()


def test_a_200k_character_model_name_is_shortened_in_the_error(executor: Any, tmp_path: Path) -> None:
    config = RunConfig.from_dict({"txt2img": {"model": "m" * 200_000, "width": 64, "height": 64, "steps": 1}})
    result = PipelineRunner(executor, OutputSettings(tmp_path / "runs")).run(config, CancelToken())
    assert result.status == "FAILED" and result.error is not None
    assert "… (200000 characters)" in result.error and len(result.error) < 1000


# -- convert -------------------------------------------------------------------------------------


def test_convert_checks_the_output_folder_before_loading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stablenew_qt.engine import safety

    src = tmp_path / "x.ckpt"
    src.write_bytes(b"never loaded")
    monkeypatch.setattr(safety, "_load_weights_only", lambda _src: pytest.fail("loaded before checking"))
    with pytest.raises(
        ModelError, match=r"the folder '.*no/dir' for x.safetensors does not exist; create it"
    ):
        convert_to_safetensors(src, tmp_path / "no" / "dir" / "x.safetensors")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ckpt"]
    if sys.platform != "win32":
        os.mkfifo(tmp_path / "pipe.ckpt")
        with pytest.raises(ModelError, match="FIFO"):
            convert_to_safetensors(tmp_path / "pipe.ckpt", tmp_path / "out.safetensors")
