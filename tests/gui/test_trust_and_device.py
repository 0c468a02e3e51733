"""The ADetailer trust dialog and the status bar's device readout, through the real window
(FakeExecutor behind the real engine thread) and through the composition root's services. The
window recognises an untrusted detector by the failure's typed cause, never by its message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget
from pytestqt.qtbot import QtBot

from stablenew_qt import app
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import FailureCause, FailureKind, StageError
from stablenew_qt.core.executor import CancelToken, Engine, ProgressCallback, StagePayload, StageResult
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.lifecycle import LifecycleState
from stablenew_qt.core.options import MemoryMode
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.core.sequencer import StageExecution, StageName
from stablenew_qt.engine.adetailer.detector import DetectorTrust, UntrustedModelError, file_sha256
from stablenew_qt.engine.errors import MissingModelError, ModelError
from stablenew_qt.engine.executor import stage_error
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.services import UntrustedDetector
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, generate_and_wait
from stablenew_qt.gui.trust_dialog import TrustChoice, ask_trust, trust_question

ADETAILER_CONFIG = RunConfig.from_dict(
    {
        "prompt": "portrait photo",
        "seed": 7,
        "txt2img": {"model": "tiny-sd.safetensors", "width": 64, "height": 64, "steps": 2},
        "adetailer": {"enabled": True, "units": [{"adetailer_model": "face_yolov8n.pt"}]},
    }
)

MakeWindow = Callable[..., MainWindow]


@pytest.fixture
def detector(tmp_path: Path) -> Path:
    file = tmp_path / "models dir" / "adetailer" / "face_yolov8n.pt"
    file.parent.mkdir(parents=True)
    file.write_bytes(b"not really a pickle")
    return file


def untrusted(file: Path) -> StageError:
    """The stage error exactly as the engine raises it for an untrusted detector."""
    return stage_error("adetailer", UntrustedModelError(file, file_sha256(file)))


@pytest.fixture
def make_window(make_main_window: MakeMainWindow) -> MakeWindow:
    """``make_main_window`` over ``executor`` with an ADetailer config and AppServices fields replaced."""
    return lambda executor, **services: make_main_window(
        executor, config=ADETAILER_CONFIG, idle_delay_ms=50, **services
    )


class Asker:
    """Stands in for the QMessageBox: records the question and gives scripted answers."""

    def __init__(self, *answers: TrustChoice) -> None:
        self.answers = list(answers)
        self.asked: list[UntrustedDetector] = []

    def __call__(self, _parent: QWidget, detector: UntrustedDetector) -> TrustChoice:
        self.asked.append(detector)
        return self.answers.pop(0)


class UntrustingFake(FakeExecutor):
    """Refuses ADetailer, as the engine does, until ``trusted`` holds the detector's path."""

    def __init__(self, detector: Path) -> None:
        super().__init__()
        self.detector = detector
        self.trusted: set[Path] = set()

    def generate_images(
        self, stage: StageExecution, payload: StagePayload, progress: ProgressCallback, token: CancelToken
    ) -> StageResult:
        if stage.stage is StageName.ADETAILER and self.detector not in self.trusted:
            raise untrusted(self.detector)
        return super().generate_images(stage, payload, progress, token)


# -- the composition root's services (no Qt) ------------------------------------------------


def test_the_engine_s_errors_carry_their_kind_and_file(detector: Path) -> None:
    error = untrusted(detector)
    assert error.cause == FailureCause(
        FailureKind.UNTRUSTED_DETECTOR, str(error), "adetailer", detector, file_sha256(detector)
    )
    assert UntrustedDetector.of(error.cause) == UntrustedDetector(detector, file_sha256(detector))
    missing = stage_error("txt2img", MissingModelError("checkpoint 'x' not found", detector))
    assert (missing.kind, missing.path) == (FailureKind.MISSING_MODEL, detector)
    assert stage_error("txt2img", ModelError("VAE 'v' does not fit")).kind is FailureKind.STAGE


@pytest.mark.parametrize(
    "cause",
    [
        None,
        FailureCause(FailureKind.STAGE, "adetailer: detector face.pt is not trusted yet (SHA-256 123)"),
        FailureCause(FailureKind.OUT_OF_MEMORY, "txt2img: the GPU ran out of memory"),
        FailureCause(FailureKind.UNTRUSTED_DETECTOR, "no file named", "adetailer"),
    ],
)
def test_only_an_untrusted_detector_cause_names_a_detector(cause: FailureCause | None) -> None:
    assert UntrustedDetector.of(cause) is None


def test_trust_detector_trusts_only_the_bytes_the_user_saw(detector: Path, tmp_path: Path) -> None:
    trust_list = tmp_path / "trust.json"
    with pytest.raises(OSError, match="changed since"):
        app.trust_detector(detector, "0" * 64, trust_list)
    assert not DetectorTrust(trust_list).is_trusted(detector)
    app.trust_detector(detector, file_sha256(detector), trust_list)
    assert DetectorTrust(trust_list).is_trusted(detector)
    with pytest.raises(OSError, match="cannot read"):
        app.trust_detector(tmp_path / "missing.pt", "0" * 64, trust_list)


def test_the_device_summary_is_empty_until_the_engine_is_loaded(tmp_path: Path) -> None:
    engine = app.make_engine(tmp_path, MemoryMode.GPU)
    assert isinstance(engine, Engine), "the engine-info protocol: no isinstance check on the executor"
    assert engine.device_summary() == "" and FakeExecutor().device_summary() == ""


def test_trust_question_names_the_file_and_hash(detector: Path) -> None:
    text = trust_question(UntrustedDetector(detector, "f" * 64))
    assert "Python pickle. StableNew Qt loads it without running code from it" in text
    assert f"Trust face_yolov8n.pt (sha256 {'f' * 64})?" in text


# -- the window ---------------------------------------------------------------------------------


def test_untrusted_detector_failure_offers_the_dialog_and_trusts(
    qtbot: QtBot, make_window: MakeWindow, detector: Path
) -> None:
    fake = FakeExecutor().raise_at("adetailer", untrusted(detector))
    trusted: list[tuple[Path, str]] = []
    window = make_window(fake, trust_detector=lambda path, sha: trusted.append((path, sha)))
    ask = Asker(TrustChoice.TRUST)
    window.trust_offer.ask = ask

    generate_and_wait(qtbot, window, end="runFailed")
    qtbot.waitUntil(lambda: bool(trusted), timeout=RUN_TIMEOUT_MS)

    assert ask.asked == [UntrustedDetector(detector, file_sha256(detector))]
    assert trusted == [(detector, file_sha256(detector))]
    qtbot.waitUntil(lambda: window.host.state is LifecycleState.IDLE, timeout=RUN_TIMEOUT_MS)
    assert fake.stages_called == [StageName.TXT2IMG, StageName.ADETAILER]  # no run again unasked


def test_trust_and_run_again_completes_the_second_run(
    qtbot: QtBot, make_window: MakeWindow, detector: Path
) -> None:
    fake = UntrustingFake(detector)
    window = make_window(fake, trust_detector=lambda path, _sha: fake.trusted.add(path))
    window.trust_offer.ask = Asker(TrustChoice.TRUST_AND_RUN)

    with qtbot.waitSignal(window.bridge.runCompleted, timeout=RUN_TIMEOUT_MS):
        generate_and_wait(qtbot, window, end="runFailed")

    assert fake.trusted == {detector}
    [job] = window.session.queue.list()
    assert (job.status, job.attempts) == (JobStatus.COMPLETED, 2), "the failed job ran again"
    # the refused ADetailer call raised before FakeExecutor recorded it
    assert fake.stages_called == [StageName.TXT2IMG, StageName.TXT2IMG, StageName.ADETAILER]


def test_declining_trusts_nothing_and_other_errors_ask_nothing(
    qtbot: QtBot, make_window: MakeWindow, detector: Path
) -> None:
    fake = UntrustingFake(detector)
    trusted: list[Path] = []
    window = make_window(fake, trust_detector=lambda path, _sha: trusted.append(path))
    ask = Asker(TrustChoice.CANCEL)
    window.trust_offer.ask = ask
    generate_and_wait(qtbot, window, end="runFailed")
    qtbot.waitUntil(lambda: bool(ask.asked), timeout=RUN_TIMEOUT_MS)
    assert trusted == []

    other = make_window(FakeExecutor().fail_at("adetailer", "the detector file is corrupt"))
    other.trust_offer.ask = Asker()  # any question would fail: no answers
    generate_and_wait(qtbot, other, end="runFailed")
    qtbot.wait(50)
    qtbot.waitUntil(lambda: other.host.state is LifecycleState.IDLE, timeout=RUN_TIMEOUT_MS)


class DescribedFake(FakeExecutor):
    """Says how much memory it holds, one GiB more after every job, and on which thread it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked_on: list[str] = []

    def device_summary(self) -> str:
        self.asked_on.append(threading_name())
        return f"Fake GPU (float16), {len(self.calls)}.0 GiB in use"


def test_status_bar_shows_the_device_after_each_run(qtbot: QtBot, make_window: MakeWindow) -> None:
    fake = DescribedFake()
    window = make_window(fake)
    label = window.device_label
    assert window.statusBar().findChild(type(label), "status.device") is label

    generate_and_wait(qtbot, window)
    qtbot.waitUntil(lambda: label.text() == "Fake GPU (float16), 2.0 GiB in use", timeout=RUN_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.host.state is LifecycleState.IDLE, timeout=RUN_TIMEOUT_MS)
    generate_and_wait(qtbot, window)
    qtbot.waitUntil(lambda: label.text() == "Fake GPU (float16), 4.0 GiB in use", timeout=RUN_TIMEOUT_MS)
    assert fake.asked_on == ["engine", "engine"]  # only ever asked on the engine thread


def threading_name() -> str:
    from PySide6.QtCore import QThread

    return QThread.currentThread().objectName()


@pytest.mark.parametrize(
    ("button", "choice"),
    [
        ("Trust and run again", TrustChoice.TRUST_AND_RUN),
        ("Trust", TrustChoice.TRUST),
        ("Cancel", TrustChoice.CANCEL),
    ],
)
def test_ask_trust_maps_the_buttons(
    qtbot: QtBot, monkeypatch: pytest.MonkeyPatch, detector: Path, button: str, choice: TrustChoice
) -> None:
    from PySide6.QtWidgets import QMessageBox

    shown: list[str] = []

    def click(box: QMessageBox) -> int:
        shown.append(box.text())
        assert box.defaultButton() is box.escapeButton()  # Cancel is the safe default
        next(b for b in box.buttons() if b.text().replace("&", "") == button).click()
        return 0

    monkeypatch.setattr(QMessageBox, "exec", click)
    parent = QWidget()
    qtbot.addWidget(parent)
    assert ask_trust(parent, UntrustedDetector(detector, "a" * 64)) is choice
    assert shown and "face_yolov8n.pt" in shown[0]


def test_trust_and_run_again_retries_the_queued_job_that_failed(
    qtbot: QtBot, make_main_window: MakeMainWindow, detector: Path, tmp_path: Path
) -> None:
    fake = UntrustingFake(detector)
    with JobQueue(tmp_path / "queue.sqlite3") as queue:
        window = make_main_window(
            fake,
            config=ADETAILER_CONFIG,
            idle_delay_ms=50,
            queue=queue,
            trust_detector=lambda path, _sha: fake.trusted.add(path),
        )
        window.trust_offer.ask = Asker(TrustChoice.TRUST_AND_RUN)
        job = queue.add(ADETAILER_CONFIG.model_copy(update={"prompt": "the queued job's own prompt"}))[0]
        window.model.set("prompt", "what the editor shows now")
        window.host.run_queue()
        qtbot.waitUntil(lambda: queue.get(job.id).status is JobStatus.COMPLETED, timeout=RUN_TIMEOUT_MS)
        done = queue.get(job.id)
        assert done.attempts == 2 and fake.trusted == {detector}
        assert [call.payload.prompt for call in fake.calls][-1] == "the queued job's own prompt"
        assert [job.id for job in queue.list()] == [done.id], "retried, not queued again as a new job"
        window.close()
