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


WINDOW_THEN_CLI = """
import sys
from stablenew_qt.app import main as app_main
from stablenew_qt.cli.engine_options import engine_settings
from stablenew_qt.cli.main import build_parser
code = app_main(["--models-dir", sys.argv[1], "--exit-after-show"])
print("window exit:", code)
# What `stablenew-qt models` lists from (its own listing imports torch: too slow for this test).
print("cli models_dir:", engine_settings(build_parser().parse_args(["models"])).models_dir)
"""


@pytest.mark.slow
def test_the_window_s_models_dir_option_is_what_the_cli_uses_next(tmp_path: Path) -> None:
    """``stablenew-qt --models-dir DIR`` saves DIR in settings.json, as choosing it in the Models
    menu does, so a later ``stablenew-qt models`` lists DIR (issue 17). A subprocess with its own
    settings folders: the window's QSettings and settings.json are this test's alone."""
    import json
    import os
    import subprocess
    import sys

    chosen = tmp_path / "a1111" / "models"
    chosen.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != "STABLENEW_MODELS_DIR"}
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME"):
        env[var] = str(tmp_path / var.lower())
    env["QT_QPA_PLATFORM"] = "offscreen"
    done = subprocess.run(
        [sys.executable, "-c", WINDOW_THEN_CLI, str(chosen)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["window exit: 0", f"cli models_dir: {chosen}"]
    [saved] = list((tmp_path / "xdg_data_home").rglob("settings.json"))
    assert json.loads(saved.read_text(encoding="utf-8"))["models_dir"] == str(chosen)
