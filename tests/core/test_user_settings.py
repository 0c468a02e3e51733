"""One models folder for the window and the CLI (issue 17, item 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.user_settings import (
    checked_models_dir,
    models_dir,
    save_models_dir,
    save_workers,
    saved_models_dir,
    saved_workers,
    settings_file,
)
from stablenew_qt.core.workers import WorkersMode, WorkersSetting


@pytest.fixture(autouse=True)
def _no_env_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STABLENEW_MODELS_DIR", raising=False)


def test_the_saved_folder_applies_until_the_command_line_names_another(tmp_path: Path) -> None:
    saved, given = tmp_path / "a1111" / "models", tmp_path / "forge"
    saved.mkdir(parents=True)
    given.mkdir()
    file = tmp_path / "settings.json"
    assert saved_models_dir(file) is None
    save_models_dir(saved, file)
    assert saved_models_dir(file) == saved
    assert models_dir(None, file) == saved
    assert models_dir(str(given), file) == given


def test_a_folder_that_does_not_exist_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist: give an existing A1111/Forge models folder"):
        checked_models_dir(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is not a folder"):
        checked_models_dir(str(tmp_path / "file"))


def test_a_saved_folder_that_is_gone_falls_back_to_the_default(tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    save_models_dir(tmp_path / "gone", file)
    assert models_dir(None, file) != tmp_path / "gone"


def test_a_broken_settings_file_is_ignored(tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    file.write_text("{not json")
    assert saved_models_dir(file) is None
    save_models_dir(tmp_path, file)  # and rewritten whole
    assert saved_models_dir(file) == tmp_path


def test_the_settings_file_lives_in_the_user_data_folder() -> None:
    assert settings_file().name == "settings.json"


def test_the_workers_setting_is_kept_beside_the_models_folder(tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    assert saved_workers(file) == WorkersSetting()  # nothing saved: this GPU only
    save_models_dir(tmp_path, file)
    save_workers(WorkersSetting.parse("ray://head:10001", Path("/srv/models")), file)
    again = saved_workers(file)
    assert (again.mode, again.address, again.models_dir) == (
        WorkersMode.ADDRESS,
        "ray://head:10001",
        Path("/srv/models"),
    )
    assert saved_models_dir(file) == tmp_path, "the other keys stay"
    save_workers(WorkersSetting.parse("3"), file)
    assert saved_workers(file) == WorkersSetting(WorkersMode.COUNT, count=3)


def test_a_saved_workers_text_that_no_longer_parses_reads_as_this_gpu(tmp_path: Path) -> None:
    file = tmp_path / "settings.json"
    file.write_text('{"workers": "many", "workers_models_dir": ""}', encoding="utf-8")
    assert saved_workers(file) == WorkersSetting()
