"""The progress panel's preview (issue 17, item 10): the last denoising preview of txt2img is not
what ADetailer works on, so it is cleared when the ADetailer stage starts (and kept when another
stage, e.g. upscale, starts)."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPixmap
from pytestqt.qtbot import QtBot

from stablenew_qt.core import events as ev
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.gui.bridge import EventBridge
from stablenew_qt.gui.progress_panel import ProgressPanel


def _preview() -> QPixmap:
    image = QPixmap(16, 16)
    image.fill(QColor("red"))
    return image


def test_the_preview_is_cleared_when_adetailer_starts_and_kept_for_other_stages(qtbot: QtBot) -> None:
    bridge = EventBridge()
    panel = ProgressPanel(bridge)
    qtbot.addWidget(panel)
    panel.show_image(_preview())
    with qtbot.waitSignal(bridge.stageStarted, timeout=5000):
        bridge.post(ev.StageStarted("r", StageName.UPSCALE, 1, 3))
    assert not panel.preview.pixmap().isNull(), "an upscale starts from the image shown"
    assert panel.label.text() == "stage 2/3 upscale"
    with qtbot.waitSignal(bridge.stageStarted, timeout=5000):
        bridge.post(ev.StageStarted("r", StageName.ADETAILER, 2, 3))
    assert panel.preview.pixmap().isNull()
    assert panel.label.text() == "stage 3/3 adetailer"
    panel.shutdown()
