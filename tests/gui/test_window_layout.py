"""The window's layout (issue 17, items 1 and 11): long errors never widen it, a first size that
uses the screen, a left panel wide enough for the cards, the splitter remembered."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QPixmap
from pytestqt.qtbot import QtBot

from stablenew_qt.core.errors import ConfigError, ConfigProblem
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.sequencer import StageName
from stablenew_qt.gui.elided_label import ElidedLabel, breakable
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.testing import MakeMainWindow, generate_and_wait, small_txt2img
from stablenew_qt.gui.window_layout import first_geometry, left_width

LONG = "the engine said: " + "x" * 2000


def _screen_width(window: MainWindow) -> int:
    return window.screen().availableGeometry().width()


def test_a_config_error_raised_during_a_run_reads_in_the_window_s_words(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    """An error found only once the run started (e.g. an ADetailer detector file gone since the
    job was queued) names the field as the window labels it, not as its config path."""
    problem = ConfigError(
        "'face.pt' is not installed: choose another", field="adetailer.units.0.adetailer_model"
    )
    window = make_main_window(FakeExecutor().raise_at(StageName.TXT2IMG, problem, step=1))
    small_txt2img(qtbot, window)
    generate_and_wait(qtbot, window, "runFailed")
    assert window.progress_panel.label.text() == (
        "Error: ADetailer unit 1: Model: 'face.pt' is not installed: choose another"
    )


def test_a_2000_character_run_error_keeps_the_window_within_the_screen(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window(FakeExecutor().fail_at(StageName.TXT2IMG, LONG, step=1))
    small_txt2img(qtbot, window)
    stale = QPixmap(16, 16)
    stale.fill(QColor("red"))
    window.progress_panel.show_image(stale)  # a preview of an earlier run
    assert not window.progress_panel.preview.pixmap().isNull()
    generate_and_wait(qtbot, window, "runFailed")
    qtbot.wait(50)  # let the layouts settle
    assert window.width() <= _screen_width(window)
    assert window.minimumSizeHint().width() <= _screen_width(window)
    label = window.progress_panel.label
    assert label.text().startswith("Error: ") and label.text().endswith(LONG), "the full text is kept"
    assert label.toolTip() == label.text(), "and shown in the tooltip"
    assert any(LONG in r.getMessage() for r in window.log_panel.records), "and in the Log"
    assert label.shown_text().endswith("…") and len(label.shown_text()) < 300
    assert window.progress_panel.preview.pixmap().isNull(), "no stale preview under the error"


def test_a_2000_character_config_error_keeps_the_window_within_the_screen(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    before = window.width()
    window.status.show_config_error(LONG)
    card = window.cards["txt2img"]
    card.show_problems([ConfigProblem("txt2img.model", LONG)])
    window.prompt_panel.show_problems([LONG])  # the prompt's and the input image's lines too
    window.input_panel.show_problems([LONG])
    qtbot.wait(50)
    assert window.width() == before <= _screen_width(window)
    assert window.error_label.toolTip() == LONG
    assert window.prompt_panel.error_label.toolTip() == window.input_panel.error_label.toolTip() == LONG


def test_the_first_window_takes_85_percent_of_the_screen_and_fits_the_cards(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    available = window.screen().availableGeometry()
    assert abs(window.width() - 0.85 * available.width()) <= 2
    assert window.width() <= available.width()
    # On a 1600 x 1000 screen (the issue's), the cards need no horizontal scroll bar.
    window.first_layout(QRect(0, 0, 1600, 1000))
    qtbot.wait(50)
    assert window.width() == 1360
    assert not window.cards_scroll.horizontalScrollBar().isVisible()
    assert window.splitter.sizes()[0] >= window.cards_scroll.widget().sizeHint().width()


def test_the_splitter_is_remembered(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    total = sum(window.splitter.sizes())
    window.splitter.setSizes([total - 330, 330])
    window.close()  # saves the layout in its settings
    again = make_main_window()
    # The second window has its own settings file: restore the first one's saved layout into it.
    again._restore_layout(window.prefs.window_layout())
    assert again.splitter.sizes()[1] == 330


def test_elided_label_and_breakable_text() -> None:
    assert breakable("ab cd", 40) == "ab cd"
    assert breakable("a" * 85, 40).count("\u200b") == 2
    assert breakable("a" * 85, 40).replace("\u200b", "") == "a" * 85


def test_elided_label_hint_stays_short(qtbot: QtBot) -> None:
    label = ElidedLabel(LONG)
    qtbot.addWidget(label)
    assert label.sizeHint().width() < 600 and label.minimumSizeHint().width() < 200
    label.resize(200, 20)
    assert label.shown_text().endswith("…")
    label.setText("short")
    assert label.shown_text() == "short" and label.toolTip() == "short"


def test_left_width_rules() -> None:
    assert left_width(1360, 412, 16) == 432
    assert left_width(680, 412, 16) == 360  # the right pane keeps its 320
    assert first_geometry(QRect(0, 0, 1600, 1000)) == QRect(120, 75, 1360, 850)
