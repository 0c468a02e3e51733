"""Benchmark (not a test): LoRA loading, weight changes and txt2img with two LoRAs on the demo SD 1.5.

Two random kohya LoRAs (rank 4) patch every linear and convolution layer of the demo UNet and
text encoder. Times, median of ``--repeats``:

- ``import_peft_s``: the first ``import peft`` (diffusers' LoRA backend) in this process;
- ``first_load_ms``: ``LoraManager.apply`` of both LoRAs into a freshly loaded pipeline (two file
  reads, two peft adapters);
- ``weight_change_ms``: ``apply`` with other multipliers (a ``set_adapters`` call, nothing read);
- ``subset_ms`` / ``deactivate_ms``: one LoRA only / none;
- ``hooks_first_load_ms`` / ``hooks_weight_change_ms``: the same for a LoHa (hook patcher);
- ``txt2img_by_hand_s``: a plain diffusers call after ``load_lora_weights`` + ``set_adapters`` by hand;
- ``txt2img_with_manager_s``: ``manager.apply`` with the same LoRAs before every call, then the call;
- ``ratio``: with manager / by hand (the runner-level ratio is measured at integration).

Both txt2img paths run the same peft layers; on a shared CPU the ratio mostly measures the
machine's load, so compare medians of several repeats (or run it on an idle machine or a GPU).

    PYTHONPATH=. .venv/bin/python tests/benchmarks/lora_apply.py [--repeats 5] [--steps 20] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "engine" / "lora"))  # the tests' tiny-LoRA builders


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _all_layers(pipe: Any) -> dict[str, tuple[str, Any]]:
    import torch
    from lora_files import kohya_key, te_key

    layers: dict[str, tuple[str, Any]] = {}
    for name, module in pipe.unet.named_modules():
        if isinstance(module, torch.nn.Linear | torch.nn.Conv2d):
            layers[kohya_key("lora_unet_", name)] = ("unet", module)
    for name, module in pipe.text_encoder.named_modules():
        if isinstance(module, torch.nn.Linear):
            layers[te_key("lora_te_", name)] = ("text_encoder", module)
    return layers


def _write_loras(pipe: Any, folder: Path) -> None:
    from lora_files import build, loha_parts, lora_parts, write

    layers = _all_layers(pipe)
    write(
        folder / "Lora" / "first.safetensors",
        build(layers, lambda lay, g: lora_parts(lay, g, rank=4), seed=1),
    )
    write(
        folder / "Lora" / "second.safetensors",
        build(layers, lambda lay, g: lora_parts(lay, g, rank=4), seed=2),
    )
    linear = {k: v for k, v in layers.items() if v[1].weight.dim() == 2}
    write(folder / "Lora" / "loha.safetensors", build(linear, loha_parts, seed=3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import_peft_s = _timed(lambda: __import__("peft"))
    import torch

    from stablenew_qt.core.extra_networks import ExtraNetworksCatalog
    from stablenew_qt.engine.demo import ensure_demo_model
    from stablenew_qt.engine.device import DeviceChoice
    from stablenew_qt.engine.lora import LoraActivation, LoraManager
    from stablenew_qt.engine.models import ModelCatalog
    from stablenew_qt.engine.pipelines import PipelineCache

    device = DeviceChoice(torch.device(args.device), torch.float32 if args.device == "cpu" else torch.float16)
    root = Path(tempfile.mkdtemp(prefix="lora-bench-"))
    demo = {"demo-tiny-sd15": ensure_demo_model("demo-tiny-sd15", root / "demo")}
    models = root / "models"

    def fresh() -> Any:
        return PipelineCache(
            ModelCatalog(models, extra_checkpoints=demo), device, hasher=lambda _p: None
        ).base("demo-tiny-sd15")

    _write_loras(fresh().pipe, models)
    catalog = ExtraNetworksCatalog(models)
    first, second, loha = (catalog.resolve_lora(n) for n in ("first", "second", "loha"))
    both = [LoraActivation(first, 0.8, 0.8), LoraActivation(second, 0.5, 0.5)]
    times: dict[str, list[float]] = {}

    def record(name: str, seconds: float) -> None:
        times.setdefault(name, []).append(seconds)

    call = {"prompt": "a lighthouse at dusk", "num_inference_steps": args.steps, "height": 64, "width": 64}
    loaded = fresh()
    manager = LoraManager(loaded.pipe, loaded.family)
    hand = _by_hand(fresh().pipe, first.path, second.path)
    generator = torch.Generator(args.device)
    manager.apply(both)
    for _ in range(2):  # the first calls after a load pay one-off kernel set-up (oneDNN, new shapes)
        for pipe in (loaded.pipe, hand):
            pipe(**call, generator=generator.manual_seed(0))
    for repeat in range(args.repeats):
        model = fresh()  # kept referenced: a manager holds its pipeline weakly, like the cache's registry
        probe = LoraManager(model.pipe, model.family)
        record("first_load_ms", _timed(lambda: probe.apply(both)) * 1000)  # noqa: B023
        weights = [LoraActivation(first, 0.3 + 0.01 * repeat, 0.9), LoraActivation(second, 1.0, 0.2)]
        record("weight_change_ms", _timed(lambda: probe.apply(weights)) * 1000)  # noqa: B023
        record("subset_ms", _timed(lambda: probe.apply(both[:1])) * 1000)  # noqa: B023
        record("deactivate_ms", _timed(probe.deactivate) * 1000)
        loha_on = [LoraActivation(loha, 1, 1)]
        record("hooks_first_load_ms", _timed(lambda: probe.apply(loha_on)) * 1000)  # noqa: B023
        loha_change = [LoraActivation(loha, 0.5, 0.7)]
        record("hooks_weight_change_ms", _timed(lambda: probe.apply(loha_change)) * 1000)  # noqa: B023
        # interleaved, alternating which goes first, so both paths see the same machine load
        paths = [
            ("txt2img_with_manager_s", lambda: _with_manager(loaded.pipe, manager, both, call, generator)),
            ("txt2img_by_hand_s", lambda: _timed(lambda: hand(**call, generator=generator.manual_seed(0)))),
        ]
        for name, run in paths if repeat % 2 == 0 else paths[::-1]:
            record(name, run())
    result: dict[str, Any] = {
        "device": args.device,
        "steps": args.steps,
        "repeats": args.repeats,
        "import_peft_s": round(import_peft_s, 2),
    }
    result.update(
        {
            name: round(statistics.median(values), 2 if name.endswith("_ms") else 4)
            for name, values in times.items()
        }
    )
    result["ratio"] = round(result["txt2img_with_manager_s"] / result["txt2img_by_hand_s"], 3)
    print(json.dumps(result, indent=2))


def _by_hand(pipe: Any, first: Path, second: Path) -> Any:
    """The same two LoRAs loaded with diffusers' own calls, as a user script would."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # peft: "multiple adapters", which is the point
        pipe.load_lora_weights(str(first), adapter_name="a")
        pipe.load_lora_weights(str(second), adapter_name="b")
    weights = [{"unet": 0.8, "text_encoder": 0.8}, {"unet": 0.5, "text_encoder": 0.5}]
    pipe.set_adapters(["a", "b"], adapter_weights=weights)
    return pipe


def _with_manager(pipe: Any, manager: Any, both: list[Any], call: dict[str, Any], generator: Any) -> float:
    started = time.perf_counter()
    manager.apply(both)  # what the runner does before each job
    pipe(**call, generator=generator.manual_seed(0))
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
