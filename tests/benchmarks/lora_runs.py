"""Benchmark (not a test): txt2img with two LoRAs through the runner vs the same LoRAs applied by hand.

The two rank-4 LoRAs of ``lora_apply.py`` (every linear/conv layer of the demo SD 1.5). Times, median
of ``--repeats`` (the first run of each path is reported on its own):

- ``check_ms``: ``DiffusersExecutor.check_run`` (catalog rescan, tag check, checkpoint family);
- ``first_load_ms`` / ``weight_change_ms``: ``activate_for_prompt`` (what a stage calls) on a
  resident pipeline: both files read and loaded / the same LoRAs with other multipliers;
- ``first_run_s``: the first runner run with ``<lora:first:0.8> <lora:second:0.5>`` (checkpoint
  load, two file reads, two peft adapters);
- ``runner_s``: later runner runs, the weights changing each time (no file read, no reload);
- ``by_hand_s``: runner runs of the untagged prompt on a second engine whose pipeline got the same
  LoRAs from a ``LoraManager`` the run does not know about;
- ``ratio``: runner / by hand: what the extra-network wiring adds to a run.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/lora_runs.py [--repeats 3] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "engine" / "lora"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    from lora_apply import _write_loras

    from stablenew_qt.core.config import RunConfig
    from stablenew_qt.core.executor import CancelToken
    from stablenew_qt.core.outputs import OutputSettings
    from stablenew_qt.core.runner import PipelineRunner
    from stablenew_qt.engine.demo import DEMO_MODELS, ensure_demo_model
    from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings
    from stablenew_qt.engine.lora import LoraActivation, LoraManager

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = root / "models"
        (models / "Lora").mkdir(parents=True)
        demo = ensure_demo_model(next(n for n in DEMO_MODELS if "sd15" in n))
        settings = EngineSettings(models_dir=models, demo_dir=demo.parent)
        engine, by_hand = DiffusersExecutor(settings), DiffusersExecutor(settings)
        _write_loras(by_hand.context.cache.base("demo-tiny-sd15").pipe, models)

        def run(executor: DiffusersExecutor, prompt: str) -> float:
            config = RunConfig.from_dict(
                {
                    "prompt": prompt,
                    "seed": 1,
                    "txt2img": {"model": "demo-tiny-sd15", "width": 64, "height": 64, "steps": args.steps},
                }
            )
            started = time.perf_counter()
            result = PipelineRunner(executor, OutputSettings(root / "runs")).run(config, CancelToken())
            assert result.status == "COMPLETED", result.error
            return time.perf_counter() - started

        tagged = "a lighthouse <lora:first:{a}> <lora:second:{b}>"
        config = RunConfig.from_dict(
            {"prompt": tagged.format(a=0.8, b=0.5), "txt2img": {"model": "demo-tiny-sd15"}}
        )
        check_ms = statistics.median(_ms(lambda: engine.check_run(config)) for _ in range(args.repeats))
        first_run_s = run(engine, tagged.format(a=0.8, b=0.5))
        loaded = by_hand.context.cache.base("demo-tiny-sd15")
        catalog = by_hand.context.extra_networks.catalog
        LoraManager(loaded.pipe, loaded.family).apply(
            [
                LoraActivation(catalog.resolve_lora("first"), 0.8, 0.8),
                LoraActivation(catalog.resolve_lora("second"), 0.5, 0.5),
            ]
        )
        run(by_hand, "a lighthouse  ")
        runner, hand = [], []
        for i in range(args.repeats):
            runner.append(run(engine, tagged.format(a=0.8 if i % 2 else 0.6, b=0.5)))
            hand.append(run(by_hand, "a lighthouse  "))
        from stablenew_qt.engine.extra_networks_run import activate_for_prompt

        fresh = DiffusersExecutor(settings)
        fresh_model = fresh.context.cache.base("demo-tiny-sd15")
        first_load_ms = _ms(
            lambda: activate_for_prompt(fresh.context, fresh_model, tagged.format(a=0.8, b=0.5))
        )
        weight_ms = statistics.median(
            _ms(lambda i=i: activate_for_prompt(fresh.context, fresh_model, tagged.format(a=0.1 * i, b=0.5)))
            for i in range(1, args.repeats + 1)
        )
        manager = engine.context.extra_networks.manager(engine.context.cache.base("demo-tiny-sd15"))
        report: dict[str, Any] = {
            "check_ms": round(check_ms, 2),
            "first_load_ms": round(first_load_ms, 1),
            "weight_change_ms": round(weight_ms, 2),
            "first_run_s": round(first_run_s, 3),
            "runner_s": round(statistics.median(runner), 3),
            "by_hand_s": round(statistics.median(hand), 3),
            "ratio": round(statistics.median(runner) / statistics.median(hand), 3),
            "file_reads": manager.file_reads,
            "checkpoint_loads": engine.context.cache.loads,
            "steps": args.steps,
        }
        print(json.dumps(report, indent=2))


def _ms(action: Any) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


if __name__ == "__main__":
    main()
