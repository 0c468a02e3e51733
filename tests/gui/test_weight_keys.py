"""Ctrl+Up / Ctrl+Down on the prompt boxes: the text, the selection, undo, the other boxes and keys."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QTextEdit, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.testing import MakeMainWindow
from stablenew_qt.gui.weight_keys import WeightKeyFilter

CTRL = Qt.KeyboardModifier.ControlModifier
UP, DOWN = Qt.Key.Key_Up, Qt.Key.Key_Down


def _put_cursor(edit: QPlainTextEdit | QTextEdit, start: int, end: int | None = None) -> None:
    cursor = edit.textCursor()
    cursor.setPosition(start)
    cursor.setPosition(start if end is None else end, QTextCursor.MoveMode.KeepAnchor)
    edit.setTextCursor(cursor)


def _typed_prompt(qtbot: QtBot, window: MainWindow, text: str) -> QPlainTextEdit:
    edit = window.prompt_panel.prompt
    edit.setFocus()
    edit.selectAll()
    qtbot.keyClicks(edit, text)
    return edit


def test_ctrl_up_and_down_edit_the_word_under_the_cursor(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    edit = _typed_prompt(qtbot, window, "a cat, dog")
    _put_cursor(edit, 3)
    qtbot.keyClick(edit, UP, CTRL)
    assert edit.toPlainText() == "a (cat:1.1), dog"
    assert edit.textCursor().selectedText() == "cat"
    assert window.model.get("prompt") == "a (cat:1.1), dog"
    qtbot.keyClick(edit, UP, CTRL)
    assert edit.toPlainText() == "a (cat:1.2), dog"
    qtbot.keyClick(edit, DOWN, CTRL)
    qtbot.keyClick(edit, DOWN, CTRL)
    assert edit.toPlainText() == "a cat, dog"  # back at 1.0: the parentheses go
    assert edit.textCursor().selectedText() == "cat"
    assert window.model.get("prompt") == "a cat, dog"


def test_each_press_is_one_undo_step(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    edit = _typed_prompt(qtbot, window, "a cat")
    _put_cursor(edit, 3)
    qtbot.keyClick(edit, UP, CTRL)
    qtbot.keyClick(edit, UP, CTRL)
    assert edit.toPlainText() == "a (cat:1.2)"
    qtbot.keyClick(edit, Qt.Key.Key_Z, CTRL)
    assert edit.toPlainText() == "a (cat:1.1)"
    qtbot.keyClick(edit, Qt.Key.Key_Z, CTRL)
    assert edit.toPlainText() == "a cat"  # what was typed before is still there
    assert window.model.get("prompt") == "a cat"
    edit.redo()
    assert edit.toPlainText() == "a (cat:1.1)"


def test_a_selection_and_the_negative_box(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    negative = window.prompt_panel.negative
    negative.setPlainText("blurry, low quality")
    negative.setFocus()
    _put_cursor(negative, 8, 19)  # "low quality" selected
    qtbot.keyClick(negative, DOWN, CTRL)
    assert negative.toPlainText() == "blurry, (low quality:0.9)"
    assert negative.textCursor().selectedText() == "low quality"
    assert window.model.get("negative_prompt") == "blurry, (low quality:0.9)"


def test_lora_weight_and_old_style_emphasis(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    edit = _typed_prompt(qtbot, window, "((cat)), <lora:add_detail:1>")
    _put_cursor(edit, 3)
    qtbot.keyClick(edit, UP, CTRL)
    assert edit.toPlainText() == "(cat:1.3), <lora:add_detail:1>"
    _put_cursor(edit, 20)
    qtbot.keyClick(edit, DOWN, CTRL)
    assert edit.toPlainText() == "(cat:1.3), <lora:add_detail:0.95>"
    assert edit.textCursor().selectedText() == "lora:add_detail"


def test_positions_after_characters_outside_the_bmp(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    edit = window.prompt_panel.prompt
    edit.setPlainText("🐱🐱 cat")  # each cat face is two UTF-16 units in Qt, one character in Python
    edit.setFocus()
    _put_cursor(edit, 6)
    qtbot.keyClick(edit, UP, CTRL)
    assert edit.toPlainText() == "🐱🐱 (cat:1.1)"
    assert edit.textCursor().selectedText() == "cat"


def test_other_keys_and_modifiers(qtbot: QtBot, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    edit = window.prompt_panel.prompt
    edit.setPlainText("cat\ndog")
    edit.setFocus()
    _put_cursor(edit, 5)
    qtbot.keyClick(edit, UP)  # no Ctrl: the cursor moves up a line, the text stays
    assert edit.toPlainText() == "cat\ndog"
    assert edit.textCursor().position() == 1
    qtbot.keyClick(edit, UP, Qt.KeyboardModifier.MetaModifier)  # A1111 also takes Meta (Cmd)
    assert edit.toPlainText() == "(cat:1.1)\ndog"
    qtbot.keyClick(edit, UP, CTRL | Qt.KeyboardModifier.ShiftModifier)  # and ignores Shift
    assert edit.toPlainText() == "(cat:1.2)\ndog"
    edit.setReadOnly(True)
    qtbot.keyClick(edit, UP, CTRL)
    assert edit.toPlainText() == "(cat:1.2)\ndog"


def test_the_box_wins_over_a_window_shortcut_on_the_same_keys(qtbot: QtBot) -> None:
    host = QWidget()
    qtbot.addWidget(host)
    edit = QTextEdit()  # QTextEdit works as QPlainTextEdit does
    QVBoxLayout(host).addWidget(edit)
    WeightKeyFilter(edit)
    action = QAction(host)
    action.setShortcut(QKeySequence("Ctrl+Up"))
    host.addAction(action)
    fired: list[bool] = []
    action.triggered.connect(lambda: fired.append(True))
    host.show()
    host.activateWindow()
    qtbot.waitUntil(host.isActiveWindow, timeout=2000)
    edit.setFocus()
    edit.setPlainText("red cat")
    _put_cursor(edit, 1)
    qtbot.keyClick(edit, UP, CTRL)
    assert edit.toPlainText() == "(red:1.1) cat"
    assert fired == []
    edit.clearFocus()
    host.setFocus()
    qtbot.keyClick(host, UP, CTRL)  # elsewhere in the window the shortcut still works
    assert fired == [True]
