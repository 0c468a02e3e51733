"""The mask editor widget through pytest-qt: painting with the mouse, zoom and pan, the tools,
the throttled signal, outpaint fields and their preview."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt, QTimer
from PySide6.QtGui import QColor, QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QWidget

from stablenew_qt.gui.mask_editor import MaskEditor, MaskEditorDialog, OutpaintSides
from stablenew_qt.gui.mask_editor.canvas import NEW_AREA_COLOR, MaskCanvas
from stablenew_qt.gui.mask_editor.document import OVERLAY_COLOR, OVERLAY_OPACITY
from stablenew_qt.gui.mask_editor.mask_io import qimage_view
from stablenew_qt.gui.mask_editor.view import FIT_MARGIN

LEFT, MIDDLE, NONE = Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton, Qt.MouseButton.NoButton

MakeEditor = Callable[..., MaskEditor]


@pytest.fixture
def make_editor(qtbot: Any) -> Iterator[MakeEditor]:
    """Fresh shown editors; at teardown each is shut down and must leave no timer running."""
    made: list[MaskEditor] = []

    def make(**options: Any) -> MaskEditor:
        editor = MaskEditor(**options)
        qtbot.addWidget(editor)
        editor.resize(520, 440)
        editor.show()
        editor.windowHandle().requestActivate()  # shortcuts need an active window
        qtbot.waitUntil(editor.isActiveWindow, timeout=2000)
        made.append(editor)
        return editor

    yield make
    for editor in made:
        editor.shutdown()
        running = [t for t in editor.findChildren(QTimer) if t.isActive()]
        assert not running, f"timers left running: {running}"


def grey_image(width: int, height: int, value: int = 100) -> QImage:
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor(value, value, value))
    return image


def mask_of(editor: MaskEditor) -> np.ndarray:
    mask = editor.mask()  # a view does not keep its QImage alive: hold it while copying
    return qimage_view(mask, writable=False).copy()


def mouse(
    canvas: QWidget, kind: QEvent.Type, at: QPointF, button: Qt.MouseButton, buttons: Qt.MouseButton
) -> None:
    """One mouse event as the window system delivers it."""
    event = QMouseEvent(kind, at, canvas.mapToGlobal(at), button, buttons, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(canvas, event)


def drag(canvas: QWidget, points: list[QPointF], button: Qt.MouseButton = LEFT) -> None:
    mouse(canvas, QEvent.Type.MouseButtonPress, points[0], button, button)
    for point in points[1:]:
        mouse(canvas, QEvent.Type.MouseMove, point, NONE, button)
    mouse(canvas, QEvent.Type.MouseButtonRelease, points[-1], button, NONE)


def wheel(canvas: QWidget, at: QPointF, notches: int) -> None:
    event = QWheelEvent(
        at,
        canvas.mapToGlobal(at),
        QPoint(),
        QPoint(0, 120 * notches),
        NONE,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, event)


def at_100_percent(editor: MaskEditor) -> tuple[float, float]:
    editor.canvas.actual_size()
    view = editor.canvas.view
    assert view.zoom == 1.0 and view.offset_x == int(view.offset_x)
    return view.offset_x, view.offset_y


def test_a_mouse_drag_at_100_percent_paints_exactly_the_pixels_under_it(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(120, 90))
    editor.set_brush(size=1, hardness=1.0)
    ox, oy = at_100_percent(editor)
    # Widget pixel (ox + x, oy + y) is image pixel (x, y); a 1 px brush covers just the pixels passed.
    drag(editor.canvas, [QPointF(ox + 10, oy + 20), QPointF(ox + 70, oy + 20)])
    mask = mask_of(editor)
    expected = np.zeros((90, 120), dtype=np.uint8)
    expected[20, 10:71] = 255
    np.testing.assert_array_equal(mask, expected)
    assert editor.document.undo_stack.undo_label == "brush stroke"


def test_a_fast_mouse_drag_leaves_no_gaps(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(300, 200))
    editor.set_brush(size=2, hardness=1.0)
    ox, oy = at_100_percent(editor)
    # Three mouse events for 280 px: far apart, as when the user flicks the mouse.
    drag(editor.canvas, [QPointF(ox + 5, oy + 100), QPointF(ox + 150, oy + 30), QPointF(ox + 285, oy + 170)])
    mask = mask_of(editor)
    for x in range(5, 150):  # every column along the first segment has painted pixels
        assert mask[:, x].any(), f"gap at column {x}"
    for x in range(150, 286):
        assert mask[:, x].any(), f"gap at column {x}"


def test_zoom_and_pan_keep_strokes_in_image_space(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(200, 150))
    editor.set_brush(size=5, hardness=1.0)
    canvas = editor.canvas
    anchor = QPointF(200, 150)
    under_before = canvas.view.to_image(anchor)
    fitted_zoom = canvas.view.zoom
    wheel(canvas, anchor, 2)
    assert canvas.view.zoom == pytest.approx(fitted_zoom * 1.25**2) and not canvas.fitted
    under_after = canvas.view.to_image(anchor)
    # The wheel zooms around the cursor: the image point under it stays (within a widget pixel).
    assert abs(under_after[0] - under_before[0]) < 1 / canvas.view.zoom
    assert abs(under_after[1] - under_before[1]) < 1 / canvas.view.zoom
    offset = (canvas.view.offset_x, canvas.view.offset_y)
    drag(canvas, [QPointF(100, 100), QPointF(130, 80)], MIDDLE)  # the middle button pans
    moved = (canvas.view.offset_x - offset[0], canvas.view.offset_y - offset[1])
    assert moved == pytest.approx((30, -20))
    assert editor.is_empty, "panning does not paint"
    target = canvas.view.to_widget(60.5, 40.5)  # the centre of image pixel (60, 40)
    drag(canvas, [target])
    mask = mask_of(editor)
    ys, xs = np.nonzero(mask)
    # A 5 px disc around the image point under the cursor: its size is in image pixels, not screen.
    assert 13 <= len(xs) <= 25
    assert abs(xs.mean() + 0.5 - 60.5) <= 0.5 and abs(ys.mean() + 0.5 - 40.5) <= 0.5


def test_space_drag_pans_instead_of_painting(make_editor: MakeEditor, qtbot: Any) -> None:
    editor = make_editor()
    editor.set_image(grey_image(100, 100))
    canvas = editor.canvas
    canvas.setFocus()
    before = (canvas.view.offset_x, canvas.view.offset_y)
    qtbot.keyPress(canvas, Qt.Key.Key_Space)
    drag(canvas, [QPointF(50, 50), QPointF(90, 60)])
    qtbot.keyRelease(canvas, Qt.Key.Key_Space)
    assert (canvas.view.offset_x - before[0], canvas.view.offset_y - before[1]) == pytest.approx((40, 10))
    assert editor.is_empty
    drag(canvas, [QPointF(200, 200)])  # Space released: the left button paints again
    assert not editor.is_empty


def test_zoom_commands_fit_and_actual_size(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(2000, 1000))
    canvas = editor.canvas
    assert canvas.fitted and canvas.view.zoom < 1
    shown = canvas.view.rect_to_widget(QRectF(0, 0, 2000, 1000))
    assert QRectF(canvas.rect()).contains(shown)
    fill = max(
        shown.width() / (canvas.width() - 2 * FIT_MARGIN), shown.height() / (canvas.height() - 2 * FIT_MARGIN)
    )
    assert fill == pytest.approx(1.0), "as large as fits"
    editor.controls.commands["actual_size"].trigger()
    assert canvas.view.zoom == 1.0 and editor.controls.zoom_label.text() == "100%"
    editor.controls.commands["zoom_in"].trigger()
    assert canvas.view.zoom == pytest.approx(1.25)
    editor.controls.commands["zoom_out"].trigger()
    editor.controls.commands["zoom_out"].trigger()
    assert canvas.view.zoom == pytest.approx(0.8)
    editor.controls.commands["fit"].trigger()
    assert canvas.fitted and canvas.view.rect_to_widget(QRectF(0, 0, 2000, 1000)) == shown


def test_invert_clear_and_the_undo_shortcut(make_editor: MakeEditor, qtbot: Any) -> None:
    editor = make_editor()
    editor.set_image(grey_image(64, 48))
    qtbot.mouseClick(editor.controls.findChild(QWidget, "mask.button.invert"), LEFT)
    assert (mask_of(editor) == 255).all()
    qtbot.mouseClick(editor.controls.findChild(QWidget, "mask.button.clear"), LEFT)
    assert editor.is_empty
    editor.canvas.setFocus()
    qtbot.keyClick(editor.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert (mask_of(editor) == 255).all(), "Ctrl+Z undid the clear"
    qtbot.keyClick(editor.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert editor.is_empty, "and then the invert"
    assert not editor.controls.commands["undo"].isEnabled()
    assert editor.controls.commands["redo"].isEnabled()


def test_eraser_and_brush_keys_and_the_size_keys(make_editor: MakeEditor, qtbot: Any) -> None:
    editor = make_editor()
    editor.set_image(grey_image(100, 100))
    editor.invert()
    editor.canvas.setFocus()
    qtbot.keyClick(editor.canvas, Qt.Key.Key_E)
    assert editor.brush.erase
    size = editor.brush.size
    qtbot.keyClick(editor.canvas, Qt.Key.Key_BracketRight)
    assert editor.brush.size > size
    ox, oy = at_100_percent(editor)
    drag(editor.canvas, [QPointF(ox + 50, oy + 50)])
    assert mask_of(editor)[50, 50] == 0 and mask_of(editor)[0, 0] == 255
    qtbot.keyClick(editor.canvas, Qt.Key.Key_B)
    assert not editor.brush.erase
    editor.controls.hardness_slider.setValue(30)
    assert editor.brush.hardness == pytest.approx(0.3)


def test_hiding_the_overlay_changes_the_view_not_the_mask(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(100, 80, value=100))
    editor.set_brush(size=30)
    ox, oy = at_100_percent(editor)
    drag(editor.canvas, [QPointF(ox + 50, oy + 40)])
    before = mask_of(editor)
    spot = QPoint(int(ox) + 50, int(oy) + 40)
    shown = editor.canvas.grab().toImage().pixelColor(spot)
    editor.controls.commands["overlay"].trigger()  # hide
    hidden = editor.canvas.grab().toImage().pixelColor(spot)
    np.testing.assert_array_equal(mask_of(editor), before)
    assert (hidden.red(), hidden.green(), hidden.blue()) == (100, 100, 100)
    a = OVERLAY_OPACITY
    assert shown.red() == pytest.approx(100 * (1 - a) + OVERLAY_COLOR.red() * a, abs=2)
    assert shown.green() == pytest.approx(100 * (1 - a) + OVERLAY_COLOR.green() * a, abs=2)


def test_mask_changed_is_throttled_and_delivers_the_last_change(make_editor: MakeEditor, qtbot: Any) -> None:
    editor = make_editor(throttle_ms=80)
    editor.set_image(grey_image(200, 200))
    qtbot.wait(150)  # the set_image change has gone out
    heard: list[bool] = []
    editor.mask_changed.connect(lambda: heard.append(editor.is_empty))
    editor.document.begin_stroke((10.0, 10.0))
    for x in range(11, 190, 4):
        editor.document.stroke_to((float(x), float(x)))
    editor.document.end_stroke()
    assert len(heard) == 1, "the first change goes out at once, the rest wait"
    qtbot.waitUntil(lambda: len(heard) == 2, timeout=1000)
    qtbot.wait(200)
    assert heard == [False, False] and len(heard) == 2


def test_empty_mask_and_has_mask(make_editor: MakeEditor) -> None:
    editor = make_editor()
    assert editor.is_empty and not editor.has_mask and not editor.has_image
    editor.set_image(grey_image(64, 64))
    assert editor.is_empty and not editor.has_mask
    editor.set_outpaint((8, 0, 0, 0))
    assert editor.is_empty and editor.has_mask, "outpainting alone is something to inpaint"
    editor.set_outpaint((0, 0, 0, 0))
    editor.document.begin_stroke((3.0, 3.0))
    editor.document.end_stroke()
    assert not editor.is_empty and editor.has_mask
    editor.clear()
    assert editor.is_empty and not editor.has_mask


def test_outpaint_fields_round_to_multiples_of_8(make_editor: MakeEditor, qtbot: Any) -> None:
    editor = make_editor()
    editor.set_image(grey_image(64, 64))
    heard: list[OutpaintSides] = []
    editor.outpaint_changed.connect(heard.append)
    left = editor.outpaint_fields.fields["left"]
    left.setFocus()
    left.selectAll()
    qtbot.keyClicks(left, "13")
    qtbot.keyClick(left, Qt.Key.Key_Return)
    assert editor.outpaint() == OutpaintSides(16, 0, 0, 0) == (16, 0, 0, 0)
    assert heard[-1] == (16, 0, 0, 0)
    editor.set_outpaint((300, 4, 12, 3))
    assert editor.outpaint() == (256, 8, 16, 0)  # clamped to 256, halves round up
    assert heard[-1] == editor.outpaint()


def test_the_outpaint_preview_shows_the_grown_canvas_as_masked(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(100, 80, value=100))
    editor.set_outpaint(OutpaintSides(left=40, right=0, top=16, bottom=24))
    canvas = editor.canvas
    assert canvas.document_rect() == QRectF(-40, -16, 140, 120)
    assert canvas.outpaint_bands() == [
        QRectF(-40, -16, 140, 16),
        QRectF(-40, 80, 140, 24),
        QRectF(-40, 0, 40, 80),
    ]
    assert canvas.fitted and QRectF(canvas.rect()).contains(
        canvas.view.rect_to_widget(canvas.document_rect())
    )
    assert (editor.mask().width(), editor.mask().height()) == (100, 80), "the mask stays the image's size"
    picture = canvas.grab().toImage()
    new_area = canvas.view.to_widget(-20, 40).toPoint()  # in the left band
    image_area = canvas.view.to_widget(50, 40).toPoint()
    outside = canvas.view.to_widget(110, 40).toPoint()  # right of the image: no band there
    a = OVERLAY_OPACITY
    masked = picture.pixelColor(new_area)
    assert masked.red() == pytest.approx(NEW_AREA_COLOR.red() * (1 - a) + OVERLAY_COLOR.red() * a, abs=2)
    assert masked.blue() == pytest.approx(NEW_AREA_COLOR.blue() * (1 - a) + OVERLAY_COLOR.blue() * a, abs=2)
    assert picture.pixelColor(image_area).red() == 100
    assert picture.pixelColor(outside) != masked


def test_keep_mask_keeps_it_only_for_an_image_of_the_same_size(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(64, 64))
    editor.invert()
    editor.set_image(grey_image(64, 64, value=50), keep_mask=True)
    assert (mask_of(editor) == 255).all()
    editor.set_image(grey_image(64, 64, value=50))
    assert editor.is_empty and not editor.document.undo_stack.can_undo
    editor.invert()
    editor.set_image(grey_image(32, 64), keep_mask=True)
    assert editor.is_empty and editor.mask().width() == 32


def test_set_mask_of_the_wrong_size_is_refused(make_editor: MakeEditor) -> None:
    editor = make_editor()
    editor.set_image(grey_image(64, 64))
    with pytest.raises(ValueError, match="mask is 32x64, the image 64x64"):
        editor.set_mask(QImage(32, 64, QImage.Format.Format_Grayscale8))
    grey = QImage(64, 64, QImage.Format.Format_Grayscale8)
    grey.fill(QColor(77, 77, 77))
    editor.set_mask(grey)
    assert (mask_of(editor) == 77).all(), "grey levels are kept"
    assert editor.mask().format() == QImage.Format.Format_Grayscale8


def test_the_dialog_holds_a_working_editor(qtbot: Any) -> None:
    dialog = MaskEditorDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    assert isinstance(dialog.editor, MaskEditor) and isinstance(dialog.editor.canvas, MaskCanvas)
    dialog.editor.set_image(grey_image(40, 30))
    dialog.editor.invert()
    dialog.hide()
    assert (mask_of(dialog.editor) == 255).all(), "hiding the dialog keeps the editor's state"
    dialog.editor.shutdown()


def test_what_panning_leaves_on_screen_is_what_a_full_repaint_draws(
    make_editor: MakeEditor, qtbot: Any
) -> None:
    # Panning scrolls the pixels already drawn and paints only the strips that come into view;
    # the window's backing store must then hold the same picture as a fresh render.
    editor = make_editor()
    image = grey_image(300, 200)
    for x in range(0, 300, 30):  # stripes, so a misplaced strip would show
        for y in range(200):
            image.setPixelColor(x, y, QColor(250, 250, 0))
    editor.set_image(image)
    editor.set_brush(size=25, hardness=0.5)
    canvas, document = editor.canvas, editor.document
    for dx, dy in [(7, 3), (-20, 11), (33, -40), (5, 5)] * 2:
        canvas.pan_by(dx, dy)
        qtbot.wait(5)
        document.begin_stroke((50.0, 50.0))
        document.stroke_to((250.0, 150.0))
        document.end_stroke()
        qtbot.wait(5)
    mouse(canvas, QEvent.Type.MouseMove, QPointF(120, 90), NONE, NONE)  # the brush circle shows
    qtbot.wait(5)
    drag(canvas, [QPointF(120, 90), QPointF(131, 97), QPointF(140, 90)], MIDDLE)  # and goes with the pan
    qtbot.wait(5)
    window = QApplication.primaryScreen().grabWindow(editor.winId()).toImage()
    top_left = canvas.mapTo(editor, QPoint(0, 0))
    on_screen = window.copy(top_left.x(), top_left.y(), canvas.width(), canvas.height())
    on_screen = on_screen.convertToFormat(QImage.Format.Format_RGB32)  # held: views do not keep them
    fresh = canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    shown = qimage_view(on_screen, writable=False)
    rendered = qimage_view(fresh, writable=False)
    channels = [(shown >> s & 0xFF).astype(int) - (rendered >> s & 0xFF).astype(int) for s in (0, 8, 16)]
    assert max(int(np.abs(c).max()) for c in channels) <= 1  # bilinear rounding at strip edges
