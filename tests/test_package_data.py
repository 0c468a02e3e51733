"""The stylesheet, icon and presets are package data (issue 17): a non-editable wheel carries them
and the app finds them through importlib.resources."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

from stablenew_qt.app import APP_ICON, PRESETS, RESOURCES, STYLE_SHEET
from stablenew_qt.core.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
WANTED = (
    "stablenew_qt/resources/style.qss",
    "stablenew_qt/resources/icons/stablenew.svg",
    "stablenew_qt/resources/presets/sd15-portrait.json",
    "stablenew_qt/resources/presets/sdxl-base-refiner.json",
    "stablenew_qt/resources/presets/sdxl-hires-adetailer.json",
)


def test_the_app_finds_its_resources_through_importlib_resources() -> None:
    packaged = files("stablenew_qt") / "resources"
    assert Path(str(packaged)) == RESOURCES
    assert STYLE_SHEET.is_file() and APP_ICON.is_file()
    assert 'QLabel[role="error"]' in (packaged / "style.qss").read_text(encoding="utf-8")
    presets = sorted(p.name for p in PRESETS.glob("*.json"))
    assert presets == sorted(Path(w).name for w in WANTED if "/presets/" in w)
    for preset in PRESETS.glob("*.json"):
        RunConfig.from_json(preset.read_text(encoding="utf-8"))  # each one still loads


@pytest.mark.slow
def test_a_non_editable_wheel_carries_the_stylesheet_icon_and_presets(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if build.returncode != 0 and "No module named pip" in build.stderr:
        pytest.skip("pip is not installed in this interpreter, so no wheel can be built here")
    assert build.returncode == 0, build.stderr[-2000:]
    [wheel] = tmp_path.glob("stablenew_qt-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        missing = [name for name in WANTED if name not in names]
        assert missing == [], f"the wheel lacks {missing}"
        json.loads(archive.read("stablenew_qt/resources/presets/sd15-portrait.json"))
    assert not any(name.startswith("resources/") for name in names), "no top-level resources/ folder"
