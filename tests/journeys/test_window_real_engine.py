"""The real window over the REAL DiffusersExecutor on a demo model: prompt to PNG, on the CPU,
through the queue the app ships (a queue file), with the GUI's event loop kept responsive while
the engine thread works."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.queue import JobStatus
from stablenew_qt.engine.demo import DEMO_MODELS
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings
from stablenew_qt.gui import testing
from stablenew_qt.gui.services import ModelChoices
from stablenew_qt.gui.testing import MakeMainWindow, choose, small_txt2img

make_main_window = testing.make_main_window  # the window fixture, shared with tests/gui

#: A cold start (torch import, demo model load) on a slow CPU is many seconds; generous on purpose.
REAL_RUN_TIMEOUT_MS = 180_000
#: The largest gap allowed between 10 ms heartbeats: a frozen GUI shows gaps of seconds.
MAX_HEARTBEAT_GAP_S = 0.5


class Heartbeat:
    """A 10 ms QTimer on the GUI thread that records the largest gap between its ticks, and the
    full (generation 2) garbage collections that ran meanwhile (they hold the GIL, so every thread
    waits for them: the usual cause of a long gap, hence named in the failure message)."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._on_timeout)
        self.ticks = 0
        self.max_gap = 0.0
        self._last = 0.0
        self.full_collections_ms: list[float] = []
        self._collection_start = 0.0

    def start(self) -> None:
        self._last = time.monotonic()
        gc.callbacks.append(self._on_collection)
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()
        gc.callbacks.remove(self._on_collection)
        self._on_timeout()

    def describe(self) -> str:
        collections = ", ".join(f"{ms:.0f}" for ms in self.full_collections_ms) or "none"
        return f"GUI froze for {self.max_gap * 1000:.0f} ms; full collections meanwhile (ms): {collections}"

    def _on_collection(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._collection_start = time.monotonic()
        else:
            self.full_collections_ms.append((time.monotonic() - self._collection_start) * 1000)

    def _on_timeout(self) -> None:
        now = time.monotonic()
        self.max_gap = max(self.max_gap, now - self._last)
        self._last = now
        self.ticks += 1


@pytest.fixture
def unfreeze_after() -> Iterator[None]:
    """The warm-up freezes every object alive (as in the app); give them back to the collector
    afterwards, since the suite shares one process."""
    yield
    gc.unfreeze()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_window_runs_the_real_engine_on_a_demo_model(
    qtbot: QtBot,
    make_main_window: MakeMainWindow,
    demo_models: dict[str, Path],
    tmp_path: Path,
    unfreeze_after: None,
) -> None:
    model = DEMO_MODELS[0]
    demo_root = demo_models[model].parent
    engine = DiffusersExecutor(
        EngineSettings(models_dir=tmp_path / "models", device="cpu", demo_dir=demo_root)
    )
    window = make_main_window(engine, choices=ModelChoices(checkpoints=DEMO_MODELS))
    small_txt2img(qtbot, window, "a red lighthouse on a cliff")
    choose(window, "txt2img.model", model)
    assert window.generate_button.isEnabled(), window.error_label.text()
    # As app.main does once the window shows. Without it, this late in the suite, one full
    # collection during the model load walks the earlier tests' objects too (848 ms seen in CI).
    with qtbot.waitSignal(window.bridge.engineReported, timeout=REAL_RUN_TIMEOUT_MS):
        window.host.warm_up()

    heartbeat = Heartbeat()
    heartbeat.start()
    try:
        with qtbot.waitSignal(window.bridge.runCompleted, timeout=REAL_RUN_TIMEOUT_MS) as done:
            window.generate_button.click()
    finally:
        heartbeat.stop()
    qtbot.waitUntil(lambda: window.host.state is not LifecycleState.RUNNING, timeout=10_000)

    paths = done.args[0].image_paths
    assert len(paths) == 1 and paths[0].is_file()
    meta = read_image_metadata(paths[0])
    assert meta.parameters is not None and "a red lighthouse on a cliff" in meta.parameters
    assert "Steps: 3" in meta.parameters and "Size: 64x64" in meta.parameters
    assert meta.run_config is not None and meta.run_config.txt2img.model == model
    assert heartbeat.ticks > 10
    assert heartbeat.max_gap < MAX_HEARTBEAT_GAP_S, heartbeat.describe()
    [job] = window.session.queue.list()
    assert job.status is JobStatus.COMPLETED and job.outputs == tuple(paths), "it ran as a queued job"
    assert engine.device_summary() == "CPU (float32)"  # the engine is loaded now, so it says where
    qtbot.waitUntil(lambda: window.device_label.text() == "CPU (float32)", timeout=10_000)
