"""JT03: prompt to image through the real window (FakeExecutor behind the real engine thread), as a
job of the window's queue."""

from __future__ import annotations

from PIL import Image
from pytestqt.qtbot import QtBot

from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.gui import testing
from stablenew_qt.gui.testing import (
    RUN_TIMEOUT_MS,
    MakeMainWindow,
    small_txt2img,
)

make_main_window = testing.make_main_window  # the window fixture, shared with tests/gui


def test_jt03_prompt_to_image_through_the_window(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    fake = FakeExecutor()
    window = make_main_window(fake)
    small_txt2img(qtbot, window, "a lighthouse at dusk, oil painting")
    bridge = window.bridge
    names = ("jobStarted", "lifecycleChanged", "runStarted", "stageStarted", "stepProgress")
    names += ("stageFinished", "runCompleted", "jobFinished")
    heard: list[str] = []
    for name in names:
        getattr(bridge, name).connect(lambda _event, name=name: heard.append(name))

    with qtbot.waitSignal(bridge.jobFinished, timeout=RUN_TIMEOUT_MS):
        window.generate_button.click()

    # The queued job's events, in order (progress may arrive as one or several coalesced signals).
    assert [name for i, name in enumerate(heard) if i == 0 or heard[i - 1] != name] == [
        "jobStarted",
        "lifecycleChanged",
        "runStarted",
        "stageStarted",
        "stepProgress",
        "stageFinished",
        "runCompleted",
        "lifecycleChanged",
        "jobFinished",
    ]
    assert window.lifecycle_label.text() == LifecycleState.COMPLETED.value
    assert fake.stages_called == [StageName.TXT2IMG]
    assert fake.calls[0].payload.prompt == "a lighthouse at dusk, oil painting"
    assert fake.calls[0].thread != "MainThread"
    assert fake.calls[0].payload.seeds == (1234,)
    images = window.results_panel.image_paths()
    assert len(images) == 1 and images[0].is_file()
    with Image.open(images[0]) as image:
        assert image.size == (64, 64)
    parameters = window.results_panel.parameters  # read off the GUI thread: it arrives a moment later
    qtbot.waitUntil(lambda: "a lighthouse at dusk" in parameters.toPlainText(), timeout=RUN_TIMEOUT_MS)
    assert read_image_metadata(images[0]).run_config is not None
    # The final image replaces the last preview once decoded (off the GUI thread).
    qtbot.waitUntil(lambda: window.progress_panel.loader.decodes == 1, timeout=RUN_TIMEOUT_MS)
    assert not window.progress_panel.preview.pixmap().isNull()
    assert window.progress_panel.label.text().startswith("Done: 1 image(s)")
    assert window.prompt_panel.reuse_button.isEnabled()


def test_jt03_use_these_settings_restores_the_prompt(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    small_txt2img(qtbot, window, "first prompt")
    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS):
        window.generate_button.click()
    window.prompt_panel.prompt.setPlainText("something else")
    with qtbot.waitSignal(window.restorer.restored, timeout=RUN_TIMEOUT_MS):  # read off the GUI thread
        window.results_panel.use_button.click()
    assert window.prompt_panel.prompt.toPlainText() == "first prompt"
    assert window.model.config.seed == 1234
    assert window.model.config.txt2img.steps == 3
