"""The wildcard template reaches each run's manifest.json (issue 15): ``queue add --wildcards``
queues expanded configs that keep the template (``prompt_template``), a real queue run on the
FakeExecutor writes it into the manifest, and the image's infotext records only the expanded
prompt. The window's editor never holds a template (an edited prompt must not claim one)."""

from __future__ import annotations

import json
from pathlib import Path

from stablenew_qt.cli import main
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.core.session import SessionOptions, open_session
from stablenew_qt.core.sweep import PromptExpander, expand_config

TEMPLATE = "a __colour__ {boat|car}"
NEGATIVE = "{blurry|grainy}"


def test_each_runs_manifest_keeps_the_template_its_prompt_was_expanded_from(tmp_path: Path) -> None:
    folder = tmp_path / "wildcards"
    folder.mkdir()
    (folder / "colour.txt").write_text("red\nblue\n", encoding="utf-8")
    config = tmp_path / "job.json"
    data = {"prompt": TEMPLATE, "negative_prompt": NEGATIVE, "seed": 40, "txt2img": {"steps": 2}}
    data["txt2img"].update(width=64, height=64)
    config.write_text(json.dumps(data), encoding="utf-8")
    queue_path = tmp_path / "queue.sqlite3"
    args = [
        "queue",
        "add",
        str(config),
        "--wildcards",
        str(folder),
        "--count",
        "3",
        "--queue",
        str(queue_path),
    ]
    assert main(args) == 0
    options = SessionOptions(OutputSettings(tmp_path / "runs"), queue_path=queue_path)
    with open_session(FakeExecutor(), options) as session:
        jobs = session.run_queue()
    assert len(jobs) == 3 and all(job.status is JobStatus.COMPLETED for job in jobs)
    with JobQueue(queue_path) as queue:
        (group,) = queue.groups()
    assert group.meta["template"] == TEMPLATE
    for job in jobs:
        (image,) = job.outputs
        manifest = json.loads((image.parent / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["config"]["prompt_template"] == TEMPLATE
        assert manifest["config"]["negative_prompt_template"] == NEGATIVE
        prompt = manifest["config"]["prompt"]
        assert prompt in {"a red boat", "a red car", "a blue boat", "a blue car"}
        parameters = read_image_metadata(image).parameters or ""
        assert parameters.startswith(prompt + "\n") and "__colour__" not in parameters
        assert "template" not in parameters.lower()


def test_a_prompt_without_wildcards_has_no_template() -> None:
    plain = RunConfig.from_dict({"prompt": "a red boat", "seed": 3})
    (expanded,) = expand_config(plain, PromptExpander(None))
    assert expanded.config.prompt_template is None and expanded.config == plain
