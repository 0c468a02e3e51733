"""Standalone upscale (A1111 Extras "Scale by"): a spandrel model or a PIL filter, tiled.

1. Resolve the upscaler (built-in name or a model file in models/ESRGAN, loaded once).
2. Upscale each image to ``floor(side * factor / 8) * 8`` per side (spec §4; ``core.sizes``),
   checking for cancel between tiles.
"""

from __future__ import annotations

from ...core.executor import StageInfo, StagePayload, StageResult
from ..context import EngineContext
from ..progress import StepReporter


def run(ctx: EngineContext, payload: StagePayload, reporter: StepReporter) -> StageResult:
    cfg = payload.config.upscale
    # 1. upscaler
    upscaler = ctx.upscaler(cfg.upscale_model)
    # 2. upscale
    out = []
    for image in payload.images:
        out.append(upscaler.upscale(image, cfg.upscale_factor, reporter.check))
        reporter.step("upscale")
    # The infotext's "Postprocess upscale by/upscaler" keys come from the config.
    return StageResult(tuple(out), StageInfo())
