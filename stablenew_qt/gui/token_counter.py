"""A1111's token counter on the prompt boxes: ``12/75``, ``80/150`` in each box's top-right corner.

:func:`stablenew_qt.core.clip_tokens.count_prompt_tokens` gives the numbers (A1111's
``update_token_counter``: extra-network tags out, ``AND`` parts of the positive prompt, the
longest text of the prompt-editing schedule at the first stage's Steps, against the next multiple
of 75). Counting a 2,000-token paste takes tens of milliseconds, a prompt with alternation or
prompt editing one count per scheduled text, and the first count reads the CLIP vocabulary from
disk (about 0.25 s): those run on :class:`TokenCounting`'s own one-thread pool, never on the GUI
thread. A short prompt with one text (at most :data:`INLINE_CHARS` characters, no ``[``) once
the vocabulary is loaded costs at most about a millisecond and is counted at once, on the GUI
thread, without a thread hop. Each box waits :data:`DEBOUNCE_MS` after the last edit (A1111
waits 800 ms before asking its server), so a burst of typing or a paste is counted once; a result
that a newer edit has overtaken is dropped.

The pool is :class:`TokenCounting`'s first child and the relay its workers emit through the
second, so when it is deleted the pool's destructor waits for running work while the relay still
exists; after that, queued work is skipped.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QEvent, QObject, QRunnable, Qt, QThreadPool, QTimer, Signal
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QTextEdit

from ..core.clip_tokens import count_prompt_tokens, shared_tokenizer
from .config_model import ConfigModel

log = logging.getLogger(__name__)

#: Quiet time after the last edit before a box is counted again.
DEBOUNCE_MS = 100
#: Longest prompt counted on the GUI thread (1.2 ms at worst measured, on never-seen words).
INLINE_CHARS = 256
MARGIN = 3
# What count_prompt_tokens is called as: (prompt, steps, negative) -> (used, limit).
CountFunction = Callable[[str, int, bool], tuple[int, int]]
_STEP_PATHS = frozenset({"txt2img.enabled", "txt2img.steps", "img2img.enabled", "img2img.steps"})


def _count(prompt: str, steps: int, negative: bool) -> tuple[int, int]:
    return count_prompt_tokens(prompt, steps, negative=negative)


def _cheap(prompt: str) -> bool:
    """Short, one text (``[`` starts prompt editing and alternation) and the vocabulary read."""
    return len(prompt) <= INLINE_CHARS and "[" not in prompt and shared_tokenizer.cache_info().currsize > 0


class _Relay(QObject):
    # (request, (used, limit)), emitted on the worker thread, queued to the GUI thread.
    counted = Signal(object, object)


class _Request:
    def __init__(self, box: object, serial: int, prompt: str, steps: int, negative: bool) -> None:
        self.box, self.serial, self.prompt, self.steps, self.negative = box, serial, prompt, steps, negative


class _CountJob(QRunnable):
    def __init__(self, counting: TokenCounting, request: _Request) -> None:
        super().__init__()
        self.counting, self.request = counting, request

    def run(self) -> None:
        counting, request = self.counting, self.request
        if not counting.is_current(request):
            return
        try:
            result = counting.count(request.prompt, request.steps, request.negative)
        except Exception:
            log.exception("counting the prompt's tokens failed")
            return
        if counting.is_current(request):
            counting.relay.counted.emit(request, result)


class TokenCounting(QObject):
    """Counts prompts on a one-thread pool; per box, only the newest request is answered."""

    def __init__(
        self,
        parent: QObject | None = None,
        count: CountFunction = _count,
        cheap: Callable[[str], bool] = _cheap,
    ) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)  # first child: see the module docstring
        self._pool.setObjectName("token-counting")
        self._pool.setMaxThreadCount(1)
        self.relay = _Relay(self)
        self.relay.counted.connect(self._on_relay_counted, Qt.ConnectionType.QueuedConnection)
        self.count = count
        self.cheap = cheap  # counted at once on the GUI thread when true
        self.jobs_started = 0
        self._serials = itertools.count(1)
        self._newest: dict[object, int] = {}
        self._answers: dict[object, Callable[[int, int], None]] = {}
        self._stopped = threading.Event()
        self.destroyed.connect(self._stopped.set)

    def request(
        self, box: object, prompt: str, steps: int, negative: bool, answer: Callable[[int, int], None]
    ) -> None:
        """Count ``prompt`` for ``box``; ``answer(used, limit)`` is called on the GUI thread (now, for
        a cheap prompt, else later), unless another request for ``box`` comes first."""
        if self._stopped.is_set():
            return
        serial = next(self._serials)
        self._newest[box] = serial  # overtakes a count of this box still on the pool
        self._answers[box] = answer
        if self.cheap(prompt):
            try:
                result = self.count(prompt, steps, negative)
            except Exception:
                log.exception("counting the prompt's tokens failed")
                return
            answer(*result)
            return
        self.jobs_started += 1
        self._pool.start(_CountJob(self, _Request(box, serial, prompt, steps, negative)))

    def is_current(self, request: _Request) -> bool:
        """False once the request is overtaken or counting stopped (safe on any thread)."""
        return not self._stopped.is_set() and self._newest.get(request.box) == request.serial

    def is_idle(self) -> bool:
        """True when no count is queued or running."""
        return self._pool.activeThreadCount() == 0

    def shutdown(self) -> None:
        """Drop queued counts and wait for a running one; later requests are ignored."""
        self._stopped.set()
        self._pool.clear()
        self._pool.waitForDone()

    def _on_relay_counted(self, request: _Request, result: tuple[int, int]) -> None:
        if self.is_current(request):
            self._answers[request.box](*result)


class TokenCounter(QObject):
    """The ``used/limit`` label in the top-right corner of one prompt box, counted as it is edited."""

    #: (used, limit) each time the label changes.
    counted = Signal(int, int)

    def __init__(
        self,
        edit: QPlainTextEdit | QTextEdit,
        counting: TokenCounting,
        steps: Callable[[], int],
        *,
        negative: bool = False,
        delay_ms: int = DEBOUNCE_MS,
    ) -> None:
        super().__init__(edit)
        self.edit, self.counting, self.steps, self.negative = edit, counting, steps, negative
        self.label = QLabel(edit)
        self.label.setObjectName(f"{edit.objectName()}.tokens")
        self.label.setProperty("role", "token-count")
        self.label.setToolTip(
            "Tokens of the longest text this prompt makes / the length of its 75-token chunks\n"
            "A1111: token counter"
        )
        self.label.hide()
        self.timer = QTimer(self)
        self.timer.setObjectName(f"{edit.objectName()}.tokens.debounce")
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self._on_timer_timeout)
        self._waiting = False  # an edit not yet counted because the box was hidden
        edit.textChanged.connect(self.schedule)
        edit.verticalScrollBar().rangeChanged.connect(self._place)
        edit.installEventFilter(self)
        self.schedule()

    def text(self) -> str:
        """What the label shows ("" before the first count)."""
        return self.label.text()

    def schedule(self) -> None:
        """Count again once the box has been quiet for the debounce time (a hidden box: once shown)."""
        if self.edit.isVisible():
            self.timer.start()
        else:
            self._waiting = True

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.edit:
            if event.type() == QEvent.Type.Resize:
                self._place()
            elif event.type() == QEvent.Type.Hide and self.timer.isActive():
                self.timer.stop()  # a closed window keeps no timer running
                self._waiting = True
            elif event.type() == QEvent.Type.Show and self._waiting:
                self._waiting = False
                self.timer.start()
        return super().eventFilter(watched, event)

    def _on_timer_timeout(self) -> None:
        self.counting.request(self, self.edit.toPlainText(), self.steps(), self.negative, self._on_counted)

    def _on_counted(self, used: int, limit: int) -> None:
        self.label.setText(f"{used}/{limit}")
        self.label.show()
        self._place()
        self.counted.emit(used, limit)

    def _place(self, *_range: Any) -> None:
        self.label.adjustSize()
        area = self.edit.viewport().geometry()  # inside the frame, left of a vertical scroll bar
        self.label.move(area.right() + 1 - MARGIN - self.label.width(), area.top() + MARGIN)
        self.label.raise_()


def first_stage_steps(model: ConfigModel) -> int:
    """The Steps that prompt editing counts in: txt2img's, or img2img's when a run starts there."""
    if not model.get("txt2img.enabled") and model.get("img2img.enabled"):
        return int(model.get("img2img.steps"))
    return int(model.get("txt2img.steps"))


class PromptTokenCounters(QObject):
    """The counters of the prompt and the negative prompt box, sharing one counting thread."""

    def __init__(
        self,
        model: ConfigModel,
        prompt: QPlainTextEdit,
        negative: QPlainTextEdit,
        parent: QObject | None = None,
        *,
        delay_ms: int = DEBOUNCE_MS,
    ) -> None:
        super().__init__(parent)
        self.model = model
        self.counting = TokenCounting(self)
        steps = lambda: first_stage_steps(model)  # noqa: E731
        self.prompt = TokenCounter(prompt, self.counting, steps, delay_ms=delay_ms)
        self.negative = TokenCounter(negative, self.counting, steps, negative=True, delay_ms=delay_ms)
        model.changed.connect(self._on_model_changed)
        model.replaced.connect(self._on_model_replaced)

    def schedule(self) -> None:
        """Count both boxes again (after the debounce time)."""
        self.prompt.schedule()
        self.negative.schedule()

    def _on_model_changed(self, path: str) -> None:
        if path in _STEP_PATHS:  # prompt editing ([a:b:10]) makes other texts at other Steps
            self.schedule()

    def _on_model_replaced(self, _config: object) -> None:
        self.schedule()  # a restored PNG may bring other Steps with the same prompt
