"""The jump row above the stage cards (issue 17, item 11): one click brings a card, ADetailer
included, to the top of the cards' scroll area, and each button says whether its stage is on."""

from __future__ import annotations

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from stablenew_qt.gui.testing import MakeMainWindow


def test_a_jump_scrolls_its_card_to_the_top_and_the_buttons_follow_the_check_boxes(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    window.resize(1200, 700)  # short enough that the cards do not all fit
    window.show()
    qtbot.waitExposed(window)
    jumps, scroll = window.card_jumps, window.cards_scroll
    assert list(jumps.buttons) == ["input", "txt2img", "img2img", "upscale", "adetailer"]
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0, "the cards overflow the view"
    card = window.cards["adetailer"]
    qtbot.mouseClick(jumps.buttons["adetailer"], Qt.MouseButton.LeftButton)
    top = card.mapTo(scroll.widget(), card.rect().topLeft()).y()
    assert bar.value() == min(top, bar.maximum()) and bar.value() > 0
    visible_top = card.mapTo(scroll.viewport(), card.rect().topLeft()).y()
    assert 0 <= visible_top < scroll.viewport().height(), "the card's title is in view"
    qtbot.mouseClick(jumps.buttons["txt2img"], Qt.MouseButton.LeftButton)
    assert bar.value() < top

    on = window.model.get("adetailer.enabled")
    assert jumps.buttons["adetailer"].text() == ("ADetailer ●" if on else "ADetailer ○")
    card.setChecked(not on)
    assert jumps.buttons["adetailer"].text() == ("ADetailer ○" if on else "ADetailer ●")
    assert window.model.get("adetailer.enabled") is (not on)
    config = window.model.config
    window.model.replace(
        config.model_copy(update={"adetailer": config.adetailer.model_copy(update={"enabled": on})})
    )
    assert jumps.buttons["adetailer"].text() == ("ADetailer ●" if on else "ADetailer ○"), "a restore too"
