"""The mask editor: paint an inpaint mask over the input image and choose outpaint sides.

A standalone widget, :class:`MaskEditor` (or :class:`MaskEditorDialog` around one). It imports no
engine code and knows nothing of RunConfig: the input panel shows it, reads the mask and the
outpaint sides from it, and writes the mask to a file for ``img2img.mask_path``.

The API (all on the GUI thread):

- ``set_image(path | QImage | None, keep_mask=False)``: a path is decoded off the GUI thread and
  :attr:`~MaskEditor.image_changed` follows; the mask starts empty (kept when ``keep_mask`` and the
  size is unchanged), the undo history is cleared.
- ``mask() -> QImage``: Format_Grayscale8, the image's size, 255 = inpaint (a copy).
- ``set_mask(QImage)`` (same size; one undo step), ``load_mask(path)`` (off the GUI thread; A1111's
  rules: alpha rounded at 128 if not fully opaque, else luminance; resized with Lanczos),
  ``mask_from_alpha()`` (the image's transparent pixels), ``invert()``, ``clear()``, ``undo()``,
  ``redo()``.
- ``mask_changed``: throttled (at most every ``MASK_CHANGED_THROTTLE_MS`` while painting, and once
  after the last change); ``is_empty`` (no pixel above 0), ``has_mask`` (an image and a non-empty
  mask or an outpaint side: something to inpaint), ``has_image``, ``has_alpha_mask``.
- ``outpaint() -> OutpaintSides(left, right, top, bottom)`` (a tuple; multiples of 8, 0..256),
  ``set_outpaint(...)``, ``outpaint_changed(OutpaintSides)``. The mask stays the image's size;
  the new area is implicitly all masked.
- ``write_mask(path, done)`` and ``write_mask_snapshot(folder, done)``: an 8-bit greyscale PNG,
  written atomically on the editor's worker thread, then ``done(path)`` on the GUI thread; the
  snapshot's name comes from the mask's bytes, so the file never changes once written.
- ``problem(str)``: one line for the user when a file cannot be read or written.
- ``shutdown()``: before the editor is dropped (flushes ``mask_changed``, waits for writes).
"""

from .dialog import MaskEditorDialog
from .editor import MASK_CHANGED_THROTTLE_MS, MaskEditor
from .mask_io import MaskFileError
from .outpaint import OUTPAINT_MAX, OUTPAINT_STEP, OutpaintSides
from .strokes import MAX_BRUSH_SIZE, MIN_BRUSH_SIZE, Brush

__all__ = [
    "MASK_CHANGED_THROTTLE_MS",
    "MAX_BRUSH_SIZE",
    "MIN_BRUSH_SIZE",
    "OUTPAINT_MAX",
    "OUTPAINT_STEP",
    "Brush",
    "MaskEditor",
    "MaskEditorDialog",
    "MaskFileError",
    "OutpaintSides",
]
