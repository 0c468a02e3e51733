"""Engine test fixtures: the tiny demo models, built once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every demo model (name -> diffusers folder), built once per session into a temp dir."""
    from stablenew_qt.engine.demo import ensure_demo_models

    return ensure_demo_models(tmp_path_factory.mktemp("demo-models"))
