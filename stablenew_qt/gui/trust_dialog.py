"""The ADetailer trust dialog: a run failed because a detector file is not trusted yet.

YOLO ``.pt`` detectors are Python pickles. The engine never unpickles them with Python (its restricted
loader builds only known layer objects and runs nothing from the file), and as a second gate it
refuses a detector until the user has trusted its exact bytes once. :class:`TrustOffer` listens for such a
failure, asks the user (file name and SHA-256), trusts the file through
:attr:`AppServices.trust_detector` and, when asked to, runs the failed job again.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QMessageBox, QWidget

from ..core.events import JobFinished
from ..core.job import JobStatus
from .bridge import EventBridge
from .services import AppServices, UntrustedDetector

log = logging.getLogger(__name__)


class TrustChoice(enum.Enum):
    """What the user answered."""

    CANCEL = "cancel"
    TRUST = "trust"
    TRUST_AND_RUN = "trust_and_run"


#: Shows the question and returns the answer (a test injects its own).
AskTrust = Callable[[QWidget, UntrustedDetector], TrustChoice]


def trust_question(detector: UntrustedDetector) -> str:
    """The dialog's text: what the risk is, which file, which bytes."""
    return (
        "This detector is a Python pickle. StableNew Qt loads it without running code from it, "
        "but check that it is the detector you meant to use.\n\n"
        f"Trust {detector.path.name} (sha256 {detector.sha256})?\n\n"
        f"File: {detector.path}\n"
        "A changed file must be trusted again."
    )


def ask_trust(parent: QWidget, detector: UntrustedDetector) -> TrustChoice:
    """Ask with a modal QMessageBox; Cancel is the default (and Esc)."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle("Trust this detector?")
    box.setText(trust_question(detector))
    run = box.addButton("Trust and run again", QMessageBox.ButtonRole.AcceptRole)
    trust = box.addButton("Trust", QMessageBox.ButtonRole.YesRole)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)
    box.setEscapeButton(cancel)
    box.exec()
    clicked = box.clickedButton()
    box.deleteLater()
    if clicked is run:
        return TrustChoice.TRUST_AND_RUN
    if clicked is trust:
        return TrustChoice.TRUST
    return TrustChoice.CANCEL


class TrustOffer(QObject):
    """Offers the trust dialog after a job fails on an untrusted detector.

    The failure's typed cause names the file and its SHA-256 (no message is parsed). ``rerun(job_id)``
    runs the failed job again, first in line, with the settings it was queued with. The dialog
    opens from the event loop, not inside the bridge's dispatch, so the rest of the failed job's
    events are handled first.
    """

    def __init__(
        self,
        services: AppServices,
        bridge: EventBridge,
        parent: QWidget,
        rerun: Callable[[int], None],
    ) -> None:
        super().__init__(parent)
        self.services = services
        self.ask: AskTrust = ask_trust
        self._parent = parent
        self._rerun = rerun
        bridge.jobFinished.connect(self._on_job_finished)

    def _on_job_finished(self, event: JobFinished) -> None:
        job = event.job
        detector = UntrustedDetector.of(job.cause) if job.status is JobStatus.FAILED else None
        if detector is not None:
            QTimer.singleShot(0, self, lambda: self.offer(detector, job.id))

    def offer(self, detector: UntrustedDetector, job_id: int | None = None) -> TrustChoice:
        """Ask about ``detector``; trust it and, when asked, run job ``job_id`` again. Returns the answer."""
        choice = self.ask(self._parent, detector)
        if choice is TrustChoice.CANCEL:
            return choice
        try:
            self.services.trust_detector(detector.path, detector.sha256)
        except OSError as exc:
            log.error("could not trust %s: %s", detector.path, exc)
            QMessageBox.warning(self._parent, "Could not trust the detector", str(exc))
            return TrustChoice.CANCEL
        log.info("trusted detector %s (SHA-256 %s)", detector.path, detector.sha256)
        if choice is TrustChoice.TRUST_AND_RUN and job_id is not None:
            self._rerun(job_id)
        return choice
