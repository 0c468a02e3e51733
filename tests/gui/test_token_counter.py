"""The prompt boxes' token counters: the numbers A1111's counter gives, debounced, off the GUI thread."""

from __future__ import annotations

import threading

from PySide6.QtWidgets import QPlainTextEdit
from pytestqt.qtbot import QtBot

from stablenew_qt.core.clip_tokens import count_prompt_tokens
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.testing import MakeMainWindow, set_spin
from stablenew_qt.gui.token_counter import TokenCounter, TokenCounting

WAIT_MS = 5000  # the first count reads the CLIP vocabulary (about 0.3 s)


def _expected(prompt: str, steps: int = 30, *, negative: bool = False) -> str:
    used, limit = count_prompt_tokens(prompt, steps, negative=negative)
    return f"{used}/{limit}"


def _wait_for(qtbot: QtBot, counter: TokenCounter, text: str) -> None:
    qtbot.waitUntil(lambda: counter.text() == text, timeout=WAIT_MS)


def _type(qtbot: QtBot, edit: QPlainTextEdit, text: str) -> None:
    edit.setFocus()
    qtbot.keyClicks(edit, text)


def test_typing_updates_both_counters_with_a1111s_numbers(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    panel = window.prompt_panel
    panel.prompt.clear()
    panel.negative.clear()
    _wait_for(qtbot, panel.token_counters.prompt, "0/75")
    _type(qtbot, panel.prompt, "a lighthouse at dusk, (oil painting:1.2), <lora:add_detail:0.8>")
    _wait_for(qtbot, panel.token_counters.prompt, _expected(panel.prompt.toPlainText()))
    assert panel.token_counters.prompt.text() == "8/75"  # the LoRA tag is not counted
    # The positive prompt is split at AND, the negative one is not: each box has its own counter.
    panel.prompt.setPlainText("cat AND dog")
    panel.negative.setPlainText("cat AND dog")
    _wait_for(qtbot, panel.token_counters.prompt, "1/75")
    _wait_for(qtbot, panel.token_counters.negative, "3/75")
    assert _expected("cat AND dog") == "1/75"
    assert _expected("cat AND dog", negative=True) == "3/75"


def test_a_76th_token_or_a_break_moves_the_limit_to_150(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    panel = window.prompt_panel
    counter = panel.token_counters.prompt
    panel.prompt.setPlainText(" ".join(["cat"] * 75))
    _wait_for(qtbot, counter, "75/75")
    panel.prompt.moveCursor(panel.prompt.textCursor().MoveOperation.End)
    _type(qtbot, panel.prompt, " cat")
    _wait_for(qtbot, counter, "76/150")
    panel.prompt.setPlainText("a cat BREAK a dog")
    _wait_for(qtbot, counter, _expected("a cat BREAK a dog"))
    assert counter.text() == "77/150"


def test_steps_decide_which_prompt_editing_text_counts(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    panel = window.prompt_panel
    set_spin(qtbot, window, "txt2img.steps", 5)
    panel.prompt.setPlainText("[a:b b b b b b:10]")  # "b b b b b b" only from step 10 on
    _wait_for(qtbot, panel.token_counters.prompt, _expected("[a:b b b b b b:10]", 5))
    assert panel.token_counters.prompt.text() == "1/75"
    set_spin(qtbot, window, "txt2img.steps", 20)
    _wait_for(qtbot, panel.token_counters.prompt, "6/75")
    assert _expected("[a:b b b b b b:10]", 20) == "6/75"


def test_the_counter_sits_in_the_top_right_corner_of_its_box(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    for counter in (window.prompt_panel.token_counters.prompt, window.prompt_panel.token_counters.negative):
        qtbot.waitUntil(counter.label.isVisible, timeout=WAIT_MS)
        label, area = counter.label.geometry(), counter.edit.viewport().geometry()
        assert counter.label.parentWidget() is counter.edit
        assert area.contains(label), (label, area)
        assert area.right() - label.right() <= 4 and label.top() - area.top() <= 4


def test_a_burst_of_typing_is_counted_once_off_the_gui_thread(qtbot: QtBot) -> None:
    calls: list[tuple[str, int]] = []

    def count(prompt: str, steps: int, negative: bool) -> tuple[int, int]:
        calls.append((prompt, threading.get_ident()))
        return len(prompt), 75

    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.show()
    counting = TokenCounting(edit, count=count, cheap=lambda _prompt: False)
    counter = TokenCounter(edit, counting, lambda: 20, delay_ms=50)
    qtbot.waitUntil(lambda: counter.text() == "0/75", timeout=WAIT_MS)
    calls.clear()
    with qtbot.waitSignal(counter.counted, timeout=WAIT_MS) as signal:
        qtbot.keyClicks(edit, "a cat sat on the mat")
    assert signal.args == [20, 75]
    assert [prompt for prompt, _ in calls] == ["a cat sat on the mat"]
    assert calls[0][1] != threading.get_ident()
    counting.shutdown()


def test_an_overtaken_count_is_never_shown(qtbot: QtBot) -> None:
    release = threading.Event()

    def count(prompt: str, steps: int, negative: bool) -> tuple[int, int]:
        if prompt == "slow":
            release.wait(5)
        return len(prompt), 75

    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.show()
    counting = TokenCounting(edit, count=count, cheap=lambda _prompt: False)
    counter = TokenCounter(edit, counting, lambda: 20, delay_ms=10)
    shown: list[int] = []
    counter.counted.connect(lambda used, _limit: shown.append(used))
    edit.setPlainText("slow")
    qtbot.waitUntil(lambda: not counter.timer.isActive(), timeout=WAIT_MS)  # "slow" is being counted
    edit.setPlainText("the final text")
    qtbot.waitUntil(lambda: not counter.timer.isActive(), timeout=WAIT_MS)
    release.set()
    qtbot.waitUntil(lambda: counter.text() == "14/75", timeout=WAIT_MS)
    qtbot.waitUntil(counting.is_idle, timeout=WAIT_MS)
    qtbot.wait(50)  # a stale answer would arrive by now
    assert 4 not in shown
    assert counter.text() == "14/75"
    counting.shutdown()


def test_short_prompts_are_counted_at_once_and_the_rest_on_the_pool(qtbot: QtBot) -> None:
    threads: list[int] = []

    def count(prompt: str, steps: int, negative: bool) -> tuple[int, int]:
        threads.append(threading.get_ident())
        return count_prompt_tokens(prompt, steps, negative=negative)

    edit = QPlainTextEdit()
    qtbot.addWidget(edit)
    edit.show()
    counting = TokenCounting(edit, count=count)
    counter = TokenCounter(edit, counting, lambda: 20, delay_ms=10)
    long_prompt = ", ".join(["a lighthouse at dusk"] * 20)
    edit.setPlainText(long_prompt)  # the first count also reads the vocabulary: on the pool
    _wait_for(qtbot, counter, _expected(long_prompt, 20))
    assert threads[-1] != threading.get_ident()
    for prompt, on_gui_thread in (
        ("a cat", True),
        ("[a cat:a big dog:5]", False),
        (long_prompt + " x", False),
    ):
        jobs = counting.jobs_started
        edit.setPlainText(prompt)
        _wait_for(qtbot, counter, _expected(prompt, 20))
        assert (threads[-1] == threading.get_ident()) is on_gui_thread, prompt
        assert counting.jobs_started == jobs + (0 if on_gui_thread else 1)
    counting.shutdown()


def test_closing_the_window_mid_edit_leaves_no_timer_running(
    qtbot: QtBot, make_main_window: MakeMainWindow
) -> None:
    window: MainWindow = make_main_window()
    _type(qtbot, window.prompt_panel.prompt, "typed just before closing")
    counter = window.prompt_panel.token_counters.prompt
    assert counter.timer.isActive()
    window.close()
    assert not counter.timer.isActive()  # (make_main_window also fails the test on a running timer)
