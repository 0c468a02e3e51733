"""The Sweep tab (issue 15): a live count of images as the axes are typed, parse errors on the
field in A1111's syntax, an estimate from the last run's speed, a warning that must be confirmed
above the threshold, Queue sweep adding one group in load-once order (through core's
sweep_jobs, as the CLI), and sweep.json saved and loaded in the ``queue add --sweep`` format.
Real JobQueue file, FakeExecutor engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtWidgets import QMessageBox

from stablenew_qt.core.fake_executor import FakeExecutor
from stablenew_qt.core.job_group import GroupKind
from stablenew_qt.core.queue import JobQueue, JobStatus
from stablenew_qt.core.sweep import AxisSpec, SweepSpec
from stablenew_qt.core.sweep.estimate import config_steps
from stablenew_qt.gui.main_window import MainWindow
from stablenew_qt.gui.sweep_panel import WARN_IMAGES, SweepPanel
from stablenew_qt.gui.testing import RUN_TIMEOUT_MS, MakeMainWindow, generate_and_wait, small_txt2img


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[JobQueue]:
    with JobQueue(tmp_path / "queue.sqlite3") as opened:
        yield opened


def sweep_tab(qtbot: Any, window: MainWindow) -> SweepPanel:
    small_txt2img(qtbot, window)
    panel = window.sweep_panel
    window.tabs.setCurrentWidget(panel)
    return panel


def set_axis(panel: SweepPanel, name: str, type_: str, values: str) -> None:
    row = {r.name: r for r in panel.rows}[name]
    row.type.setCurrentText(type_)
    assert row.type.currentText() == type_, f"{type_!r} is not offered"
    row.values.clear()
    row.values.insert(values)  # as typed: textChanged on the way


def wait_checked(qtbot: Any, panel: SweepPanel) -> None:
    checked = lambda: panel.checked is not None or not panel.error_label.isHidden()  # noqa: E731
    qtbot.waitUntil(checked, timeout=RUN_TIMEOUT_MS)


def test_live_count_and_a_parse_error_per_syntax_form(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    panel = sweep_tab(qtbot, window)
    x_error = window.findChild(object, "sweep.x.error")
    assert panel.count_label.text() == "no axes = 1 cell × batch 1 = 1 image"
    for values, count in (
        ("1-5", 5),
        ("1-10 (+2)", 5),
        ("1-10 [5]", 5),
        ("5-1", 5),
        ("10, 20, 30", 3),
        ("20\n25", 2),
    ):
        set_axis(panel, "x", "Steps", values)
        assert panel.count_label.text() == f"X {count} = {count} cells × batch 1 = {count} images", values
        assert not x_error.isVisible()
    for values, words in (
        ("1-10 (0)", "0"),
        ("abc", "abc"),
        ("1-10 [2.5]", "2.5"),
        ("", "type the values"),
        ('"1, 2', ""),
    ):
        set_axis(panel, "x", "Steps", values)
        assert x_error.isVisible() and words in x_error.text(), (values, x_error.text())
        assert panel.count_label.text().startswith("Count: fix the values"), values
        assert not x_error.text().startswith("X axis"), "the field says it; the message need not"
    set_axis(panel, "x", "CFG Scale", "4-8 (+2)")
    set_axis(panel, "y", "Sampler", 'Euler, "DPM++ 2M"')
    window.model.set("batch_size", 2)
    assert panel.count_label.text() == "X 3 × Y 2 = 6 cells × batch 2 = 12 images"
    set_axis(panel, "z", "Sampler", "No such sampler")  # parses; the whole-sweep check names it
    wait_checked(qtbot, panel)
    assert "No such sampler" in panel.error_label.text() and "Valid" in panel.error_label.text()
    panel.matrix.setChecked(True)
    window.model.set("prompt", "a cat|hat|scarf")
    assert panel.count_label.text() == "Prompt matrix: 2 parts after the first = 4 images"


def test_names_button_offers_installed_checkpoints_and_appends_them_quoted(
    qtbot: Any, make_main_window: MakeMainWindow
) -> None:
    window = make_main_window()
    panel = sweep_tab(qtbot, window)
    x = panel.rows[0]
    set_axis(panel, "x", "CFG Scale", "4")
    assert x.names_button.isHidden(), "CFG takes numbers, not names"
    set_axis(panel, "x", "Checkpoint name", "")
    assert not x.names_button.isHidden()
    x.names_menu.aboutToShow.emit()
    offered = [a.text() for a in x.names_menu.actions()]
    assert offered == list(window.choices.checkpoints)
    x.names_menu.actions()[1].trigger()
    x.add_name("odd, name")
    assert x.values.text() == 'demo-tiny-sdxl, "odd, name"'
    assert x.count == 2


def test_estimate_comes_from_the_last_runs_speed(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window(FakeExecutor(step_delay=0.01))
    panel = sweep_tab(qtbot, window)
    set_axis(panel, "x", "Steps", "3, 6")
    wait_checked(qtbot, panel)
    assert panel.estimate_label.text().startswith("Estimated time: no estimate yet")
    assert panel.estimated_seconds() is None
    generate_and_wait(qtbot, window)  # 3 steps of one image
    rate = panel.speed.seconds_per_step
    assert rate is not None and 0.005 < rate < 1.0, rate
    assert panel.estimated_seconds() == pytest.approx((3 + 6) * rate)
    assert "s per step" in panel.estimate_label.text() and "about" in panel.estimate_label.text()
    set_axis(panel, "y", "Hires steps", "5")  # hires fix is off: the check says so, no estimate
    wait_checked(qtbot, panel)
    assert "has no effect: hires fix is off (Hires fix)" in panel.error_label.text(), "in the window's words"
    assert panel.estimate_label.text() == "Estimated time: fix the sweep first"
    set_axis(panel, "y", "Nothing", "")
    window.model.set("batch_size", 3)  # three images a cell: three times the time
    wait_checked(qtbot, panel)
    qtbot.waitUntil(lambda: panel.estimated_seconds() is not None, timeout=RUN_TIMEOUT_MS)
    assert panel.estimated_seconds() == pytest.approx(3 * (3 + 6) * rate)


def test_a_large_sweep_is_queued_only_once_confirmed(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    panel = sweep_tab(qtbot, window)
    set_axis(panel, "x", "Seed", "1-51")
    set_axis(panel, "y", "CFG Scale", "4, 5")
    wait_checked(qtbot, panel)
    assert panel.checked is not None and panel.checked.images == 102 > WARN_IMAGES
    assert panel.warning_label.isVisible() and "102 images" in panel.warning_label.text()
    panel.queue_button.click()
    qtbot.waitUntil(lambda: panel.confirm_box is not None, timeout=RUN_TIMEOUT_MS)
    assert queue.groups() == [], "nothing is queued before the answer"
    box = panel.confirm_box
    assert box is not None
    box.button(QMessageBox.StandardButton.No).click()
    qtbot.wait(100)
    assert queue.groups() == [] and panel.queue_button.isEnabled()
    panel.queue_button.click()
    qtbot.waitUntil(lambda: panel.confirm_box is not None, timeout=RUN_TIMEOUT_MS)
    with qtbot.waitSignal(panel.queued, timeout=RUN_TIMEOUT_MS):
        panel.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    (group,) = queue.groups()
    assert len(queue.group_jobs(group.id)) == 102


def test_queue_sweep_adds_one_group_in_load_once_order(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    panel = sweep_tab(qtbot, window)
    set_axis(panel, "x", "CFG Scale", "4, 6, 8")
    set_axis(panel, "y", "Checkpoint name", "tiny-sd, demo-tiny-sdxl")  # matched like A1111
    panel.options.boxes["keep_random_seeds"].setChecked(False)
    assert not panel.warning_label.isVisible()
    with qtbot.waitSignal(panel.queued, timeout=RUN_TIMEOUT_MS) as queued:
        panel.queue_button.click()
    (group,) = queue.groups()
    assert queued.args[0].id == group.id and group.kind is GroupKind.SWEEP
    assert group.label == "sweep 3x2: CFG Scale × Checkpoint name"
    run_order = queue.list(status=JobStatus.QUEUED)
    assert [j.config.txt2img.model for j in run_order] == ["tiny-sd.safetensors"] * 3 + ["demo-tiny-sdxl"] * 3
    assert [j.config.txt2img.cfg_scale for j in run_order] == [4.0, 6.0, 8.0] * 2
    assert len({j.config.seed for j in run_order}) == 1 and run_order[0].config.seed == 1234
    assert group.plan is not None and group.plan.y.resolved == ("tiny-sd.safetensors", "demo-tiny-sdxl")
    assert group.meta["base"]["prompt"] == window.model.config.prompt
    assert "Sweep queued as group" in window.statusBar().currentMessage()


def test_sweep_json_round_trip_in_the_cli_format(
    qtbot: Any, make_main_window: MakeMainWindow, tmp_path: Path
) -> None:
    window = make_main_window()
    panel = sweep_tab(qtbot, window)
    hand_written = tmp_path / "hand.json"
    hand_written.write_text(
        json.dumps(
            {
                "x": {"type": "cfg scale", "values": "4-8 (+2)"},
                "y": {"type": "Sampler", "values": ["Euler", "DPM++ 2M"]},
                "vary_seeds_x": True,
                "margin_size": 8,
                "include_sub_grids": True,
            }
        )
    )
    with qtbot.waitCallback(timeout=RUN_TIMEOUT_MS) as loaded:
        panel.load_from(hand_written, loaded)
    assert panel.rows[0].type.currentText() == "CFG Scale" and panel.rows[0].values.text() == "4-8 (+2)"
    assert panel.rows[1].values.text() == "Euler,DPM++ 2M"
    assert panel.options.boxes["include_sub_grids"].isChecked() and panel.count_label.text().startswith(
        "X 3 × Y 2 = 6 cells"
    )
    saved = tmp_path / "saved.json"
    with qtbot.waitCallback(timeout=RUN_TIMEOUT_MS) as written:
        panel.save_to(saved, written)
    spec = SweepSpec.from_json(saved.read_bytes())  # what `queue add --sweep` reads
    assert spec == panel.spec()
    assert spec.vary_seeds_x and panel.options.boxes["vary_seeds_x"].isChecked()
    assert spec.margin_size == 8, "options without a widget survive"
    assert json.loads(saved.read_text())["x"] == {"type": "CFG Scale", "values": "4-8 (+2)"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": {"type": "CFG Scael"}}')
    panel.load_from(bad)
    qtbot.waitUntil(panel.error_label.isVisible, timeout=RUN_TIMEOUT_MS)
    assert panel.error_label.text().startswith("bad.json: ") and "CFG Scale" in panel.error_label.text()
    assert "\n" not in panel.error_label.text() and "Traceback" not in panel.error_label.text()
    assert panel.rows[0].values.text() == "4-8 (+2)", "a bad file changes nothing"


def test_config_steps_counts_what_the_estimate_multiplies(make_main_window: MakeMainWindow) -> None:
    config = make_main_window().model.config
    hires = config.model_copy(update={"txt2img": config.txt2img.model_copy(update={"hires_enabled": True})})
    assert config_steps(hires) == 2 * config.txt2img.steps


def test_queue_sweep_in_prompt_matrix_mode_queues_every_combination(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    panel = sweep_tab(qtbot, window)
    set_axis(panel, "x", "CFG Scale", "4, 6")  # left out: a matrix has no axes
    window.model.set("prompt", "a cat|hat|scarf")
    panel.matrix.setChecked(True)
    assert not panel.rows[0].isEnabled()
    assert panel.spec().x == AxisSpec() and panel.spec().prompt_matrix is not None
    with qtbot.waitSignal(panel.queued, timeout=RUN_TIMEOUT_MS):
        panel.queue_button.click()
    (group,) = queue.groups()
    prompts = [job.config.prompt for job in queue.group_jobs(group.id)]
    assert prompts == ["a cat", "a cat, hat", "a cat, scarf", "a cat, hat, scarf"]
    assert group.label == "prompt matrix of 4"


def test_the_editor_drops_a_wildcard_template_when_it_shows_a_config(
    make_main_window: MakeMainWindow,
) -> None:
    window = make_main_window()
    expanded = window.model.config.model_copy(
        update={
            "prompt": "a red boat",
            "prompt_template": "a __colour__ boat",
            "negative_prompt_template": "",
        }
    )
    window.apply_config(expanded)  # "use these settings" of a wildcard job
    assert window.model.config.prompt == "a red boat"
    assert (
        window.model.config.prompt_template is None and window.model.config.negative_prompt_template is None
    )


def test_a_queued_sweep_runs_from_the_queue_tab_and_its_grid_is_written(
    qtbot: Any, make_main_window: MakeMainWindow, queue: JobQueue
) -> None:
    window = make_main_window(queue=queue)
    panel = sweep_tab(qtbot, window)
    set_axis(panel, "x", "CFG Scale", "4, 6")
    with qtbot.waitSignal(panel.queued, timeout=RUN_TIMEOUT_MS):
        panel.queue_button.click()
    with qtbot.waitSignal(window.bridge.groupFinished, timeout=RUN_TIMEOUT_MS) as finished:
        window.queue_panel.run_button.click()
    group = finished.args[0].group
    (grid,) = group.grid_paths
    assert grid.is_file() and grid.name.startswith("xyz_grid-")
    assert [j.status for j in queue.group_jobs(group.id)] == [JobStatus.COMPLETED] * 2


def test_a_long_estimate_warns_too_even_with_few_images(qtbot: Any, make_main_window: MakeMainWindow) -> None:
    window = make_main_window()
    panel = sweep_tab(qtbot, window)
    set_axis(panel, "x", "CFG Scale", "4, 6")  # 2 images of 3 steps
    wait_checked(qtbot, panel)
    assert not panel.warning_label.isVisible()
    panel.speed.meter.record(600.0, 1)  # as if the last run took ten minutes a step
    panel.speed.changed.emit()
    assert panel.estimated_seconds() == pytest.approx(3600.0)
    assert panel.warning_label.isVisible() and "2 images (about 1 h 0 min)" in panel.warning_label.text()
