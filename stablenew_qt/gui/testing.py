"""Test support for the window (like napari's ``make_napari_viewer``): import the fixture into a
test module or conftest with ``from stablenew_qt.gui.testing import make_main_window``.

Needs pytest and pytest-qt (the ``test`` extra); the app itself never imports this module.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from PySide6.QtCore import QMimeData, QObject, QPointF, QSettings, Qt, QThread, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from ..core.config import RunConfig
from ..core.executor import Engine
from ..core.fake_executor import FakeExecutor
from ..core.lifecycle import LifecycleState
from ..core.options import MemoryMode
from ..core.queue import JobQueue
from .main_window import MainWindow
from .services import AppServices, ModelChoices

RUN_TIMEOUT_MS = 10_000

DEMO_CHOICES = ModelChoices(
    checkpoints=("tiny-sd.safetensors", "demo-tiny-sdxl", "demo-tiny-sdxl-refiner"),
    vaes=("sdxl_vae",),
    upscalers=("4x-UltraSharp",),
    detectors=("face_yolov8n.pt", "hand_yolov8n.pt"),
)


class MakeMainWindow(Protocol):
    def __call__(
        self,
        executor: Engine | None = ...,
        *,
        config: RunConfig | None = ...,
        choices: ModelChoices = ...,
        idle_delay_ms: int = ...,
        queue: JobQueue | None = ...,
        **services: Any,
    ) -> MainWindow: ...


def leftovers(window: MainWindow) -> list[str]:
    """Threads still running and timers still active under ``window`` (after it closed)."""
    found = [
        f"QThread {t.objectName() or t!r} is still running"
        for t in window.findChildren(QThread)
        if t.isRunning()
    ]
    found += [
        f"QTimer {t.objectName() or t!r} (child of {type(t.parent()).__name__}) is still active"
        for t in window.findChildren(QTimer)
        if t.isActive()
    ]
    return found


@pytest.fixture
def make_main_window(qtbot: Any, tmp_path: Path) -> Iterator[MakeMainWindow]:
    """Factory for fresh MainWindows over a FakeExecutor (or the engine given), built as the app
    builds them: each with its own settings file, queue file, models folder and output folder under
    ``tmp_path`` (``queue`` shares a JobQueue the test opened instead), and keyword ``services``
    replacing AppServices fields (e.g. ``trust_detector=``). At teardown every window is closed
    (interrupting its job) and the test fails if a QThread or QTimer of it is still running."""
    windows: list[MainWindow] = []

    def make(
        executor: Engine | None = None,
        *,
        config: RunConfig | None = None,
        choices: ModelChoices = DEMO_CHOICES,
        idle_delay_ms: int = 100,
        queue: JobQueue | None = None,
        **services: Any,
    ) -> MainWindow:
        engine = executor if executor is not None else FakeExecutor()
        make_engine: Callable[[Path, MemoryMode], Engine] = lambda _models, _mode: engine  # noqa: E731
        base = AppServices(make_engine, lambda _models: choices, tmp_path / "models", tmp_path / "runs")
        number = len(windows)
        settings = QSettings(str(tmp_path / f"settings-{number}.ini"), QSettings.Format.IniFormat)
        if config is not None:
            settings.setValue("config/last", config.to_json(indent=None))
        queue_path = None if queue is not None else tmp_path / f"queue-{number}.sqlite3"
        window = MainWindow(
            dataclasses.replace(base, **services), settings, queue=queue, queue_path=queue_path
        )
        window.idle_timer.setInterval(idle_delay_ms)
        windows.append(window)
        window.show()
        window.windowHandle().requestActivate()  # window shortcuts (Ctrl+Enter, Esc) need an active window
        qtbot.waitUntil(window.isActiveWindow, timeout=2000)
        return window

    yield make
    problems: list[str] = []
    for window in windows:
        window.ask_before_closing = False  # a run still going is interrupted, as "resume it next time"
        window.close()
        problems += leftovers(window)
        window.deleteLater()
    if problems:
        pytest.fail("left running after the window closed: " + "; ".join(problems))


# -- driving the widgets like a user ----------------------------------------------------------


def widget(window: MainWindow, path: str) -> QWidget:
    found = window.findChild(QWidget, path)
    assert found is not None, f"no widget for {path!r}"
    return found


def set_spin(qtbot: Any, window: MainWindow, path: str, value: float) -> None:
    """Select the spin box's text and type ``value``, as a user would."""
    box = widget(window, path)
    assert isinstance(box, QSpinBox | QDoubleSpinBox)
    box.setFocus()
    box.selectAll()
    text = str(int(value)) if isinstance(box, QSpinBox) else f"{value:.2f}"
    qtbot.keyClicks(box, text)
    box.interpretText()
    assert isinstance(box, QAbstractSpinBox)
    assert box.value() == value


def choose(window: MainWindow, path: str, text: str) -> None:
    box = widget(window, path)
    assert isinstance(box, QComboBox)
    index = box.findText(text)
    if index < 0:
        assert box.isEditable(), f"{text!r} is not offered by {path}"
        box.setEditText(text)
    else:
        box.setCurrentIndex(index)


def type_text(qtbot: Any, window: MainWindow, path: str, text: str) -> None:
    edit = widget(window, path)
    if isinstance(edit, QLineEdit):
        edit.clear()
    qtbot.keyClicks(edit, text)


def small_txt2img(qtbot: Any, window: MainWindow, prompt: str = "a lighthouse at dusk") -> None:
    """A fast run: 64x64, 3 steps, a fixed seed, the prompt typed in."""
    type_text(qtbot, window, "prompt", prompt)
    set_spin(qtbot, window, "txt2img.width", 64)
    set_spin(qtbot, window, "txt2img.height", 64)
    set_spin(qtbot, window, "txt2img.steps", 3)
    seed = window.prompt_panel.seed
    seed.clear()
    qtbot.keyClicks(seed, "1234")


def generate_and_wait(qtbot: Any, window: MainWindow, end: str = "runCompleted") -> None:
    """Press Generate and wait for the run's end signal and the lifecycle to follow."""
    assert window.generate_button.isEnabled(), window.error_label.text()
    with qtbot.waitSignal(getattr(window.bridge, end), timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.host.state is not LifecycleState.RUNNING, timeout=RUN_TIMEOUT_MS)


class SlowRead:
    """``owner.name`` (a file reader) wrapped with pytest's ``monkeypatch``: a call whose arguments
    ``is_slow`` picks blocks until :meth:`release`, as a file on a slow disk would (``reading`` is
    set while it waits); every call records its arguments in ``calls`` and the name of the
    thread that made it in ``threads``."""

    def __init__(self, monkeypatch: Any, owner: object, name: str, is_slow: Callable[..., bool]) -> None:
        self.reading, self._released = threading.Event(), threading.Event()
        self.threads: list[str] = []
        self.calls: list[tuple[Any, ...]] = []
        real = getattr(owner, name)

        def read(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(args)
            self.threads.append(threading.current_thread().name)
            if is_slow(*args, **kwargs):
                self.reading.set()
                assert self._released.wait(10), "the test never released the slow read"
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, read)

    def release(self) -> None:
        self._released.set()

    @property
    def off_the_gui_thread(self) -> bool:
        """Every read so far ran on another thread than the GUI's (and there was one)."""
        return bool(self.threads) and threading.main_thread().name not in self.threads


class Heartbeat:
    """A 5 ms timer on ``parent``'s thread counting its ticks: it only ticks while that thread's
    event loop runs, so ticks during a slow read show the GUI thread was free. Call :meth:`stop`."""

    def __init__(self, parent: QObject) -> None:
        self.ticks = 0
        self._timer = QTimer(parent)
        self._timer.timeout.connect(self._tick)
        self._timer.start(5)

    def _tick(self) -> None:
        self.ticks += 1

    def stop(self) -> None:
        self._timer.stop()


def threads_calling(monkeypatch: Any, owner: object, *names: str) -> list[threading.Thread]:
    """Wrap ``owner``'s functions ``names`` (pytest's ``monkeypatch``) so each call records the
    thread that made it, then does what it did; returns that record (to assert "never on the GUI
    thread")."""
    threads: list[threading.Thread] = []
    for name in names:
        real = getattr(owner, name)

        def recorded(*args: Any, real: Any = real, **kwargs: Any) -> Any:
            threads.append(threading.current_thread())
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, recorded)
    return threads


def restore_and_wait(qtbot: Any, window: MainWindow, path: Path) -> Any:
    """Restore ``path``'s settings as "Use these settings" does and wait until they are in the
    editor (the image is read off the GUI thread); returns the GenerationSettings read."""
    with qtbot.waitSignal(window.restorer.restored, timeout=RUN_TIMEOUT_MS) as blocker:
        window.restore_from_image(path)
    return blocker.args[1]


def drop_files(onto: QWidget, *paths: Path) -> QWidget:
    """Drag local files from a file manager and drop them on ``onto``, as a user would.

    Like Qt's own drag and drop, the drop goes to ``onto`` or, when it does not accept drops, to
    the nearest parent that does (never past its window). The drag must be accepted (what the user
    sees as the cursor allowing the drop) and so must the drop. Returns the widget that took it.
    """
    target: QWidget | None = onto
    while target is not None and not target.acceptDrops() and not target.isWindow():
        target = target.parentWidget()
    assert target is not None and target.acceptDrops(), f"nothing under {onto!r} accepts drops"
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    where = onto.mapTo(target, onto.rect().center())
    copy, left, no_keys = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(where, copy, mime, left, no_keys)
    QApplication.sendEvent(target, enter)
    assert enter.isAccepted(), f"{type(target).__name__} refused the drag"
    drop = QDropEvent(QPointF(where), copy, mime, left, no_keys)
    QApplication.sendEvent(target, drop)
    assert drop.isAccepted(), f"{type(target).__name__} refused the drop"
    return target
