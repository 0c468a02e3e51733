"""``queue add`` with --sweep, --pack, --wildcards and --styles, and ``queue group``: the jobs and
groups they queue (through ``cli.main`` and the real queue file), and their one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stablenew_qt.cli import main
from stablenew_qt.core.queue import GroupKind, JobQueue, JobStatus

S = JobStatus


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.json"
    data = {"prompt": "a lighthouse", "negative_prompt": "blurry", "seed": 40, "txt2img": {"steps": 2}}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _q(queue_path: Path, *args: str) -> list[str]:
    return ["queue", *args, "--queue", str(queue_path)]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_add_a_sweep_queues_its_cells_as_one_group(
    queue_path: Path, config_file: Path, tmp_path: Path, capsys
) -> None:
    sweep = _write(
        tmp_path / "sweep.json",
        json.dumps(
            {"x": {"type": "CFG Scale", "values": "4-8 (+2)"}, "y": {"type": "Steps", "values": "1, 2"}}
        ),
    )
    assert main(_q(queue_path, "add", str(config_file), "--sweep", str(sweep))) == 0
    captured = capsys.readouterr()
    ids = [int(line) for line in captured.out.split()]
    assert len(ids) == 6 and "group 1: sweep 3x2: CFG Scale × Steps, 6 job(s)" in captured.err
    with JobQueue(queue_path) as queue:
        [group] = queue.groups()
        jobs = queue.group_jobs(group.id)
        assert group.kind is GroupKind.SWEEP and group.plan is not None
        assert [(j.config.txt2img.cfg_scale, j.config.txt2img.steps) for j in jobs] == [
            (4.0, 1),
            (6.0, 1),
            (8.0, 1),
            (4.0, 2),
            (6.0, 2),
            (8.0, 2),
        ]
        assert {j.config.seed for j in jobs} == {40}
    assert main(_q(queue_path, "list")) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:4] == ["ID", "STATUS", "TRIES", "GROUP"]
    assert all(row.split()[3] == "1" for row in rows[1:])
    assert main(_q(queue_path, "list", "--json", "--group", "1")) == 0
    data = json.loads(capsys.readouterr().out)
    assert [j["group"] for j in data["jobs"]] == [1] * 6 and data["groups"][0]["kind"] == "sweep"


def test_checkpoint_names_in_a_sweep_match_the_installed_models_as_a1111_matches_them(
    queue_path: Path, config_file: Path, tmp_path: Path, capsys
) -> None:
    models = tmp_path / "models"
    (models / "Stable-diffusion").mkdir(parents=True)
    (models / "Stable-diffusion" / "dreamshaper_8.safetensors").write_bytes(b"\0" * 16)
    sweep = _write(
        tmp_path / "sweep.json",
        json.dumps({"x": {"type": "Checkpoint name", "values": "tiny-sd15, dreamshaper"}}),
    )
    command = [*_q(queue_path, "add", str(config_file), "--sweep", str(sweep)), "--models-dir", str(models)]
    assert main(command) == 0
    capsys.readouterr()
    with JobQueue(queue_path) as queue:
        [group] = queue.groups()
        names = [j.config.txt2img.model for j in queue.group_jobs(group.id)]
    assert names == ["demo-tiny-sd15", "dreamshaper_8"], "partial names, as A1111 finds them"
    _write(sweep, json.dumps({"x": {"type": "Checkpoint name", "values": "juggernaut"}}))
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "sweep.json: X axis 'Checkpoint name'" in err and "juggernaut" in err, err
    with JobQueue(queue_path) as queue:
        assert len(queue.groups()) == 1, "nothing queued for the unknown name"


def test_a_bad_sweep_file_is_exit_2_naming_the_file_and_field(
    queue_path: Path, config_file: Path, tmp_path: Path, capsys
) -> None:
    sweep = _write(tmp_path / "sweep.json", json.dumps({"x": {"type": "CFG Scale", "values": "4, 50"}}))
    assert main(_q(queue_path, "add", str(config_file), "--sweep", str(sweep))) == 2
    err = capsys.readouterr().err
    assert "sweep.json: X axis 'CFG Scale'" in err and "must be at most 30" in err and "Traceback" not in err
    _write(sweep, json.dumps({"x": {"type": "CFG Scal", "values": "4"}}))
    assert main(_q(queue_path, "add", str(config_file), "--sweep", str(sweep))) == 2
    assert "sweep.json: " in capsys.readouterr().err
    assert main(_q(queue_path, "add", str(config_file), "--sweep", str(tmp_path / "none.json"))) == 2
    assert "does not exist" in capsys.readouterr().err
    with JobQueue(queue_path) as queue:
        assert queue.list() == [] and queue.groups() == [], "nothing queued"


def test_add_a_prompt_pack_with_styles(queue_path: Path, config_file: Path, tmp_path: Path, capsys) -> None:
    pack = _write(tmp_path / "prompts.txt", "# two\na castle --neg fog\na ship\n")
    install = tmp_path / "a1111"
    (install / "models").mkdir(parents=True)
    _write(install / "styles.csv", 'name,prompt,negative_prompt\nFilm,"{prompt}, film grain",lowres\n')
    args = [
        "add",
        str(config_file),
        "--pack",
        str(pack),
        "--styles",
        "Film",
        "--models-dir",
        str(install / "models"),
    ]
    assert main(_q(queue_path, *args)) == 0
    assert len(capsys.readouterr().out.split()) == 2
    with JobQueue(queue_path) as queue:
        [group] = queue.groups()
        prompts = [(j.config.prompt, j.config.negative_prompt) for j in queue.group_jobs(group.id)]
    assert group.kind is GroupKind.PACK
    assert prompts == [("a castle, film grain", "fog, lowres"), ("a ship, film grain", "blurry, lowres")]
    args[5] = "Nope"
    assert main(_q(queue_path, *args)) == 2
    assert "--styles: " in capsys.readouterr().err


def test_styles_alone_queue_a_plain_job(queue_path: Path, config_file: Path, tmp_path: Path, capsys) -> None:
    models = tmp_path / "install" / "models"
    models.mkdir(parents=True)
    _write(models.parent / "styles.csv", "name,prompt,negative_prompt\nOil,oil painting,\n")
    assert (
        main(
            _q(
                queue_path,
                "add",
                str(config_file),
                "--styles",
                "Oil",
                "--models-dir",
                str(models),
                "--count",
                "2",
            )
        )
        == 0
    )
    with JobQueue(queue_path) as queue:
        jobs = queue.list()
        assert queue.groups() == []
    assert [(j.config.prompt, j.config.seed, j.group_id) for j in jobs] == [
        ("a lighthouse, oil painting", 40, None),
        ("a lighthouse, oil painting", 41, None),
    ]


def test_add_with_wildcards_random_and_combinatorial(
    queue_path: Path, config_file: Path, tmp_path: Path, capsys
) -> None:
    folder = tmp_path / "wildcards"
    folder.mkdir()
    _write(folder / "colour.txt", "red\nblue\n# not a value\n")
    data = json.loads(config_file.read_text(encoding="utf-8"))
    data["prompt"] = "a __colour__ {boat|car}"
    _write(config_file, json.dumps(data))
    assert main(_q(queue_path, "add", str(config_file), "--wildcards", str(folder), "--combinatorial")) == 0
    assert main(_q(queue_path, "add", str(config_file), "--wildcards", str(folder), "--count", "3")) == 0
    with JobQueue(queue_path) as queue:
        combos, randoms = queue.groups()
        every = [j.config for j in queue.group_jobs(combos.id)]
        drawn = [j.config for j in queue.group_jobs(randoms.id)]
    assert combos.kind is GroupKind.WILDCARDS and combos.meta["mode"] == "combinatorial"
    assert sorted(c.prompt for c in every) == ["a blue boat", "a blue car", "a red boat", "a red car"]
    assert [c.seed for c in every] == [40, 41, 42, 43]
    assert [c.seed for c in drawn] == [40, 41, 42] and all(c.prompt.startswith("a ") for c in drawn)
    assert randoms.meta["template"] == "a __colour__ {boat|car}"
    assert main(_q(queue_path, "add", str(config_file), "--wildcards", str(tmp_path / "nowhere"))) == 2
    assert main(_q(queue_path, "add", str(config_file), "--combinatorial")) == 2
    assert "--combinatorial needs --wildcards" in capsys.readouterr().err


def test_group_actions(queue_path: Path, config_file: Path, tmp_path: Path, capsys) -> None:
    pack = _write(tmp_path / "prompts.txt", "a\nb\nc\n")
    main(_q(queue_path, "add", str(config_file), "--pack", str(pack)))
    capsys.readouterr()
    assert main(_q(queue_path, "group", "pause", "1")) == 0
    with JobQueue(queue_path) as queue:
        assert queue.group(1).paused and queue.next_job() is None
    assert main(_q(queue_path, "group", "resume", "1")) == 0
    main(_q(queue_path, "add", str(config_file)))
    capsys.readouterr()
    assert main(_q(queue_path, "group", "bottom", "1")) == 0
    assert capsys.readouterr().err == "group 1: its queued jobs moved after every other queued job\n"
    with JobQueue(queue_path) as queue:
        assert [j.group_id for j in queue.list(status=[S.QUEUED])] == [None, 1, 1, 1]
    assert main(_q(queue_path, "group", "top", "1")) == 0
    assert main(_q(queue_path, "group", "top", "1")) == 0
    assert capsys.readouterr().err.endswith("group 1: already there\n")
    with JobQueue(queue_path) as queue:
        [single] = [j for j in queue.list() if j.group_id is None]
        queue.remove(single.id)
    assert main(_q(queue_path, "group", "list")) == 0
    assert "    1  pack             0/3  pack prompts.txt  grid: -" in capsys.readouterr().out
    assert main(_q(queue_path, "group", "cancel", "1")) == 0
    with JobQueue(queue_path) as queue:
        assert [j.status for j in queue.group_jobs(1)] == [S.CANCELLED] * 3
    assert main(_q(queue_path, "group", "remove", "1")) == 0
    assert main(_q(queue_path, "group", "cancel", "1")) == 1
    assert capsys.readouterr().err.endswith("error: there is no group 1 in the queue\n")
    assert main(_q(queue_path, "group", "pause")) == 2


def test_rate_a_job(queue_path: Path, config_file: Path, capsys) -> None:
    main(_q(queue_path, "add", str(config_file)))
    (job_id,) = capsys.readouterr().out.split()
    assert main(_q(queue_path, "rate", job_id, "5")) == 0
    assert capsys.readouterr().err == f"job {job_id} rated 5\n"
    with JobQueue(queue_path) as queue:
        assert queue.get(int(job_id)).rating == 5
    assert main(_q(queue_path, "rate", job_id, "0")) == 0
    with JobQueue(queue_path) as queue:
        assert queue.get(int(job_id)).rating is None
    with pytest.raises(SystemExit) as exited:
        main(_q(queue_path, "rate", job_id, "7"))
    assert exited.value.code == 2
    assert main(_q(queue_path, "rate", "99", "3")) == 1
