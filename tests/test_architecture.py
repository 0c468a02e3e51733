"""Layering: importing the core, the CLI or the benchmarks stays light (no torch, no Qt), so the GUI
starts fast and the core can be used headless; and no two modules import each other, directly or
round a loop (the import-linter contracts in pyproject.toml hold the layers)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_importing_the_benchmarks_loads_no_heavy_library() -> None:
    loaded = _modules_after("import stablenew_qt.benchmarks.chain, stablenew_qt.benchmarks.adetailer")
    assert not {m for m in loaded if m.split(".")[0] in HEAVY}


def _import_cycles() -> list[list[str]]:
    """Strongly connected groups of modules in the import graph (type-checking imports included:
    a cycle that only the type checker sees still ties two modules together)."""
    import grimp

    graph = grimp.build_graph("stablenew_qt", include_external_packages=False)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return cycles


def test_there_are_no_import_cycles() -> None:
    assert _import_cycles() == []


def test_the_cycle_check_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check above can fail: a two-module package that imports itself round is reported."""
    import grimp

    package = tmp_path / "stablenew_qt_cycle_probe"
    package.mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "a.py").write_text("from . import b\n", encoding="utf-8")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    real = grimp.build_graph
    monkeypatch.setattr(grimp, "build_graph", lambda _name, **kw: real("stablenew_qt_cycle_probe", **kw))
    assert _import_cycles() == [["stablenew_qt_cycle_probe.a", "stablenew_qt_cycle_probe.b"]]
