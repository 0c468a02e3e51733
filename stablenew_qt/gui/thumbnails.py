"""ThumbnailLoader: image files decoded off the GUI thread, scaled down, with an LRU cache.

Any panel that shows images small (the Results gallery and its viewer, later the queue's job
history) calls ``loader.request(path, size)`` and hears back through
:attr:`ThumbnailLoader.thumbnailReady` on the GUI thread. Decoding runs on the loader's own
QThreadPool (never the global one) with QImageReader into a QImage; QPixmap is GUI-thread-only,
so receivers convert the QImage when it arrives.

The reply contract:

- every request is answered by one ``thumbnailReady(path, size, image)``, unless
  :meth:`~ThumbnailLoader.cancel_pending`, :meth:`~ThumbnailLoader.clear` or
  :meth:`~ThumbnailLoader.shutdown` drops it first; requests for the same path and size made while
  one is being decoded share that decode and its one signal;
- a file that is missing, unreadable or not an image is answered with a *null* QImage
  (``image.isNull()``); nothing raises, and failures are not cached, so a later request retries;
- a cache hit is answered at once, inside ``request`` (connect before requesting).

Workers never touch a QObject that may be gone: they emit through a relay that the loader owns
and deletes only after its pool has finished (the pool is its first child), and
:meth:`~ThumbnailLoader.shutdown` waits for running work. Call it before the loader is dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

from PySide6.QtCore import QObject, QRunnable, Qt, QThreadPool, Signal
from PySide6.QtGui import QImage, QImageReader

log = logging.getLogger(__name__)

#: The cache's default budget, in bytes of decoded pixels (about 1,700 thumbnails of 96 px).
DEFAULT_CACHE_BYTES = 64 * 1024 * 1024


def read_scaled(path: Path, size: int) -> QImage:
    """``path`` decoded to fit a ``size`` x ``size`` square (aspect kept, never enlarged).

    A null QImage when the file cannot be read. Safe on any thread (QImage, not QPixmap).
    """
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)  # EXIF rotation; the bound is square, so it still fits
    full = reader.size()
    if full.isValid() and (full.width() > size or full.height() > size):
        # Formats that can (JPEG) decode at the smaller size directly; others scale after.
        reader.setScaledSize(full.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio))
    return reader.read()


class _Key(NamedTuple):
    path: str
    size: int
    mtime_ns: int  # -1 when the file could not be stat'ed


class _Generation:
    """Work started before a cancel belongs to an older generation and is dropped on arrival.

    ``stopped`` is the loader's, set when it shuts down or is deleted: queued work is then skipped.
    """

    def __init__(self, stopped: threading.Event) -> None:
        self.cancelled = threading.Event()
        self.stopped = stopped

    def dropped(self) -> bool:
        return self.cancelled.is_set() or self.stopped.is_set()


class _Failed:
    """What a job whose work raised delivers instead of a result (its ``done`` is not called)."""


_FAILED = _Failed()


class _Relay(QObject):
    # (generation, done callback, result), emitted on a worker thread, queued to the GUI thread.
    finished = Signal(object, object, object)


class _LoaderTask(QRunnable):
    def __init__(
        self, work: Callable[[], Any], done: Callable[[Any], None], generation: _Generation, relay: _Relay
    ) -> None:
        super().__init__()
        self.work, self.done, self.generation, self.relay = work, done, generation, relay

    def run(self) -> None:
        if self.generation.dropped():
            return
        try:
            result = self.work()
        except Exception:
            log.exception("background image work failed")
            result = _FAILED
        if not self.generation.dropped():
            self.relay.finished.emit(self.generation, self.done, result)


class _ImageCache:
    """Least recently used QImages, within a budget of decoded bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._images: OrderedDict[_Key, QImage] = OrderedDict()

    def get(self, key: _Key) -> QImage | None:
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
        return image

    def put(self, key: _Key, image: QImage) -> None:
        if key in self._images:
            self.bytes -= self._images.pop(key).sizeInBytes()
        self._images[key] = image
        self.bytes += image.sizeInBytes()
        while self.bytes > self.max_bytes and len(self._images) > 1:
            _old, evicted = self._images.popitem(last=False)
            self.bytes -= evicted.sizeInBytes()

    def clear(self) -> None:
        self._images.clear()
        self.bytes = 0


class ThumbnailLoader(QObject):
    """Decodes image files to QImages of at most ``size`` px on a side, off the GUI thread.

    ``threads`` is the pool's size (1 or 2 keeps the GUI and the engine fed); ``cache_bytes``
    bounds the cache of decoded images, keyed by (path, size, modification time).
    """

    #: (path as requested, size, image): the image fits ``size`` x ``size``; null if unreadable.
    thumbnailReady = Signal(object, int, QImage)

    def __init__(
        self, parent: QObject | None = None, *, threads: int = 1, cache_bytes: int = DEFAULT_CACHE_BYTES
    ) -> None:
        super().__init__(parent)
        if threads < 1:
            raise ValueError(f"ThumbnailLoader needs at least 1 thread, got threads={threads}")
        # The pool is the first child, so when the loader is deleted the pool's destructor waits
        # for running workers while the relay they emit through (the second child) still exists.
        self._pool = QThreadPool(self)
        self._pool.setObjectName("thumbnails")
        self._pool.setMaxThreadCount(threads)
        self._relay = _Relay(self)
        self._relay.finished.connect(self._on_relay_finished, Qt.ConnectionType.QueuedConnection)
        self._stopped = threading.Event()
        self.destroyed.connect(self._stopped.set)  # deleted without shutdown(): skip queued work
        self._generation = _Generation(self._stopped)
        self._in_flight: set[_Key] = set()
        self._outstanding = 0  # started jobs of this generation not yet delivered
        self._cache = _ImageCache(cache_bytes)
        self._decodes = 0

    @property
    def decodes(self) -> int:
        """How many decoded files have been delivered so far (cache hits do not count)."""
        return self._decodes

    @property
    def cache_bytes(self) -> int:
        """Bytes of decoded pixels held in the cache now."""
        return self._cache.bytes

    def is_idle(self) -> bool:
        """True when nothing is queued, being decoded or waiting to be delivered."""
        return self._outstanding == 0 and self._pool.activeThreadCount() == 0

    def request(self, path: Path, size: int) -> None:
        """Ask for ``path`` scaled to fit ``size`` x ``size``; answered by :attr:`thumbnailReady`.

        Stats the file on the calling thread (for the cache key), decodes it on the pool; a cache
        hit is answered before this returns. Ignored after :meth:`shutdown`.
        """
        if size < 1:
            raise ValueError(f"thumbnail size must be at least 1 pixel, got {size}")
        if self._stopped.is_set():
            return
        key = _key(path, size)
        cached = self._cache.get(key)
        if cached is not None:
            self.thumbnailReady.emit(path, size, cached)
            return
        if key in self._in_flight:
            return
        self._in_flight.add(key)
        self._start(partial(_read_or_null, path, size), partial(self._on_decoded, key, path))

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        """Run ``work()`` on the pool, then ``done(result)`` on the GUI thread (e.g. listing a folder).

        Dropped like a thumbnail request by :meth:`cancel_pending`; if ``work`` raises, the error
        is logged and ``done`` is not called. ``work`` must not touch widgets.
        """
        if not self._stopped.is_set():
            self._start(work, done)

    def cancel_pending(self) -> None:
        """Drop queued work and ignore the results of work already running (nothing is answered)."""
        self._generation.cancelled.set()
        self._generation = _Generation(self._stopped)
        self._pool.clear()
        self._in_flight.clear()
        self._outstanding = 0

    def clear(self) -> None:
        """:meth:`cancel_pending` and empty the cache (e.g. the output folder changed)."""
        self.cancel_pending()
        self._cache.clear()

    def shutdown(self) -> None:
        """Drop pending work and wait for running work to end; later requests are ignored."""
        self._stopped.set()
        self.cancel_pending()
        self._pool.waitForDone()

    def _start(self, work: Callable[[], Any], done: Callable[[Any], None]) -> None:
        self._outstanding += 1
        self._pool.start(_LoaderTask(work, done, self._generation, self._relay))

    def _on_relay_finished(self, generation: _Generation, done: Callable[[Any], None], result: Any) -> None:
        if generation is not self._generation or self._stopped.is_set():
            return
        self._outstanding -= 1
        if result is not _FAILED:
            done(result)

    def _on_decoded(self, key: _Key, path: Path, image: QImage) -> None:
        self._in_flight.discard(key)
        self._decodes += 1
        if not image.isNull():
            self._cache.put(key, image)
        self.thumbnailReady.emit(path, key.size, image)


def _read_or_null(path: Path, size: int) -> QImage:
    try:
        return read_scaled(path, size)
    except Exception:  # a decoder plug-in failing must still answer the request
        log.exception("could not read %s", path)
        return QImage()


def _key(path: Path, size: int) -> _Key:
    try:
        mtime_ns = path.stat().st_mtime_ns
    except OSError:
        mtime_ns = -1
    return _Key(str(path), size, mtime_ns)
