"""Layering: importing the core must stay light (no torch, no Qt), so the GUI starts fast and the
core can be used headless."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "PySide6", "diffusers", "transformers", "ultralytics", "accelerate")


def _modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))


def test_importing_core_loads_neither_torch_nor_qt() -> None:
    loaded = _modules_after(
        "import stablenew_qt.core, stablenew_qt.core.controller, stablenew_qt.core.fake_executor, "
        "stablenew_qt.core.infotext, stablenew_qt.core.outputs, stablenew_qt.core.hooks"
    )
    assert "stablenew_qt.core.controller" in loaded
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def test_cli_startup_loads_no_heavy_library() -> None:
    loaded = _modules_after("import stablenew_qt.cli")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}
