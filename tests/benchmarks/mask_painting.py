"""Benchmark (not a test): how responsive the GUI thread stays while painting a mask on a 2048² image.

Drives the real MaskEditor (offscreen) with synthetic mouse drags: a QTimer at ``--hz`` (default
120) sends the next mouse-move event to the canvas, as the window system would, while the 10 ms
heartbeat of ``gui_responsiveness.py`` records how late it runs. Fast zigzag drags (``--speed``
widget pixels per event) over the whole image, in three set-ups: fitted with a soft 128 px brush,
100 % with a hard 32 px brush, fitted with a soft 512 px brush; then a pan with the middle button
(every move repaints the whole view). Then the one-shot edits (undo,
redo, invert, clear) are timed, and the decode of a 2048² PNG and the save of the mask run under
the heartbeat (both on the editor's worker thread).

    QT_QPA_PLATFORM=offscreen .venv/bin/python tests/benchmarks/mask_painting.py [--seconds 4] [--hz 120]

Target (issue 14): heartbeat lateness p99 under 30 ms while painting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).parent))

from gui_responsiveness import Heartbeat

SIZE = 2048


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * ordered[int(0.99 * (len(ordered) - 1))], 2),
        "max_ms": round(1000 * ordered[-1], 2),
    }


def _test_image() -> Any:
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor, QImage, QLinearGradient, QPainter

    image = QImage(SIZE, SIZE, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    gradient = QLinearGradient(QPointF(0, 0), QPointF(SIZE, SIZE))
    gradient.setColorAt(0, QColor(30, 60, 120))
    gradient.setColorAt(1, QColor(230, 200, 120))
    painter.fillRect(image.rect(), gradient)
    painter.end()
    return image


def _zigzag(start: Any, end: Any, speed: float) -> Any:
    """Widget points along horizontal sweeps between two corners, ``speed`` px apart."""
    from PySide6.QtCore import QPointF

    x, y, direction = start.x(), start.y(), 1.0
    while True:
        x += direction * speed
        if x > end.x() or x < start.x():
            direction = -direction
            x = min(max(x, start.x()), end.x())
            y += speed * 0.7
            if y > end.y():
                y = start.y()
        yield QPointF(x, y)


def _drag(
    app: Any, canvas: Any, seconds: float, hz: float, speed: float, button: Any = None
) -> dict[str, object]:
    """Press, drag for ``seconds`` at ``hz`` events per second, release; heartbeat throughout.

    ``button`` (default the left one: painting) is held during the drag; the middle one pans."""
    from PySide6.QtCore import QEvent, QPointF, Qt, QTimer
    from PySide6.QtGui import QMouseEvent

    view, doc = canvas.view, canvas.document
    top_left = view.to_widget(0, 0)
    bottom_right = view.to_widget(doc.width, doc.height)
    visible = QPointF(min(bottom_right.x(), canvas.width() - 1), min(bottom_right.y(), canvas.height() - 1))
    start = QPointF(max(top_left.x(), 0), max(top_left.y(), 0))
    points = _zigzag(start, visible, speed)
    left = Qt.MouseButton.LeftButton if button is None else button
    none = Qt.MouseButton.NoButton
    mods = Qt.KeyboardModifier.NoModifier

    def send(kind: QEvent.Type, at: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton) -> float:
        t0 = time.perf_counter()
        event = QMouseEvent(kind, at, canvas.mapToGlobal(at), button, buttons, mods)
        app.sendEvent(canvas, event)
        return time.perf_counter() - t0

    handler_s: list[float] = []
    driver = QTimer()
    driver.setTimerType(Qt.TimerType.PreciseTimer)
    driver.setInterval(round(1000 / hz))
    driver.timeout.connect(lambda: handler_s.append(send(QEvent.Type.MouseMove, next(points), none, left)))
    heartbeat = Heartbeat()
    send(QEvent.Type.MouseButtonPress, start, left, left)
    heartbeat.start()
    driver.start()
    _spin(app, seconds)
    driver.stop()
    send(QEvent.Type.MouseButtonRelease, next(points), left, none)
    _spin(app, 0.3)
    heartbeat.stop()
    summary = heartbeat.summary(seconds)
    summary["mouse_events"] = len(handler_s)
    summary["move_handler"] = _percentiles(handler_s)
    return summary


def _spin(app: Any, seconds: float, until: Callable[[], bool] | None = None) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and not (until is not None and until()):
        app.processEvents()
        time.sleep(0.0005)


def _timed(app: Any, action: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    action()
    app.processEvents()  # the repaint it asked for
    return round(1000 * (time.perf_counter() - t0), 2)


def _under_heartbeat(app: Any, start: Callable[[], object], done: Callable[[], bool]) -> dict[str, object]:
    heartbeat = Heartbeat()
    heartbeat.start()
    t0 = time.perf_counter()
    start()
    _spin(app, 30.0, done)
    seconds = time.perf_counter() - t0
    _spin(app, 0.2)
    heartbeat.stop()
    return heartbeat.summary(seconds)


def _time_paint_events() -> list[float]:
    """Make every MaskCanvas.paintEvent append its duration (s) to the list returned."""
    from stablenew_qt.gui.mask_editor import canvas as canvas_module

    paint_s: list[float] = []
    original_paint = canvas_module.MaskCanvas.paintEvent

    def timed_paint(self: Any, event: Any) -> None:
        t0 = time.perf_counter()
        original_paint(self, event)
        paint_s.append(time.perf_counter() - t0)

    canvas_module.MaskCanvas.paintEvent = timed_paint  # type: ignore[method-assign]
    return paint_s


def _painting(
    app: Any, editor: Any, paint_s: list[float], seconds: float, hz: float, speed: float
) -> dict[str, Any]:
    """The three painting set-ups, then a middle-button pan."""
    from PySide6.QtCore import Qt

    canvas = editor.canvas
    setups: list[tuple[str, Callable[[], None], dict[str, float]]] = [
        ("paint_fit_soft128", canvas.fit, {"size": 128, "hardness": 0.5}),
        ("paint_100pct_hard32", canvas.actual_size, {"size": 32, "hardness": 1.0}),
        ("paint_fit_soft512", canvas.fit, {"size": 512, "hardness": 0.0}),
        ("pan_middle_button", canvas.fit, {}),
    ]
    results: dict[str, Any] = {}
    for label, place, brush in setups:
        place()
        editor.set_brush(**brush)
        _spin(app, 0.2)
        paint_s.clear()
        if brush:
            results[label] = _drag(app, canvas, seconds, hz, speed)
        else:
            results[label] = _drag(app, canvas, seconds / 2, 60.0, 6.0, Qt.MouseButton.MiddleButton)
        results[label]["zoom"] = round(canvas.view.zoom, 3)
        results[label]["paint_event"] = _percentiles(paint_s)
    return results


def run(seconds: float, hz: float, speed: float) -> dict[str, object]:
    from PySide6.QtWidgets import QApplication

    from stablenew_qt.gui.mask_editor import MaskEditor

    app = QApplication.instance() or QApplication([])
    paint_s = _time_paint_events()
    editor = MaskEditor()
    editor.resize(1400, 1000)
    editor.show()
    folder = Path(tempfile.mkdtemp())
    png = folder / "input.png"
    _test_image().save(str(png))
    results: dict[str, object] = {}
    results["load_2048_png"] = _under_heartbeat(app, lambda: editor.set_image(png), lambda: editor.has_image)
    results.update(_painting(app, editor, paint_s, seconds, hz, speed))
    stack = editor.document.undo_stack
    results["undo_stack"] = {"steps": len(stack), "bytes": stack.nbytes}
    one_shots = (("undo", editor.undo), ("redo", editor.redo), ("invert", editor.invert))
    one_shots += (("clear", editor.clear), ("undo_clear", editor.undo))
    results["one_shot_ms"] = {name: _timed(app, action) for name, action in one_shots}
    saved: list[Path] = []
    results["save_mask"] = _under_heartbeat(
        app, lambda: editor.write_mask(folder / "mask.png", saved.append), lambda: bool(saved)
    )
    editor.shutdown()
    editor.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds of dragging per set-up")
    parser.add_argument("--hz", type=float, default=120.0, help="mouse events per second")
    parser.add_argument("--speed", type=float, default=40.0, help="widget pixels between mouse events")
    args = parser.parse_args()
    print(json.dumps(run(args.seconds, args.hz, args.speed), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
