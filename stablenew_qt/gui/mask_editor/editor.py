"""MaskEditor: the mask editor widget (tools, outpaint fields, canvas) and its public API.

See the package docstring (:mod:`stablenew_qt.gui.mask_editor`) for the API and its contract.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QVBoxLayout, QWidget
from superqt.utils import qthrottled

from .canvas import MaskCanvas
from .controls import MaskControls
from .document import MaskDocument
from .mask_io import (
    BackgroundWork,
    LoadedImage,
    mask_from_qimage,
    prepare_image,
    read_image,
    read_mask_file,
    write_mask_png,
    write_mask_snapshot,
)
from .outpaint import OutpaintFields, OutpaintSides
from .strokes import Brush, Mask
from .undo import DEFAULT_BUDGET_BYTES

#: mask_changed fires at most this often while painting (ms), and once after the last change.
MASK_CHANGED_THROTTLE_MS = 150
MASK_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"


class MaskEditor(QWidget):
    """Paint an inpaint mask over an image, and choose outpaint sides."""

    #: The mask's pixels changed (throttled while painting; read :meth:`mask` for them).
    mask_changed = Signal()
    #: The outpaint sides changed: carries the new :class:`OutpaintSides`.
    outpaint_changed = Signal(object)
    #: A new image is shown (after the decode of :meth:`set_image`), or none is.
    image_changed = Signal()
    #: One line for the user: a file could not be read or written.
    problem = Signal(str)

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        undo_budget_bytes: int = DEFAULT_BUDGET_BYTES,
        throttle_ms: int = MASK_CHANGED_THROTTLE_MS,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("mask.editor")
        self.document = MaskDocument(self, undo_budget_bytes=undo_budget_bytes)
        self.io = BackgroundWork(self)
        self.canvas = MaskCanvas(self.document)
        self.controls = MaskControls(self)
        self.outpaint_fields = OutpaintFields()
        self.status = QLabel()
        self.status.setObjectName("mask.status")
        self.status.setWordWrap(True)
        self._image_path: Path | None = None
        self._image_ticket = 0  # a decode or mask read for an older image is dropped on arrival
        self._emit_mask_changed = qthrottled(self.mask_changed.emit, timeout=throttle_ms, parent=self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls)
        layout.addWidget(self.outpaint_fields)
        layout.addWidget(self.canvas, 1)
        status_bar = QHBoxLayout()  # messages on the left, zoom on the right, as in image viewers
        status_bar.addWidget(self.status, 1)
        status_bar.addWidget(self.controls.view_bar)
        layout.addLayout(status_bar)
        self._connect()
        self._on_undo_changed()
        self._on_replaced()

    def _connect(self) -> None:
        c = self.controls
        c.brush_changed.connect(self._on_brush_changed)
        c.commands["undo"].triggered.connect(self.undo)
        c.commands["redo"].triggered.connect(self.redo)
        c.commands["invert"].triggered.connect(self.invert)
        c.commands["clear"].triggered.connect(self.clear)
        c.commands["overlay"].toggled.connect(self.canvas.set_overlay_visible)
        c.commands["from_alpha"].triggered.connect(self.mask_from_alpha)
        c.commands["load"].triggered.connect(self._on_load_triggered)
        c.commands["save"].triggered.connect(self._on_save_triggered)
        c.commands["fit"].triggered.connect(self.canvas.fit)
        c.commands["actual_size"].triggered.connect(self.canvas.actual_size)
        c.commands["zoom_in"].triggered.connect(self.canvas.zoom_in)
        c.commands["zoom_out"].triggered.connect(self.canvas.zoom_out)
        self.canvas.zoom_changed.connect(c.show_zoom)
        self.outpaint_fields.sides_changed.connect(self._on_sides_changed)
        self.document.mask_edited.connect(self._on_mask_edited)
        self.document.undo_changed.connect(self._on_undo_changed)
        self.document.replaced.connect(self._on_replaced)
        self._on_brush_changed(c.brush())

    # -- the image --------------------------------------------------------------------------------

    @property
    def has_image(self) -> bool:
        return self.document.has_image

    @property
    def image_path(self) -> Path | None:
        """The file shown, when it came from :meth:`set_image` with a path (after its decode)."""
        return self._image_path

    def image(self) -> QImage:
        return self.document.image

    def set_image(self, source: Path | str | QImage | None, *, keep_mask: bool = False) -> None:
        """Show an image to mask. A path is decoded off the GUI thread (:attr:`image_changed` follows;
        a file that cannot be read clears the editor and reports a :attr:`problem`); a QImage is
        shown at once; None shows nothing. The mask starts empty and the undo history is cleared,
        unless ``keep_mask`` and the new image has the mask's size."""
        self._image_ticket += 1
        if source is None or isinstance(source, QImage):
            image = QImage() if source is None else source
            self._show_image(self._image_ticket, None, keep_mask, prepare_image(image))
            return
        path = Path(source)
        self._say(f"Loading {path.name}…")
        self.io.submit(
            partial(read_image, path),
            partial(self._show_image, self._image_ticket, path, keep_mask),
            partial(self._on_image_failed, self._image_ticket),
        )

    def _show_image(self, ticket: int, path: Path | None, keep_mask: bool, loaded: LoadedImage) -> None:
        if ticket != self._image_ticket:
            return
        self._image_path = path if not loaded.image.isNull() else None
        self.document.set_image(loaded.image, loaded.alpha_mask, keep_mask=keep_mask, buffers=loaded.buffers)
        self._say("")
        self.image_changed.emit()

    def _on_image_failed(self, ticket: int, message: str) -> None:
        if ticket == self._image_ticket:
            self._show_image(ticket, None, False, prepare_image(QImage()))
            self._report(message)

    # -- the mask ---------------------------------------------------------------------------------

    def mask(self) -> QImage:  # type: ignore[override]  # the API asks for mask(); QWidget.mask() is unused here
        """A copy of the mask: Format_Grayscale8, the image's size, 255 = inpaint."""
        return self.document.mask()

    @property
    def is_empty(self) -> bool:
        """No pixel of the painted mask is above 0 (also when there is no image)."""
        return self.document.is_empty()

    @property
    def has_mask(self) -> bool:
        """There is something to inpaint: an image and a non-empty mask, or an outpaint side."""
        return self.has_image and (not self.is_empty or self.outpaint().any)

    @property
    def has_alpha_mask(self) -> bool:
        """The image has transparent pixels, so :meth:`mask_from_alpha` can use them."""
        return self.document.alpha_mask is not None

    def set_mask(self, mask: QImage) -> None:
        """Replace the mask (one undo step). Grey levels are kept; an image whose alpha channel
        is not fully opaque gives its alpha, rounded at 128 (A1111's rule). Raises ValueError if
        its size is not the image's (files of another size go through :meth:`load_mask`)."""
        want = (self.document.width, self.document.height)
        if (mask.width(), mask.height()) != want:
            raise ValueError(f"mask is {mask.width()}x{mask.height()}, the image {want[0]}x{want[1]}")
        self.document.replace_mask(mask_from_qimage(mask), "set mask")

    def load_mask(self, path: Path | str) -> None:
        """Read a mask file off the GUI thread (A1111's rules; resized to the image with Lanczos),
        then make it the mask as one undo step. Problems are reported by :attr:`problem`."""
        if not self.has_image:
            self._report("Choose an input image before loading a mask for it")
            return
        path, ticket = Path(path), self._image_ticket
        size = (self.document.width, self.document.height)
        self.io.submit(partial(read_mask_file, path, size), partial(self._on_mask_read, ticket), self._report)

    def _on_mask_read(self, ticket: int, mask: Mask) -> None:
        if ticket == self._image_ticket:
            self.document.replace_mask(mask, "load mask")

    def mask_from_alpha(self) -> bool:
        """Mask every pixel of the image that is not fully opaque (one undo step); False if none."""
        alpha = self.document.alpha_mask
        if alpha is None:
            self._report("The image has no transparent pixels to make a mask from")
            return False
        self.document.replace_mask(alpha, "mask from alpha")
        return True

    def invert(self) -> None:
        self.document.invert()

    def clear(self) -> None:
        self.document.clear()

    def undo(self) -> None:
        self.document.undo()

    def redo(self) -> None:
        self.document.redo()

    def _on_mask_edited(self) -> None:
        self._emit_mask_changed()

    def _on_undo_changed(self) -> None:
        self.controls.show_undo_state(self.document.undo_stack)

    def _on_replaced(self) -> None:
        self.controls.show_image_state(self.has_image, self.has_alpha_mask)

    # -- the brush --------------------------------------------------------------------------------

    @property
    def brush(self) -> Brush:
        return self.document.brush

    def set_brush(
        self, *, size: float | None = None, hardness: float | None = None, erase: bool | None = None
    ) -> None:
        """Change the brush (size in image pixels, hardness 0..1, eraser or not); the controls follow."""
        self.controls.set_brush(self.document.brush, size=size, hardness=hardness, erase=erase)

    def _on_brush_changed(self, brush: Brush) -> None:
        self.document.brush = brush
        self.canvas.brush_changed()

    # -- outpaint ---------------------------------------------------------------------------------

    def outpaint(self) -> OutpaintSides:
        """Pixels to add (left, right, top, bottom); the new area is masked."""
        return self.outpaint_fields.sides()

    def set_outpaint(self, sides: OutpaintSides | tuple[int, int, int, int]) -> None:
        self.outpaint_fields.set_sides(OutpaintSides(*sides))

    def _on_sides_changed(self, sides: OutpaintSides) -> None:
        self.canvas.set_outpaint(sides)
        self.outpaint_changed.emit(sides)

    # -- files ------------------------------------------------------------------------------------

    def write_mask(self, path: Path | str, done: Callable[[Path], None] | None = None) -> None:
        """Save the mask as an 8-bit greyscale PNG at ``path``, atomically, off the GUI thread;
        then ``done(path)`` on the GUI thread. A failure is reported by :attr:`problem`."""
        self._write(partial(write_mask_png, self.document.mask_array.copy(), Path(path)), done)

    def write_mask_snapshot(self, folder: Path | str, done: Callable[[Path], None]) -> None:
        """Like :meth:`write_mask`, into ``folder`` under a name made from the mask's bytes: a
        file that never changes afterwards (what a queued RunConfig's ``mask_path`` can name)."""
        self._write(partial(write_mask_snapshot, self.document.mask_array.copy(), Path(folder)), done)

    def _write(self, work: Callable[[], Path], done: Callable[[Path], None] | None) -> None:
        if not self.has_image:
            self._report("There is no mask to save: choose an input image first")
            return
        self.io.submit(work, done or self._on_saved, self._report)

    def _on_saved(self, path: Path) -> None:
        self._say(f"Saved the mask to {path}")

    def _on_load_triggered(self) -> None:
        name, _ = QFileDialog.getOpenFileName(self, "Load mask", "", MASK_FILTER)
        if name:
            self.load_mask(name)

    def _on_save_triggered(self) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Save mask", "mask.png", "PNG images (*.png)")
        if name:
            self.write_mask(name if name.lower().endswith(".png") else name + ".png")

    # -- messages and shutdown --------------------------------------------------------------------

    def _say(self, text: str) -> None:
        self.status.setProperty("role", None)
        self.status.setText(text)

    def _report(self, message: str) -> None:
        self.status.setProperty("role", "error")
        self.status.setText(message)
        self.problem.emit(message)

    def is_idle(self) -> bool:
        """No read or write is waiting (tests wait on this)."""
        return self.io.is_idle()

    def shutdown(self) -> None:
        """Deliver a pending :attr:`mask_changed`, finish every write, drop later answers.
        Call it before the editor is dropped (e.g. when the window closes)."""
        self._emit_mask_changed.flush(restart_timer=False)
        self.io.shutdown()
