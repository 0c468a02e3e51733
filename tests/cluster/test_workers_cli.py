"""``queue run --workers``: Ray stays out of every process that does not ask for workers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stablenew_qt.cli import main


@pytest.mark.parametrize("module", ["stablenew_qt.cli", "stablenew_qt.app", "stablenew_qt.cluster"])
def test_importing_the_cli_the_app_or_the_cluster_package_imports_no_ray(module: str) -> None:
    code = f"import sys, {module}; sys.exit(3 if 'ray' in sys.modules else 0)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{module} imported ray at import time\n{done.stderr}"


def test_a_bad_workers_value_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    queue = tmp_path / "queue.sqlite3"
    code = main(
        ["queue", "run", "--queue", str(queue), "--output", str(tmp_path / "out"), "--workers", "lots"]
    )
    err = capsys.readouterr().err
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "'lots'" in lines[0] and "local" in lines[0], err
    assert not (tmp_path / "out").exists()
