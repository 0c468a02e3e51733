"""Dynamic prompts in the window (issue 15): with "Expand dynamic prompts" on, Generate and Add to
queue turn ``{a|b}`` and ``__name__`` into a WILDCARDS group (core's expand_dynamic, what
``queue add --wildcards`` uses) off the GUI thread; random prompts follow each image's seed,
combinatorial gives every combination, a missing wildcard queues nothing, off sends the text as
written; a prompt pack queues one group. Real JobQueue file, FakeExecutor engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stablenew_qt.core.infotext import read_image_metadata
from stablenew_qt.core.job_group import GroupKind
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.core.sweep import PromptExpander
from stablenew_qt.gui.dynamic_prompts import A1111_WILDCARDS
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.preferences import Preferences
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, small_txt2img


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


@pytest.fixture
def colours(tmp_path: Path) -> Path:
    folder = tmp_path / "my-wildcards"
    folder.mkdir()
    (folder / "colour.txt").write_text("# colours\nred\nblue\n\ngreen\n", encoding="utf-8")
    return folder


def window_with(qtbot: Any, make: MakeMainWindow, queue: JobQueue, prompt: str, count: int = 1) -> MainWindow:
    window = make(queue=queue)
    small_txt2img(qtbot, window, prompt)
    window.model.set("batch_count", count)
    assert window.model.error is None
    return window


def add_group(qtbot: Any, window: MainWindow) -> Any:
    with qtbot.waitSignal(window.dynamic_prompts.queued, timeout=RUN_TIMEOUT_MS) as queued:
        window.add_to_queue_button.click()
    return queued.args[0]


def test_a_variant_prompt_with_batch_count_4_queues_4_jobs_drawn_from_their_seeds(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = window_with(qtbot, make_main_window, queue, "{red|blue} fox", count=4)
    summary = window.dynamic_prompts.summary
    assert summary.isVisibleTo(window) and "4 prompts from {red|blue} (random" in summary.text()
    group = add_group(qtbot, window)
    assert group.kind is GroupKind.WILDCARDS and group.meta["template"] == "{red|blue} fox"
    assert group.meta["mode"] == "random" and "folder" not in group.meta  # no folder: variants only
    jobs = queue.group_jobs(group.id)
    assert [j.config.seed for j in jobs] == [1234, 1235, 1236, 1237]
    assert [j.config.batch_count for j in jobs] == [1] * 4
    assert [j.config.prompt for j in jobs] == PromptExpander().random(
        "{red|blue} fox", [1234, 1235, 1236, 1237]
    )
    assert all(j.config.prompt_template == "{red|blue} fox" for j in jobs)
    assert "Queued as group" in window.statusBar().currentMessage()
    assert window.model.config.prompt == "{red|blue} fox"  # the editor keeps the template


def test_generate_runs_the_group_and_each_png_records_its_expanded_prompt(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, colours: Path
) -> None:
    window = window_with(qtbot, make_main_window, queue, "a __colour__ boat", count=2)
    window.dynamic_prompts.set_folder(colours)
    assert window.prefs.wildcards_dir == colours  # kept for the next start
    with qtbot.waitSignal(window.dynamic_prompts.queued, timeout=RUN_TIMEOUT_MS) as queued:
        window.generate_button.click()
    group = queued.args[0]
    assert group.meta["folder"] == str(colours.resolve())
    done = lambda: all(j.status is JobStatus.COMPLETED for j in queue.group_jobs(group.id))  # noqa: E731
    qtbot.waitUntil(done, timeout=RUN_TIMEOUT_MS)
    for job in queue.group_jobs(group.id):
        (image,) = job.outputs
        manifest = json.loads((image.parent / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["config"]["prompt_template"] == "a __colour__ boat"
        assert job.config.prompt in {"a red boat", "a blue boat", "a green boat"}
        assert (read_image_metadata(image).parameters or "").startswith(job.config.prompt + "\n")


def test_combinatorial_gives_every_combination_at_most_the_limit(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, colours: Path
) -> None:
    window = window_with(qtbot, make_main_window, queue, "a __colour__ {boat|car}")
    window.dynamic_prompts.set_folder(colours)
    window.dynamic_prompts.mode.setCurrentText("Combinatorial")
    assert window.prefs.combinatorial_prompts
    group = add_group(qtbot, window)
    prompts = sorted(j.config.prompt for j in queue.group_jobs(group.id))
    assert prompts == sorted(f"a {c} {v}" for c in ("red", "blue", "green") for v in ("boat", "car"))
    assert group.meta["mode"] == "combinatorial"
    window.dynamic_prompts.most.setValue(4)
    assert "at most 4" in window.dynamic_prompts.summary.text()
    assert len(queue.group_jobs(add_group(qtbot, window).id)) == 4


def test_a_missing_wildcard_is_one_status_line_and_nothing_is_queued(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, colours: Path
) -> None:
    window = window_with(qtbot, make_main_window, queue, "a __color__ boat")
    window.dynamic_prompts.set_folder(colours)
    with qtbot.waitSignal(window.dynamic_prompts.refused, timeout=RUN_TIMEOUT_MS) as refused:
        window.generate_button.click()
    message = refused.args[0]
    assert (
        "\n" not in message and "no wildcard file for __color__" in message and "closest: colour" in message
    )
    assert window.statusBar().currentMessage() == message
    assert queue.groups() == [] and queue.list() == []


def test_the_a1111_extensions_folder_beside_the_models_is_found_by_itself(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = window_with(qtbot, make_main_window, queue, "__animal__")
    a1111 = window.prefs.models_dir.parent / A1111_WILDCARDS
    a1111.mkdir(parents=True)
    (a1111 / "animal.txt").write_text("owl\n", encoding="utf-8")
    group = add_group(qtbot, window)
    assert [j.config.prompt for j in queue.group_jobs(group.id)] == ["owl"]
    assert group.meta["folder"] == str(a1111.resolve())


def test_off_or_without_dynamic_syntax_a_prompt_goes_as_written(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = window_with(qtbot, make_main_window, queue, "{red|blue} fox")
    window.dynamic_prompts.enabled.setChecked(False)
    assert not window.prefs.expand_dynamic_prompts and not window.dynamic_prompts.summary.isVisibleTo(window)
    window.add_to_queue_button.click()
    qtbot.waitUntil(lambda: len(queue.list()) == 1, timeout=RUN_TIMEOUT_MS)
    (job,) = queue.list()
    assert job.config.prompt == "{red|blue} fox" and queue.groups() == []


def test_a_prompt_pack_file_is_queued_as_one_group_over_the_current_settings(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = window_with(qtbot, make_main_window, queue, "a lighthouse at dusk")
    pack = tmp_path / "prompts.txt"
    pack.write_text(
        "# my pack\na lighthouse, oil painting --neg blurry, lowres\n\na {red|blue} fox in snow\n",
        encoding="utf-8",
    )
    with qtbot.waitSignal(window.dynamic_prompts.queued, timeout=RUN_TIMEOUT_MS) as queued:
        window.dynamic_prompts.queue_pack(pack)  # what the file dialog's choice calls
    group = queued.args[0]
    assert group.kind is GroupKind.PACK and group.label == "pack prompts.txt"
    assert group.meta["source"] == str(pack.resolve())
    first, second = queue.group_jobs(group.id)
    assert (first.config.prompt, first.config.negative_prompt) == (
        "a lighthouse, oil painting",
        "blurry, lowres",
    )
    assert second.config.prompt == PromptExpander().random("a {red|blue} fox in snow", [1234])[0]
    assert second.config.prompt_template == "a {red|blue} fox in snow"
    assert {j.config.txt2img.steps for j in (first, second)} == {3}  # the editor's settings
    assert all(j.status is JobStatus.QUEUED for j in (first, second))  # queued, not run: like Add to queue


def test_a_bad_pack_is_refused_with_its_line_and_nothing_is_queued(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, tmp_path: Path
) -> None:
    window = window_with(qtbot, make_main_window, queue, "a lighthouse at dusk")
    pack = tmp_path / "prompts.json"
    pack.write_text('["a fox",\n 42]\n', encoding="utf-8")
    with qtbot.waitSignal(window.dynamic_prompts.refused, timeout=RUN_TIMEOUT_MS) as refused:
        window.dynamic_prompts.queue_pack(pack)
    assert refused.args[0].startswith("prompts.json: ") and "item 2 (line 2)" in refused.args[0]
    assert queue.groups() == [] and queue.list() == []


def test_a_double_underscore_that_expands_to_nothing_else_queues_one_plain_job(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = window_with(qtbot, make_main_window, queue, "<lora:my__style:0.8> a fox", count=3)
    assert window.dynamic_prompts.applies(window.model.config)  # the cheap test cannot tell
    window.add_to_queue_button.click()
    qtbot.waitUntil(lambda: len(queue.list()) == 1, timeout=RUN_TIMEOUT_MS)
    (job,) = queue.list()
    assert job.config.batch_count == 3 and job.config.prompt_template is None and queue.groups() == []


def test_bad_variant_syntax_is_refused_with_the_way_out(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = window_with(qtbot, make_main_window, queue, "a {red|blue fox")
    with qtbot.waitSignal(window.dynamic_prompts.refused, timeout=RUN_TIMEOUT_MS) as refused:
        window.add_to_queue_button.click()
    assert (
        "is not a valid dynamic prompt" in refused.args[0]
        and "turn off Expand dynamic prompts" in refused.args[0]
    )
    assert queue.list() == []


def test_the_options_and_the_folder_are_preferences(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue, colours: Path
) -> None:
    window = window_with(qtbot, make_main_window, queue, "a fox")
    section = window.dynamic_prompts
    assert section.enabled.isChecked() and section.mode.currentText() == "Random"  # the defaults
    assert not section.most.isEnabled()
    section.set_folder(colours)
    section.mode.setCurrentText("Combinatorial")
    section.most.setValue(7)
    section.enabled.setChecked(False)
    again = Preferences(window.prefs.qsettings, models_dir=window.prefs.models_dir, output_dir=colours)
    assert (again.wildcards_dir, again.combinatorial_prompts) == (colours, True)
    assert (again.max_combinations, again.expand_dynamic_prompts) == (7, False)
    section.set_folder(None)  # Automatic
    assert Preferences(window.prefs.qsettings, models_dir=colours, output_dir=colours).wildcards_dir is None
