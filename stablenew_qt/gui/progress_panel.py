"""ProgressPanel: overall and per-stage bars, "stage 2/4 hires: step 7/15", elapsed/ETA, live preview.

It listens to the EventBridge only. Previews arrive already coalesced by the bridge (latest wins);
the panel converts at most one preview per :data:`PREVIEW_INTERVAL_S` so a fast engine cannot keep
the GUI thread busy scaling pixmaps. The finished run's last image is decoded off the GUI thread.
"""

from __future__ import annotations

import time
from pathlib import Path

from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QProgressBar, QSizePolicy, QVBoxLayout, QWidget

from ..core.events import RunCancelled, RunCompleted, RunFailed, RunStarted, StageStarted, StepProgress
from ..core.field_labels import message_in_user_words
from ..core.sequencer import StageName
from .bridge import EventBridge
from .elided_label import ElidedLabel
from .thumbnails import ThumbnailLoader

PREVIEW_INTERVAL_S = 0.1
PREVIEW_SIZE = 256


def pil_to_qimage(image: Image.Image) -> QImage:
    """A deep-copied QImage of a PIL image (safe after the PIL image is gone)."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    return QImage(data, rgba.width, rgba.height, rgba.width * 4, QImage.Format.Format_RGBA8888).copy()


def _duration(seconds: float) -> str:
    whole = max(0, round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


class ProgressPanel(QWidget):
    """Shows the progress of the current run."""

    def __init__(self, bridge: EventBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overall = QProgressBar()
        self.overall.setObjectName("progress.overall")
        self.overall.setRange(0, 1000)
        self.overall.setToolTip("Progress of the whole run")
        self.stage = QProgressBar()
        self.stage.setObjectName("progress.stage")
        self.stage.setToolTip("Progress of the current stage")
        self.label = ElidedLabel("Idle")
        self.label.setObjectName("progress.label")
        self.timing = ElidedLabel("")
        self.timing.setObjectName("progress.timing")
        self.preview = QLabel()
        self.preview.setObjectName("progress.preview")
        self.preview.setMinimumSize(PREVIEW_SIZE, PREVIEW_SIZE)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.overall)
        layout.addWidget(self.stage)
        layout.addWidget(self.timing)
        layout.addWidget(self.preview, 1)
        self._t0 = 0.0
        self._last_preview = 0.0
        self.preview_count = 0
        # The finished image is decoded off the GUI thread (18 ms at 768 px, 120 ms at 2048 px).
        self.loader = ThumbnailLoader(self)
        self.loader.thumbnailReady.connect(self._on_final_image_ready)
        self._final: Path | None = None
        bridge.runStarted.connect(self._on_run_started)
        bridge.stageStarted.connect(self._on_stage_started)
        bridge.stepProgress.connect(self._on_step_progress)
        bridge.runCompleted.connect(self._on_run_completed)
        bridge.runFailed.connect(self._on_run_failed)
        bridge.runCancelled.connect(self._on_run_cancelled)

    def shutdown(self) -> None:
        """Stop decoding (the window is closing)."""
        self.loader.shutdown()

    def _on_run_started(self, event: RunStarted) -> None:
        self._final = None  # a final image still being decoded no longer shows
        self._t0 = time.monotonic()
        self.overall.setValue(0)
        self.stage.setValue(0)
        self.label.setText(f"Starting {len(event.plan)} stage(s): {', '.join(event.plan.names)}")
        self.timing.setText("")

    def _on_stage_started(self, event: StageStarted) -> None:
        self.stage.setValue(0)
        if event.stage == StageName.ADETAILER:
            self.preview.clear()  # the last denoising preview is not what ADetailer works on
        self.label.setText(f"stage {event.index + 1}/{event.total_stages} {event.stage}")

    def _on_step_progress(self, event: StepProgress) -> None:
        name = event.label or str(event.stage)
        self.label.setText(
            f"stage {event.index + 1}/{event.total_stages} {name}: step {event.step}/{event.total_steps}"
        )
        self.stage.setRange(0, max(event.total_steps, 1))
        self.stage.setValue(event.step)
        self.overall.setValue(int(event.fraction * 1000))
        elapsed = time.monotonic() - self._t0
        eta = elapsed * (1 - event.fraction) / event.fraction if event.fraction > 0 else 0.0
        self.timing.setText(f"elapsed {_duration(elapsed)}, ETA {_duration(eta)}")
        now = time.monotonic()
        if event.preview is not None and now - self._last_preview >= PREVIEW_INTERVAL_S:
            self._last_preview = now
            self.show_image(event.preview)
            self.preview_count += 1

    def show_image(self, image: Image.Image | QPixmap) -> None:
        """Show ``image`` scaled into the preview area."""
        pixmap = image if isinstance(image, QPixmap) else QPixmap.fromImage(pil_to_qimage(image))
        size = self.preview.size()
        self.preview.setPixmap(
            pixmap.scaled(
                size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            )
        )

    def _finish(self, text: str) -> None:
        elapsed = time.monotonic() - self._t0
        self.label.setText(text)
        self.timing.setText(f"took {_duration(elapsed)}")

    def _on_run_completed(self, event: RunCompleted) -> None:
        self.overall.setValue(1000)
        self.stage.setValue(self.stage.maximum())
        self._finish(f"Done: {len(event.image_paths)} image(s) in {event.output_dir}")
        if event.image_paths:
            self._final = event.image_paths[-1]
            size = self.preview.size()
            self.loader.request(self._final, max(size.width(), size.height(), PREVIEW_SIZE))

    def _on_final_image_ready(self, path: Path, _size: int, image: QImage) -> None:
        if path == self._final and not image.isNull():
            self.show_image(QPixmap.fromImage(image))

    def _on_run_failed(self, event: RunFailed) -> None:
        self._final = None
        self.preview.clear()  # a stale preview under the error read as a result (issue 17, item 10)
        self._finish(f"Error: {message_in_user_words(event.message)}")  # labels, not config paths

    def _on_run_cancelled(self, event: RunCancelled) -> None:
        self._finish("Cancelled" + (f" during {event.stage}" if event.stage else ""))
