"""Benchmark (not a test): the img2img stage's inpaint pass against plain img2img, through the
runner on the demo models (CPU, one thread).

Each case runs a 20-step, denoise-0.75 img2img pass (16 sampling steps, Euler) on a random
``W x H`` input, once to load the model and then ``--rounds`` times; it prints the median and the
smallest stage time (``StageFinished.seconds``: model already resident, prompt encoding, VAE
encode, sampling, decode and paste-back). The inpaint mask is the centre quarter of the image.

    .venv/bin/python tests/benchmarks/img2img_inpaint.py [--size 256x256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stablenew_qt.core import events as ev
from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.executor import CancelToken
from stablenew_qt.core.outputs import OutputSettings
from stablenew_qt.core.runner import PipelineRunner
from stablenew_qt.engine.demo import ensure_demo_models
from stablenew_qt.engine.executor import DiffusersExecutor, EngineSettings


def _cases(mask: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    masked = {"mask_path": str(mask)}
    return {
        "plain img2img, sd15": ("demo-tiny-sd15", {}),
        "inpaint whole picture, sd15": ("demo-tiny-sd15", masked),
        "inpaint only masked, sd15": ("demo-tiny-sd15", {**masked, "inpaint_area": "only masked"}),
        "inpaint, sd15-inpaint (9 ch)": ("demo-tiny-sd15-inpaint", masked),
        "plain img2img, sdxl": ("demo-tiny-sdxl", {}),
        "inpaint, sdxl-inpaint (9 ch)": ("demo-tiny-sdxl-inpaint", masked),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="256x256")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="inpaint-bench-"))
    ensure_demo_models(root / "demo")
    settings = EngineSettings(
        models_dir=root / "models", device="cpu", preview_every=0, demo_dir=root / "demo"
    )
    executor = DiffusersExecutor(settings)
    image, mask = root / "in.png", root / "mask.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(image)
    centre = Image.new("L", (width, height))
    centre.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    centre.save(mask)

    def seconds(model: str, img2img: dict[str, Any]) -> float:
        config = RunConfig.from_dict(
            {
                "prompt": "an apple",
                "seed": 1,
                "input_image_path": str(image),
                "txt2img": {"enabled": False, "model": model, "sampler": "Euler", "scheduler": "Automatic"},
                "img2img": {"enabled": True, "steps": 20, "denoise": 0.75, **img2img},
            }
        )
        events: list[object] = []
        result = PipelineRunner(executor, OutputSettings(root / "runs")).run(
            config, CancelToken(), events.append
        )
        assert result.status == "COMPLETED", result.error
        return next(e.seconds for e in events if isinstance(e, ev.StageFinished))

    for name, (model, img2img) in _cases(mask).items():
        seconds(model, img2img)
        times = [seconds(model, img2img) for _ in range(args.rounds)]
        print(
            f"{name:32s} median {statistics.median(times) * 1000:7.1f} ms   min {min(times) * 1000:7.1f} ms"
        )


if __name__ == "__main__":
    main()
