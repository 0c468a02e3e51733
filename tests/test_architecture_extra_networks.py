"""The extra-network libraries import lazily: no torch, peft or Qt until they are used."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "PySide6", "diffusers", "transformers", "peft", "safetensors")


def _heavy_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {m for m in json.loads(out.stdout) if m.split(".")[0] in HEAVY}


def test_core_extra_networks_is_pure_python() -> None:
    assert _heavy_after("import stablenew_qt.core.extra_networks") == set()


def test_engine_lora_and_embeddings_import_nothing_heavy_until_used() -> None:
    assert _heavy_after("import stablenew_qt.engine.lora, stablenew_qt.engine.embeddings") == set()
