"""The real engine's failures reach the job's record as typed causes, through the session's road:
an untrusted detector names its file and SHA-256, a missing model says it is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import FailureKind
from stablenew_qt.core.job import JobStatus
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue
from stablenew_qt.core.session import SessionOptions, open_session
from stablenew_qt.engine.adetailer.detector import file_sha256
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings

DETECTOR = Path(__file__).parents[1] / "data" / "face_tiny.pt"


@pytest.fixture
def engine(demo_models: dict[str, Path], tmp_path: Path) -> DiffusersExecutor:
    models = tmp_path / "models"
    (models / "adetailer").mkdir(parents=True)
    shutil.copy(DETECTOR, models / "adetailer" / "face_tiny.pt")
    demo_root = next(iter(demo_models.values())).parent
    settings = EngineSettings(models, device="cpu", demo_dir=demo_root, trust_file=tmp_path / "trust.json")
    return DiffusersExecutor(settings)


def _config(**overrides: object) -> RunConfig:
    data = {
        "prompt": "portrait photo",
        "seed": 3,
        "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": 2},
        **overrides,
    }
    return RunConfig.from_dict(data)


@pytest.mark.slow
def test_an_untrusted_detector_and_a_missing_model_carry_their_cause_into_the_queue(
    engine: DiffusersExecutor, tmp_path: Path
) -> None:
    queue_file = tmp_path / "queue.sqlite3"
    options = SessionOptions(OutputSettings(tmp_path / "runs"), queue_path=queue_file)
    failed: list[ev.RunFailed] = []
    with open_session(engine, options) as session:
        session.subscribe(lambda event: failed.append(event) if isinstance(event, ev.RunFailed) else None)
        adetailer = {"enabled": True, "units": [{"adetailer_model": "face_tiny.pt"}]}
        untrusted = session.generate(_config(adetailer=adetailer))
        missing = session.generate(_config(txt2img={"model": "not-installed", "steps": 2}))
    detector = engine.context.models_dir / "adetailer" / "face_tiny.pt"
    assert untrusted.status is JobStatus.FAILED and untrusted.cause is not None
    assert (untrusted.cause.kind, untrusted.cause.stage) == (FailureKind.UNTRUSTED_DETECTOR, "adetailer")
    assert (untrusted.cause.path, untrusted.cause.sha256) == (detector, file_sha256(detector))
    assert missing.cause is not None and missing.cause.kind is FailureKind.MISSING_MODEL
    assert "not-installed" in missing.cause.message
    assert [event.cause for event in failed] == [untrusted.cause, missing.cause]
    with JobQueue(queue_file) as queue:  # what the History tab and the next start read back
        assert [job.cause for job in queue.list()] == [untrusted.cause, missing.cause]
    assert not (tmp_path / "runs").exists(), "failed jobs write nothing"
