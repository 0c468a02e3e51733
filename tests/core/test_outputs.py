"""Tests for core.outputs: atomic, non-overwriting, contained writes of a run's files."""

from __future__ import annotations

import errno
import json
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from stablenew_qt import __version__
from stablenew_qt.core import atomic_files, outputs
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError, OutputError
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.outputs import (
    OutputSettings,
    RunOutputs,
    atomic_write_bytes,
    build_manifest,
    default_output_dir,
    new_run_id,
    safe_join,
)

STARTED = datetime(2024, 5, 6, 17, 30, 15, tzinfo=UTC)
FINISHED = STARTED + timedelta(seconds=42)
RUN_ID = "173015-abc123"


def _image(color: tuple[int, int, int] = (200, 30, 30)) -> Image.Image:
    return Image.new("RGB", (8, 8), color)


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def run(tmp_path: Path) -> RunOutputs:
    return RunOutputs(tmp_path / "out", RUN_ID, STARTED)


def _failing(exc: Exception) -> Callable[..., Any]:
    def fail(*args: object, **kwargs: object) -> Any:
        raise exc

    return fail


# --- defaults and ids ---------------------------------------------------------------------------


def test_default_output_dir_is_runs_in_user_data_dir() -> None:
    expected = platformdirs.user_data_path("StableNewQt", appauthor=False) / "runs"
    assert default_output_dir() == expected


def test_output_settings_defaults_and_frozen(tmp_path: Path) -> None:
    settings = OutputSettings(output_dir=tmp_path)
    assert settings.save_intermediates is False
    with pytest.raises(AttributeError):
        settings.save_intermediates = True  # type: ignore[misc]


def test_new_run_id_format_and_uniqueness() -> None:
    ids = {new_run_id(STARTED) for _ in range(50)}
    assert len(ids) == 50
    for run_id in ids:
        assert re.fullmatch(r"173015-[0-9a-f]{6}", run_id)


def test_new_run_ids_sort_by_time_within_a_day() -> None:
    times = [STARTED.replace(hour=h, minute=m, second=s) for h, m, s in [(0, 0, 1), (9, 5, 0), (23, 59, 59)]]
    ids = [new_run_id(t) for t in times]
    assert ids == sorted(ids)


# --- safe_join ----------------------------------------------------------------------------------


def test_safe_join_returns_resolved_path_inside_root(tmp_path: Path) -> None:
    joined = safe_join(tmp_path, "2024-05-06", "run", "00000-1.png")
    assert joined == tmp_path.resolve() / "2024-05-06" / "run" / "00000-1.png"


@pytest.mark.parametrize(
    ("part", "reason"),
    [
        ("..", "parent"),
        (".", "current"),
        ("", "empty"),
        ("/etc", "absolute"),
        ("\\\\server\\share", "absolute"),
        ("C:\\Windows", "absolute"),
        ("C:", "absolute"),
        ("a/b", "separator"),
        ("..\\evil", "separator"),
        ("x\0y", "NUL"),
        ("tab\there", "control character"),
        ("what?", "control character"),
        ("CON", "Windows reserves"),
        ("nul.png", "Windows reserves"),
        ("Lpt1.txt", "Windows reserves"),
        ("trailing.", "dot or a space"),
        ("trailing ", "dot or a space"),
        ("x" * 256, "longer than 255"),
    ],
)
def test_safe_join_rejects_unsafe_parts(tmp_path: Path, part: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as info:
        safe_join(tmp_path, "ok", part)
    assert repr(part) in str(info.value)


def test_safe_join_rejects_symlink_escape(tmp_path: Path) -> None:
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    try:
        (root / "link").symlink_to(outside, target_is_directory=True)
    except OSError:
        pytest.skip("symbolic links are not available here")
    with pytest.raises(ValueError, match="outside the output folder"):
        safe_join(root, "link", "file.png")


# --- atomic_write_bytes -------------------------------------------------------------------------


def test_atomic_write_bytes_writes_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    assert atomic_write_bytes(target, b"hello") == target
    assert target.read_bytes() == b"hello"
    assert _all_files(tmp_path) == [target]


def test_atomic_write_bytes_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(b"original")
    with pytest.raises(FileExistsError, match="never overwritten"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"original"
    assert _all_files(tmp_path) == [target]


def test_atomic_write_bytes_loses_race_without_overwriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.bin"
    real_link = os.link

    def racing_link(src: Any, dst: Any) -> None:
        Path(dst).write_bytes(b"other writer")  # another writer publishes first
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"mine")
    assert target.read_bytes() == b"other writer"
    assert _temp_files(tmp_path) == []


@pytest.mark.parametrize("failing", ["link", "fsync"])
def test_atomic_write_bytes_failure_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    monkeypatch.setattr(os, failing, _failing(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(tmp_path / "a.bin", b"data")
    assert list(tmp_path.iterdir()) == []


def test_atomic_replace_bytes_replaces_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "styles.csv"
    assert outputs.atomic_replace_bytes(target, b"first") == target
    outputs.atomic_replace_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    monkeypatch.setattr(os, "replace", _failing(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        outputs.atomic_replace_bytes(target, b"third")
    assert target.read_bytes() == b"second"
    assert _all_files(tmp_path) == [target]


def test_atomic_write_bytes_rename_publish_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic_files, "_RENAME_NEVER_OVERWRITES", True)
    monkeypatch.setattr(os, "link", _failing(AssertionError("os.link must not be used")))
    target = atomic_write_bytes(tmp_path / "a.bin", b"data")
    assert target.read_bytes() == b"data"
    assert _all_files(tmp_path) == [target]


def test_atomic_write_bytes_without_hard_links_still_never_overwrites(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """exFAT/FAT drives refuse link(2) with EPERM: publish through an exclusive placeholder."""
    monkeypatch.setattr(os, "link", _failing(PermissionError(errno.EPERM, "Operation not permitted")))
    target = atomic_write_bytes(tmp_path / "a.bin", b"data")
    assert target.read_bytes() == b"data"
    assert _all_files(tmp_path) == [target]
    with pytest.raises(FileExistsError):
        atomic_write_bytes(target, b"other")
    assert target.read_bytes() == b"data"
    assert _temp_files(tmp_path) == []


def test_atomic_write_bytes_needs_existing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "a.bin", b"data")
    assert list(tmp_path.iterdir()) == []


# --- RunOutputs ---------------------------------------------------------------------------------


def test_run_folder_is_dated_staged_and_published_at_once(tmp_path: Path, run: RunOutputs) -> None:
    date = (tmp_path / "out").resolve() / "2024-05-06"
    assert run.path == date / RUN_ID
    assert run.staging_path == date / f".{RUN_ID}.partial"
    assert not (tmp_path / "out").exists()
    assert run.written == ()
    first = run.save_image(_image(), seed=1)
    assert first == run.path / "00000-1.png"  # where it will be
    assert not run.path.exists() and (run.staging_path / first.name).is_file()
    assert run.publish() == run.path
    assert run.published and first.is_file()
    assert sorted(p.name for p in date.iterdir()) == [RUN_ID]  # the staging folder became the run


def test_publish_of_nothing_creates_nothing(tmp_path: Path, run: RunOutputs) -> None:
    assert run.publish() == run.path
    assert not (tmp_path / "out").exists()


def test_publish_never_replaces_an_existing_run_folder(run: RunOutputs) -> None:
    run.path.mkdir(parents=True)
    (run.path / "keep.txt").write_text("theirs")
    run.save_image(_image(), seed=1)
    with pytest.raises(OutputError, match="exists already; nothing was overwritten"):
        run.publish()
    assert sorted(p.name for p in run.path.iterdir()) == ["keep.txt"]
    run.discard()
    assert not run.staging_path.exists()


@pytest.mark.parametrize("fallback", [False, True])
def test_rename_no_replace_refuses_existing_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fallback: bool
) -> None:
    """renameat2(RENAME_NOREPLACE), and the check-then-rename fallback where it is missing."""
    if fallback:
        monkeypatch.setattr(atomic_files, "_renameat2", lambda: None)
    elif atomic_files._renameat2() is None:
        pytest.skip("renameat2 is not available on this platform (the fallback case runs)")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    for existing in ("file", "folder", "empty-folder"):
        target = tmp_path / existing
        if existing == "file":
            target.write_text("keep")
        else:
            target.mkdir()
            if existing == "folder":
                (target / "keep").write_text("keep")
        if existing == "empty-folder" and fallback:
            continue  # the fallback checks first; the race it cannot close replaces only an empty folder
        with pytest.raises(FileExistsError):
            atomic_files.rename_no_replace(src, target)
    atomic_files.rename_no_replace(src, tmp_path / "new")
    assert (tmp_path / "new" / "a").read_text() == "a" and not src.exists()
    assert (tmp_path / "file").read_text() == "keep" and (tmp_path / "folder" / "keep").is_file()


def test_discard_removes_the_staging_folder_and_an_emptied_date_folder(
    tmp_path: Path, run: RunOutputs
) -> None:
    run.save_image(_image(), seed=1)
    run.save_intermediate(_image(), stage="txt2img", seed=1)
    run.discard()
    assert list((tmp_path / "out").iterdir()) == []
    assert run.written == () and run.images == ()


def test_keep_only_intermediates_drops_finals_and_manifest(run: RunOutputs) -> None:
    run.save_intermediate(_image(), stage="txt2img", seed=1)
    run.save_image(_image(), seed=1)
    run.write_manifest({"status": "COMPLETED"})
    run.keep_only_intermediates()
    assert [p.relative_to(run.path).as_posix() for p in run.written] == ["intermediates/00000-1-txt2img.png"]
    assert run.images == ()
    run.write_manifest({"status": "FAILED"})
    run.publish()
    assert sorted(p.relative_to(run.path).as_posix() for p in _all_files(run.path)) == [
        "intermediates/00000-1-txt2img.png",
        "manifest.json",
    ]


def test_a_published_run_takes_no_more_files(run: RunOutputs) -> None:
    run.save_image(_image(), seed=1)
    run.publish()
    with pytest.raises(OutputError, match="published already"):
        run.save_image(_image(), seed=2)


def test_run_outputs_accepts_output_settings(tmp_path: Path) -> None:
    settings = OutputSettings(output_dir=tmp_path / "out", save_intermediates=True)
    assert RunOutputs(settings, RUN_ID, STARTED).path == RunOutputs(tmp_path / "out", RUN_ID, STARTED).path


def test_save_image_numbers_from_zero(run: RunOutputs) -> None:
    first = run.save_image(_image(), seed=42)
    second = run.save_image(_image((0, 0, 255)), seed=43)
    assert [first.name, second.name] == ["00000-42.png", "00001-43.png"]
    assert run.images == run.written == (first, second)
    run.publish()
    with Image.open(second) as reread:
        assert reread.format == "PNG"
        assert reread.size == (8, 8)
        assert reread.convert("RGB").getpixel((0, 0)) == (0, 0, 255)
    assert _temp_files(run.path) == []


def test_save_image_skips_taken_name_without_overwriting(run: RunOutputs) -> None:
    run.staging_path.mkdir(parents=True)
    taken = run.staging_path / "00000-42.png"
    taken.write_bytes(b"keep me")
    saved = run.save_image(_image(), seed=42)
    assert saved.name == "00001-42.png"
    assert taken.read_bytes() == b"keep me"
    assert run.save_image(_image(), seed=7).name == "00002-7.png"
    assert run.written == (saved, run.path / "00002-7.png")


def test_save_intermediate_writes_into_subfolder_with_own_counter(run: RunOutputs) -> None:
    final = run.save_image(_image(), seed=5)
    mid = run.save_intermediate(_image(), stage="txt2img", seed=5)
    mid2 = run.save_intermediate(_image(), stage="img2img", seed=5)
    assert mid.relative_to(run.path).as_posix() == "intermediates/00000-5-txt2img.png"
    assert mid2.name == "00001-5-img2img.png"
    assert run.images == (final,)
    assert run.written == (final, mid, mid2)


def test_png_text_chunks_survive(run: RunOutputs) -> None:
    info = PngInfo()
    text = "a cat in a hat, ünïcödé\nSteps: 20, Sampler: DPM++ 2M, Seed: 42"
    info.add_text("parameters", text)
    path = run.save_image(_image(), seed=42, pnginfo=info)
    mid = run.save_intermediate(_image(), stage="upscale", seed=42, pnginfo=info)
    run.publish()
    for written in (path, mid):
        with Image.open(written) as reread:
            assert reread.text["parameters"] == text  # type: ignore[attr-defined]


def test_failed_write_is_an_output_error_that_leaves_no_temp_and_keeps_numbering(
    run: RunOutputs, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(os, "link", _failing(OSError(5, "Input/output error")))
        with pytest.raises(OutputError, match="Input/output error; free some space or choose another"):
            run.save_image(_image(), seed=1)
    assert _all_files(run.staging_path) == []
    assert run.written == ()
    assert run.save_image(_image(), seed=1).name == "00000-1.png"


def test_unsafe_names_are_rejected_before_writing(tmp_path: Path, run: RunOutputs) -> None:
    with pytest.raises(ValueError, match="separator"):
        RunOutputs(tmp_path / "out", "../evil", STARTED)
    with pytest.raises(ValueError, match="separator"):
        run.save_intermediate(_image(), stage="../../escape", seed=1)
    assert _all_files(tmp_path) == []


def test_date_folder_linked_outside_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "2024-05-06").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(ConfigError, match="outside the output folder") as info:
        RunOutputs(tmp_path / "out", RUN_ID, STARTED)
    assert info.value.problems[0].field == "output_dir"
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_dangling_output_link_is_refused_not_created(tmp_path: Path) -> None:
    (tmp_path / "out").symlink_to(tmp_path / "missing", target_is_directory=True)
    with pytest.raises(ConfigError, match=r"symbolic link to .*which does not exist"):
        RunOutputs(tmp_path / "out", RUN_ID, STARTED)
    assert not (tmp_path / "missing").exists()


def test_output_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        RunOutputs(tmp_path / "out" / "sub", RUN_ID, STARTED)


def test_concurrent_writers_never_collide(run: RunOutputs) -> None:
    threads, per_thread = 8, 6
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                run.save_image(_image(), seed=7)
                run.save_intermediate(_image(), stage="txt2img", seed=7)
        except BaseException as exc:  # collected so the main thread can fail the test
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert errors == []
    total = threads * per_thread
    assert sorted(p.name for p in run.images) == [f"{n:05d}-7.png" for n in range(total)]
    run.publish()
    mids = sorted(p.name for p in (run.path / "intermediates").iterdir())
    assert mids == [f"{n:05d}-7-txt2img.png" for n in range(total)]
    assert len(set(run.written)) == 2 * total
    assert _temp_files(run.path) == []


# --- crash recovery helpers ---------------------------------------------------------------------


def test_discard_partial_runs_removes_only_that_runs_staging_folder(tmp_path: Path) -> None:
    killed = RunOutputs(tmp_path / "out", RUN_ID, STARTED)
    killed.save_image(_image(), seed=1)
    other = RunOutputs(tmp_path / "out", "173016-def456", STARTED)
    other.save_image(_image(), seed=2)
    removed = outputs.discard_partial_runs(tmp_path / "out", RUN_ID)
    assert [p.name for p in removed] == ["00000-1.png"]
    assert not killed.staging_path.exists() and other.staging_path.is_dir()
    assert outputs.discard_partial_runs(tmp_path / "out", "../x") == ()


def test_published_run_images_reads_a_completed_manifest(tmp_path: Path) -> None:
    run = RunOutputs(tmp_path / "out", RUN_ID, STARTED)
    image = run.save_image(_image(), seed=1)
    run.save_intermediate(_image(), stage="txt2img", seed=1)
    assert outputs.published_run_images(tmp_path / "out", RUN_ID) is None  # nothing published
    run.write_manifest(_manifest(run, images=[p.relative_to(run.path).as_posix() for p in run.written]))
    run.publish()
    assert outputs.published_run_images(tmp_path / "out", RUN_ID) == (image,)
    assert outputs.published_run_images(None, RUN_ID) is None
    assert outputs.published_run_images(tmp_path / "out", "*") is None


# --- manifest -----------------------------------------------------------------------------------


def _stage(**overrides: Any) -> dict[str, Any]:
    return {"stage": "txt2img", "seconds": 3.5, "image_count": 2, **overrides}


def _manifest(run: RunOutputs, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "run_id": RUN_ID,
        "status": "COMPLETED",
        "started": STARTED,
        "finished": FINISHED,
        "config": RunConfig(prompt="ein Schloß, 城"),
        "seeds": (42, 43),
        "plan": {"stages": [{"stage": "txt2img", "index": 0}]},
        "stages": [_stage(model_name="sdxl.safetensors", params={"Hires upscale": 2.0})],
        "images": list(run.images),
        "run_dir": run.path,
    }
    return build_manifest(**{**arguments, **overrides})


def test_manifest_round_trips_as_json(run: RunOutputs) -> None:
    run.save_image(_image(), seed=42)
    run.save_image(_image(), seed=43)
    data = _manifest(run)
    path = run.write_manifest(data)
    assert path == run.path / "manifest.json"
    assert run.written[-1] == path
    run.publish()
    raw = path.read_bytes().decode("utf-8")
    assert "城" in raw  # not escaped
    assert raw.startswith('{\n  "app"')
    assert json.loads(raw) == data


def test_manifest_content(run: RunOutputs) -> None:
    run.save_image(_image(), seed=42)
    data = _manifest(run, error=None)
    keys = "app run_id status started finished config seeds plan stages images error"
    assert list(data) == keys.split()
    assert data["app"] == {"name": "StableNew Qt", "version": __version__}
    assert _manifest(run, version="9.9.9")["app"]["version"] == "9.9.9"
    assert data["started"] == "2024-05-06T17:30:15+00:00"
    assert datetime.fromisoformat(data["finished"]) == FINISHED
    assert data["config"] == RunConfig(prompt="ein Schloß, 城").model_dump(mode="json")
    assert data["seeds"] == [42, 43]
    assert data["images"] == ["00000-42.png"]
    assert data["stages"] == [
        {
            "stage": "txt2img",
            "seconds": 3.5,
            "image_count": 2,
            "model_name": "sdxl.safetensors",
            "model_hash": None,
            "vae_name": None,
            "vae_hash": None,
            "params": {"Hires upscale": 2.0},
        }
    ]
    assert data["error"] is None


def test_manifest_accepts_lifecycle_state_and_config_dict(run: RunOutputs) -> None:
    tz = timezone(timedelta(hours=2))
    data = _manifest(
        run,
        status=LifecycleState.FAILED,
        error="txt2img: out of memory",
        config={"prompt": "x"},
        started=STARTED.astimezone(tz),
        images=["intermediates/00000-1-txt2img.png"],
    )
    assert data["status"] == "FAILED"
    assert json.dumps(data["status"]) == '"FAILED"'
    assert data["error"] == "txt2img: out of memory"
    assert data["config"] == {"prompt": "x"}
    assert data["started"].endswith("+02:00")
    assert data["images"] == ["intermediates/00000-1-txt2img.png"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"status": "RUNNING"}, "not one of COMPLETED, FAILED, CANCELLED"),
        ({"started": datetime(2024, 5, 6, 17, 30)}, "started must be timezone-aware"),
        ({"finished": datetime(2024, 5, 6, 17, 31)}, "finished must be timezone-aware"),
        ({"stages": [{"stage": "upscale"}]}, "lacks seconds, image_count"),
    ],
)
def test_build_manifest_rejects_bad_values(run: RunOutputs, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        _manifest(run, **overrides)


def test_manifest_is_written_once_and_strictly(run: RunOutputs) -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        run.write_manifest({"seconds": float("nan")})
    assert _all_files(run.staging_path) == []
    run.write_manifest({"path": Path("a") / "b", "when": STARTED})
    with pytest.raises(FileExistsError):
        run.write_manifest({"again": True})
    run.publish()
    assert json.loads((run.path / "manifest.json").read_text("utf-8")) == {
        "path": str(Path("a") / "b"),
        "when": STARTED.isoformat(),
    }
    assert _temp_files(run.path) == []
