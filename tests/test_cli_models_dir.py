"""``--models-dir`` on the CLI and the window (issue 17, item 12): a folder that does not exist is
an error (exit 2, one message, nothing listed); without it the CLI uses the window's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from stablenew_qt.app import main as app_main
from stablenew_qt.cli.main import build_parser, main
from stablenew_qt.core.user_settings import save_models_dir


def test_models_with_a_missing_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["models", "--models-dir", str(tmp_path / "does-not-exist")])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "does-not-exist does not exist" in err


def test_the_window_command_refuses_a_missing_folder_before_opening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert app_main(["--models-dir", str(tmp_path / "nope")]) == 2
    assert "nope does not exist" in capsys.readouterr().err


def test_the_cli_uses_the_folder_chosen_in_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stablenew_qt.cli.engine_options import engine_settings

    monkeypatch.delenv("STABLENEW_MODELS_DIR", raising=False)
    chosen = tmp_path / "models"
    chosen.mkdir()
    save_models_dir(chosen)  # what the window does when the user picks a folder
    args = build_parser().parse_args(["models"])
    assert engine_settings(args).models_dir == chosen
    given = tmp_path / "other"
    given.mkdir()
    assert (
        engine_settings(build_parser().parse_args(["models", "--models-dir", str(given)])).models_dir == given
    )
