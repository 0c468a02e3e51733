"""ADetailer detectors: ultralytics YOLO models run offline, loaded without running code from the file.

Detection follows spec stage-semantics §1.3 step 2 (ADetailer's ``adetailer/ultralytics.py``):
``YOLO(path)``, ``set_classes`` for ``-world`` models only, predict on the RGB image with
``conf=confidence`` at the ``imgsz`` stored in the checkpoint, boxes in image pixels, segmentation
masks resized to the image with PIL's default filter, and a white rectangle per box otherwise.

An ultralytics ``.pt`` file is a pickle of whole ``nn.Module`` objects, which ultralytics loads with
``torch.load(weights_only=False)``: that runs any callable the file names. We never do that. The
file is read by ``yolo_model.yolo_from_checkpoint``: its zip archive is accepted only in the one
layout ``torch.save`` writes and read with torch's own reader (``torch_archive``), and its pickle
is interpreted by a restricted unpickler that builds plain data and allow-listed classes without
calling their constructors, ``__setstate__`` or anything else the file names (``restricted_pickle``,
``checkpoint_policy``). Two gates remain: the user trusts each file's exact bytes once (SHA-256 in
``DetectorTrust``; GUI: a confirmation dialog, CLI: ``--trust-model FILE``), and the loader refuses
whatever is outside the allow-list, trusted or not. The bytes hashed are the bytes loaded.

``configure_ultralytics`` must run before ultralytics is first imported: it switches ultralytics
offline (no DNS probe, no auto-install, no settings sync, no experiment trackers) and seeds the
fonts ultralytics would otherwise download.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from ...core.errors import shorten
from ...core.files import FileRefused, open_regular_file
from ..errors import ModelError
from ..memory import MemoryBudget, ResidentLru
from .masks import Detection, bbox_mask
from .torch_archive import MAX_DETECTOR_BYTES
from .yolo_model import yolo_from_checkpoint

logger = logging.getLogger(__name__)

DETECTION_TASKS = frozenset({"detect", "segment"})
"""ultralytics tasks ADetailer can use: boxes, or boxes with masks."""

_FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_TRACKERS = ("clearml", "comet", "dvc", "mlflow", "raytune", "tensorboard", "wandb")


class UntrustedModelError(ModelError):
    """The detector file has not been trusted yet; ``path`` and ``sha256`` let a dialog ask the user."""

    def __init__(self, path: Path, sha256: str) -> None:
        self.path = path
        self.sha256 = sha256
        super().__init__(
            f"detector {path.name} is not trusted yet (SHA-256 {sha256}). YOLO .pt files are pickles; "
            f"they are loaded through a restricted unpickler, and each file must also be trusted once: "
            f"confirm it in the dialog (GUI) or pass --trust-model {path} (CLI)."
        )


# -- offline configuration ---------------------------------------------------------------------


def configure_ultralytics(config_dir: Path) -> None:
    """Make ultralytics work offline with its settings and fonts in ``config_dir``.

    Sets ``YOLO_OFFLINE`` (no DNS probe at import), ``YOLO_AUTOINSTALL=0`` (no pip installs) and
    ``YOLO_CONFIG_DIR``; ultralytics reads them once, at its first import, so call this before
    anything imports ultralytics. Then turns settings sync and every experiment-tracker
    integration off, points the weights/datasets/runs folders into ``config_dir`` and seeds
    ``Arial.ttf``/``Arial.Unicode.ttf`` so ultralytics never downloads fonts. Idempotent; if
    ultralytics was imported earlier with another folder, that folder gets the settings and fonts.

    Importing ultralytics also replaces ``PIL.Image.open`` for the whole process (an unreadable file
    then raises ModuleNotFoundError for ``pi_heif`` instead of ``UnidentifiedImageError``, after
    trying to install it) and ``torch.save`` (retries with sleeps); both are put back.
    """
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_AUTOINSTALL"] = "0"
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    import ultralytics.utils as yolo_utils  # reads the variables above on first import

    user_dir = Path(yolo_utils.USER_CONFIG_DIR)  # config_dir / "Ultralytics" unless imported before
    if user_dir.parent.resolve() != config_dir.resolve():
        logger.info("ultralytics was configured earlier; it keeps its config folder %s", user_dir)
    _seed_fonts(user_dir)
    _update_settings(yolo_utils.SETTINGS, user_dir)
    _undo_global_patches()


def _undo_global_patches() -> None:
    import torch
    from ultralytics.utils import patches

    if Image.open is patches.image_open:
        Image.open = patches._image_open
    if torch.save is patches.torch_save:
        torch.save = patches._torch_save


def _update_settings(settings: Any, user_dir: Path) -> None:
    wanted: dict[str, object] = {"sync": False, **dict.fromkeys(_TRACKERS, False)}
    for key, folder in (("weights_dir", "weights"), ("datasets_dir", "datasets"), ("runs_dir", "runs")):
        wanted[key] = str(user_dir / folder)
    changed = {key: value for key, value in wanted.items() if settings.get(key) != value}
    if changed:  # each update rewrites settings.json
        settings.update(changed)


def _seed_fonts(user_dir: Path) -> None:
    source = _font_source()
    if source is None:
        logger.warning("no font file found to seed %s; ultralytics may try to download Arial", user_dir)
        return
    user_dir.mkdir(parents=True, exist_ok=True)
    for name in _FONT_NAMES:
        target = user_dir / name
        if not target.exists():
            shutil.copyfile(source, target)


def _font_source() -> Path | None:
    try:
        import matplotlib
    except ImportError:
        pass
    else:
        font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if font.is_file():
            return font
    from PIL import ImageFont

    default = getattr(ImageFont.load_default(), "path", None)  # a file only on some Pillow builds
    return Path(default) if isinstance(default, str) and Path(default).is_file() else None


# -- trust list --------------------------------------------------------------------------------


class DetectorTrust:
    """The detector files the user trusted, by SHA-256, in a JSON file (``path``) in the app data dir.

    A changed file has another hash and must be trusted again. A missing or corrupt list counts as
    empty; writes are atomic (temp file + replace). Safe to share between threads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def is_trusted(self, file: Path) -> bool:
        """Whether the current bytes of ``file`` were trusted. Raises ModelError if it is unreadable."""
        return self.is_trusted_hash(file_sha256(file))

    def is_trusted_hash(self, sha256: str) -> bool:
        """Whether a file with this SHA-256 hex digest was trusted."""
        with self._lock:
            return sha256 in self._read()

    def trust(self, file: Path) -> str:
        """Trust the current bytes of ``file``: record its SHA-256, name and the date; returns the hash."""
        digest = file_sha256(file)
        with self._lock:
            entries = self._read()
            entries[digest] = {
                "name": file.name,
                "trusted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _write_json_atomic(self.path, {"version": 1, "trusted": entries})
        return digest

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return {}
        trusted = data.get("trusted") if isinstance(data, dict) else None
        return dict(trusted) if isinstance(trusted, dict) else {}


def file_sha256(file: Path) -> str:
    """The SHA-256 hex digest of ``file``'s bytes; ModelError if it cannot be read."""
    return hashlib.sha256(_read_bytes(file)).hexdigest()


def _read_bytes(file: Path) -> bytes:
    """The detector's bytes: a regular file only (a FIFO would block, ``/dev/zero`` never ends),
    at most MAX_DETECTOR_BYTES, read in chunks (read(n) would allocate all n bytes at once)."""
    chunks: list[bytes] = []
    size = 0
    try:
        with open_regular_file(file) as stream:
            while size <= MAX_DETECTOR_BYTES and (chunk := stream.read(2**22)):
                chunks.append(chunk)
                size += len(chunk)
    except FileRefused as exc:
        raise ModelError(f"cannot read detector {shorten(file)!r}: {exc}; choose a YOLO .pt file") from None
    except OSError as exc:
        raise ModelError(f"cannot read detector {shorten(file)!r}: {exc.strerror or exc}") from exc
    if size > MAX_DETECTOR_BYTES:
        raise ModelError(
            f"detector {shorten(file.name)} is larger than {MAX_DETECTOR_BYTES // 2**20} MiB; YOLO detectors "
            "are far smaller: check that it is the right file"
        )
    return b"".join(chunks)


def _write_json_atomic(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- loading -----------------------------------------------------------------------------------


class Detector:
    """A loaded ultralytics detection or segmentation model, used as ADetailer uses it.

    Not thread-safe: run it on the engine's worker thread.
    """

    def __init__(self, model: Any, path: Path) -> None:
        self._model = model
        self.path = path
        self.task: str = model.task
        self.names: dict[int, str] = dict(model.names)
        self._classes = ""

    @property
    def is_world(self) -> bool:
        """Whether this is a YOLO-World model (ADetailer: "-world" in the file stem); it takes classes."""
        return "-world" in self.path.stem

    def predict(
        self, image: Image.Image, confidence: float, classes: str = "", device: str = ""
    ) -> list[Detection]:
        """Detect objects in ``image`` with score >= ``confidence`` (0..1), best first.

        ``classes`` (comma-separated) applies to YOLO-World models only; others ignore it. ``device``
        "" picks the GPU when there is one, "cpu" forces the CPU (A1111's lowvram/medvram).
        Boxes are in ``image`` pixels; each Detection's mask is an "L" image of ``image``'s size:
        the segmentation mask, or the filled box for box-only models. Nothing found: ``[]``.
        """
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"detection confidence must be within 0..1, got {confidence}")
        if self.is_world:
            self._apply_classes(classes)
        rgb = image.convert("RGB")
        with keeping_torch_threads():
            results = self._model.predict(rgb, conf=confidence, device=device, verbose=False)
        return _detections(results[0], rgb.size)

    def _apply_classes(self, classes: str) -> None:
        if classes == self._classes:
            return
        wanted = [name.strip() for name in classes.split(",") if name.strip()]
        self._model.set_classes(wanted or list(self.names.values()))
        self._classes = classes


@contextmanager
def keeping_torch_threads() -> Iterator[None]:
    """Undo ultralytics' process-wide ``torch.set_num_threads``: choosing a CPU device sets it to
    ``min(8, cpus - 1)``, which would slow every later diffusion step on the CPU (1 thread of 2
    here) and change their float rounding."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


def _detections(result: Any, size: tuple[int, int]) -> list[Detection]:
    boxes = result.boxes
    if boxes is None or len(boxes) == 0:
        return []
    xyxy = [(float(a), float(b), float(c), float(d)) for a, b, c, d in boxes.xyxy.cpu().tolist()]
    scores = [float(score) for score in boxes.conf.cpu().tolist()]
    labels = [str(result.names.get(int(index), "")) for index in boxes.cls.cpu().tolist()]
    if result.masks is not None:
        masks = [_mask_image(mask, size) for mask in result.masks.data]
    else:
        masks = [bbox_mask(box, size) for box in xyxy]
    return [
        Detection(bbox=box, confidence=score, mask=mask, label=label)
        for box, score, mask, label in zip(xyxy, scores, masks, labels, strict=True)
    ]


def _mask_image(mask: Any, size: tuple[int, int]) -> Image.Image:
    # torchvision's to_pil_image(mask, mode="L") as ADetailer does it: x * 255 truncated to uint8
    pixels = (mask.float().cpu().numpy() * 255).astype("uint8")
    return Image.fromarray(pixels, mode="L").resize(size)


class DetectorCache:
    """Loaded detectors, least recently used first out, keyed by (file, modification time, size),
    at most ``max_entries`` of them, inside the engine's memory ``budget`` (on the engine context).

    A cached detector is still only returned when its file is trusted (or untrusted files are
    allowed); an edited file (new mtime or size) is hashed and loaded afresh.
    """

    def __init__(self, max_entries: int = 2, *, budget: MemoryBudget | None = None) -> None:
        """Keep at most ``max_entries`` detectors loaded (each may hold device memory)."""
        self._pool: ResidentLru[tuple[str, int, int], tuple[str, Detector]] = ResidentLru(budget, max_entries)
        self._lock = threading.Lock()

    def load(self, path: Path, trust: DetectorTrust, allow_untrusted: bool = False) -> Detector:
        """The detector in ``path``, from the cache or loaded as ``load_detector`` describes."""
        key = _file_key(path)
        with self._lock:
            cached = self._pool.get(key)
            if cached is not None:
                digest, detector = cached
                _check_trust(path, digest, trust, allow_untrusted)
                return detector
            self._pool.reserve(key[2])  # the file's size: about what its weights take loaded
            digest, detector = _load_checked(path, trust, allow_untrusted)
            self._pool.put(key, (digest, detector), key[2])
            return detector

    @property
    def budget(self) -> MemoryBudget:
        """The memory budget this cache's entries count against."""
        return self._pool.budget

    def clear(self) -> None:
        """Drop every loaded detector (e.g. to free device memory)."""
        self._pool.clear()

    def __len__(self) -> int:
        return len(self._pool)


def load_detector(
    path: Path, trust: DetectorTrust, allow_untrusted: bool = False, *, cache: DetectorCache
) -> Detector:
    """Load the ultralytics detector in ``path`` if it is trusted, without running code from it.

    Raises ``UntrustedModelError`` (with the file's SHA-256) when ``trust`` does not list the file
    and ``allow_untrusted`` is off, and ``ModelError`` (one line) when the file is missing or too
    large, the restricted loader refuses it (even if trusted: an ambiguous archive, a global outside
    the allow-list, a call or state change the loader does not make), or it is not a detection or
    segmentation model. Detectors come from ``cache`` (the engine context's, under its memory budget).
    Call ``configure_ultralytics`` first.
    """
    return cache.load(path, trust, allow_untrusted)


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ModelError(f"detector {path} not found: {exc.strerror or exc}") from exc
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def _check_trust(path: Path, digest: str, trust: DetectorTrust, allow_untrusted: bool) -> None:
    if not allow_untrusted and not trust.is_trusted_hash(digest):
        raise UntrustedModelError(path, digest)


def _load_checked(path: Path, trust: DetectorTrust, allow_untrusted: bool) -> tuple[str, Detector]:
    # The bytes hashed are the bytes loaded: the file is read once.
    data = _read_bytes(path)
    digest = hashlib.sha256(data).hexdigest()
    _check_trust(path, digest, trust, allow_untrusted)
    return digest, Detector(_load_yolo(data, path), path)


def _load_yolo(data: bytes, path: Path) -> Any:
    model = yolo_from_checkpoint(data, path)
    if model.task not in DETECTION_TASKS:
        raise ModelError(
            f"{path.name} is not a detection or segmentation model (ultralytics task {model.task!r}); "
            f"ADetailer needs a YOLO model whose task is {' or '.join(sorted(DETECTION_TASKS))}"
        )
    return model
