"""Reading images and masks, writing masks, and the worker that does it off the GUI thread.

The functions here are safe on any thread (QImage, numpy and PIL; never a widget or QPixmap).
Mask files follow A1111 (``modules/processing.py``, ``create_binary_mask``, and ``images.resize_image``):

- the file is taken as RGBA (Gradio's ``image_mode="RGBA"`` upload), EXIF orientation applied;
- if its alpha channel is not fully opaque the mask is the alpha channel, rounded (> 128 -> 255,
  else 0: A1111's default ``mask_round``); otherwise it is the luminance (PIL ``convert("L")``), kept
  as grey levels;
- a mask of another size than the image is resized to the image's size with Lanczos (A1111
  resizes the mask to the output size with ``resize_image``, which uses Lanczos for ``L`` images).

The input image's own alpha channel gives a mask too: every pixel that is not fully opaque is
masked (255). That is what A1111's drawn-mask mode did with a transparent upload before 1.0
(``modules/img2img.py``: the inverted alpha, ``> 0 -> 255``, lightened into the drawn mask).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader

from .strokes import Mask

log = logging.getLogger(__name__)

Size = tuple[int, int]  # (width, height)


class MaskFileError(Exception):
    """A file could not be read or written; the message is one line for the user."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded input image ready to paint (RGB32 or ARGB32 premultiplied) and its alpha mask."""

    image: QImage
    alpha_mask: Mask | None  # None when the image has no pixel that is not fully opaque
    #: An empty mask and overlay of the image's size, made (and their pages touched) on the
    #: worker, so the GUI thread does not spend ~10 ms allocating 20 MiB for a 2048² image.
    buffers: tuple[QImage, QImage] | None = None


def blank_buffers(width: int, height: int) -> tuple[QImage, QImage]:
    """A zeroed Format_Grayscale8 mask and Format_ARGB32_Premultiplied overlay."""
    mask = QImage(width, height, QImage.Format.Format_Grayscale8)
    overlay = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
    mask.fill(0)
    overlay.fill(0)
    return mask, overlay


def qimage_view(image: QImage, *, writable: bool = True) -> np.ndarray[Any, Any]:
    """A numpy view of ``image``'s pixels, shape (height, width), for 8-bit and 32-bit formats.

    The view aliases the QImage's buffer and does not keep the QImage alive: hold the QImage in a
    variable for as long as the view is used (``qimage_view(editor.mask())`` reads freed memory),
    and never hand out shallow copies of it while the view is written to. ``writable=False``
    reads without detaching a shared image.
    """
    depth = image.depth()
    if depth not in (8, 32):
        raise ValueError(f"no numpy view for a {depth}-bit QImage")
    dtype = np.uint8 if depth == 8 else np.uint32
    buffer = image.bits() if writable else image.constBits()
    rows = np.frombuffer(buffer, dtype=dtype).reshape(image.height(), -1)
    return rows[:, : image.width()]


def mask_to_qimage(mask: Mask) -> QImage:
    """A new Format_Grayscale8 QImage holding a copy of ``mask``."""
    height, width = mask.shape
    image = QImage(width, height, QImage.Format.Format_Grayscale8)
    if width and height:
        qimage_view(image)[:, :] = mask
    return image


def alpha_to_mask(alpha: Mask) -> Mask | None:
    """The mask from an image's alpha channel (not fully opaque -> 255); None when all opaque."""
    mask = np.where(alpha < 255, np.uint8(255), np.uint8(0))
    return mask if mask.any() else None


def luminance(rgb: np.ndarray[Any, Any]) -> Mask:
    """PIL's ``convert("L")`` of 8-bit RGB: (R*19595 + G*38470 + B*7471 + 32768) >> 16."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 32768) >> 16).astype(np.uint8)


def mask_from_qimage(image: QImage) -> Mask:
    """A1111's rule (see the module docstring) for an image already in memory, without resizing."""
    if image.format() == QImage.Format.Format_Grayscale8:
        return qimage_view(image, writable=False).copy()
    argb = image.convertToFormat(QImage.Format.Format_ARGB32)
    pixels = qimage_view(argb, writable=False)
    alpha = (pixels >> 24).astype(np.uint8)
    if image.hasAlphaChannel() and not bool((alpha == 255).all()):
        return np.where(alpha > 128, np.uint8(255), np.uint8(0))
    rgb = np.stack([(pixels >> 16) & 0xFF, (pixels >> 8) & 0xFF, pixels & 0xFF], axis=-1)
    return luminance(rgb)


def prepare_image(image: QImage) -> LoadedImage:
    """``image`` in a format that draws fast (RGB32, or ARGB32 premultiplied), with its alpha mask."""
    if not image.hasAlphaChannel():
        return LoadedImage(image.convertToFormat(QImage.Format.Format_RGB32), None)
    argb = image.convertToFormat(QImage.Format.Format_ARGB32)
    alpha_mask = alpha_to_mask((qimage_view(argb, writable=False) >> 24).astype(np.uint8))
    return LoadedImage(argb.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied), alpha_mask)


def read_image(path: Path) -> LoadedImage:
    """Decode ``path`` (EXIF orientation applied) for painting; raises MaskFileError."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    image = reader.read()
    if image.isNull():
        raise MaskFileError(f"cannot read {path.name}: {reader.errorString()}; use a PNG, JPEG or WebP file")
    loaded = prepare_image(image)
    return LoadedImage(loaded.image, loaded.alpha_mask, blank_buffers(image.width(), image.height()))


def read_mask_file(path: Path, size: Size) -> Mask:
    """The mask in ``path`` by A1111's rule, resized to ``size`` (width, height) if it differs."""
    try:
        with Image.open(path) as opened:
            opened.load()
            rgba = (ImageOps.exif_transpose(opened) or opened).convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise MaskFileError(f"cannot read mask {path.name}: {exc}") from None
    extrema: tuple[tuple[int, int], ...] = rgba.getextrema()  # type: ignore[assignment]  # per band for RGBA
    if extrema[3] != (255, 255):
        grey = rgba.getchannel("A").point(lambda v: 255 if v > 128 else 0)
    else:
        grey = rgba.convert("L")
    if grey.size != size:
        grey = grey.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(grey, dtype=np.uint8).copy()


def write_mask_png(mask: Mask, path: Path) -> Path:
    """Write ``mask`` as an 8-bit greyscale PNG, atomically: a temp file beside it, synced, renamed.

    Either the whole new file is at ``path`` afterwards or nothing changed there.
    """
    height, width = mask.shape
    image = Image.frombytes("L", (width, height), np.ascontiguousarray(mask).tobytes())
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with temp.open("wb") as file:
            image.save(file, format="PNG")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise MaskFileError(f"cannot write mask {path}: {exc.strerror or exc}") from None
    return path


def snapshot_name(mask: Mask) -> str:
    """A file name that depends only on the mask's size and bytes (the same mask, the same file)."""
    digest = hashlib.sha256(f"{mask.shape[1]}x{mask.shape[0]}:".encode())
    digest.update(np.ascontiguousarray(mask).tobytes())
    return f"mask-{digest.hexdigest()[:16]}.png"


def write_mask_snapshot(mask: Mask, folder: Path) -> Path:
    """Write ``mask`` into ``folder`` under :func:`snapshot_name` (kept if already there)."""
    path = folder / snapshot_name(mask)
    if path.is_file():
        return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MaskFileError(f"cannot create {folder}: {exc.strerror or exc}") from None
    return write_mask_png(mask, path)


# -- the worker ---------------------------------------------------------------------------------


class _Relay(QObject):
    # (done, failed, result, error message): emitted on a worker thread, queued to the GUI thread.
    finished = Signal(object, object, object, object)


class _Task(QRunnable):
    def __init__(
        self,
        work: Callable[[], Any],
        done: Callable[[Any], None],
        failed: Callable[[str], None],
        relay: _Relay,
    ) -> None:
        super().__init__()
        self.work, self.done, self.failed, self.relay = work, done, failed, relay

    def run(self) -> None:
        result, message = None, None
        try:
            result = self.work()
        except MaskFileError as exc:
            message = str(exc)
        except Exception as exc:  # a decoder plug-in failing must still answer
            log.exception("mask editor background work failed")
            message = f"{type(exc).__name__}: {exc}"
        self.relay.finished.emit(self.done, self.failed, result, message)


class BackgroundWork(QObject):
    """One worker thread for the editor's reads and writes, in the order they were submitted.

    ``done(result)`` or ``failed(message)`` runs on the GUI thread. Work never touches widgets.
    :meth:`shutdown` waits for every submitted task (a write is never cut short) and drops their
    answers; call it before the owner goes away.
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # The pool is the first child: deleted first, its destructor waits for running tasks while
        # the relay they emit through (second child) still exists.
        self._pool = QThreadPool(self)
        self._pool.setObjectName("mask-editor-io")
        self._pool.setMaxThreadCount(1)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._on_relay_finished, Qt.ConnectionType.QueuedConnection)
        self._stopped = threading.Event()
        self._pending = 0

    def is_idle(self) -> bool:
        """True when no submitted task is waiting to run or to be answered."""
        return self._pending == 0

    def submit(
        self, work: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[str], None]
    ) -> None:
        if self._stopped.is_set():
            return
        self._pending += 1
        self._pool.start(_Task(work, done, failed, self._relay))

    def shutdown(self) -> None:
        self._stopped.set()
        self._pool.waitForDone()

    def _on_relay_finished(
        self, done: Callable[[Any], None], failed: Callable[[str], None], result: Any, message: str | None
    ) -> None:
        self._pending -= 1
        if self._stopped.is_set():
            return
        if message is None:
            done(result)
        else:
            failed(message)
