"""ComfyUI sampler nodes read as sampling passes, and where each pass's latent comes from."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .comfyui_graph import MAX_DEPTH, Node, Ref, Walk
from .draft import as_float, as_int
from .names import model_stem

SAMPLER_KINDS = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustom", "SamplerCustomAdvanced"})
#: Sigma-schedule nodes of custom sampling -> ComfyUI scheduler name.
_SIGMA_NODES = {
    "KarrasScheduler": "karras",
    "ExponentialScheduler": "exponential",
    "PolyexponentialScheduler": "polyexponential",
    "AlignYourStepsScheduler": "align_your_steps",
    "BetaSamplingScheduler": "beta",
}
#: Sampler-object nodes of custom sampling -> ComfyUI sampler name.
_SAMPLER_NODES = {
    "SamplerEulerAncestral": "euler_ancestral",
    "SamplerLMS": "lms",
    "SamplerDPMPP_2M_SDE": "dpmpp_2m_sde",
    "SamplerDPMPP_SDE": "dpmpp_sde",
    "SamplerDPMPP_3M_SDE": "dpmpp_3m_sde",
    "SamplerDPMPP_2S_Ancestral": "dpmpp_2s_ancestral",
}
_UPSCALE_FACTOR = re.compile(r"(?i)(?:^|[^a-z0-9])x?([1-8])x(?:[^a-z]|$)|x([1-8])(?:[^0-9]|$)")


def is_sampler(node: Node) -> bool:
    """A sampler node: ComfyUI's own, or a custom one shaped like KSampler."""
    keys = node.inputs.keys()
    shaped = {"model", "positive", "negative", "latent_image"} <= keys and (
        "steps" in keys or "sigmas" in keys
    )
    return node.kind in SAMPLER_KINDS or shaped


@dataclass
class Upscale:
    """What happens to a latent between two passes: a latent or a pixel (VAE round trip) upscale."""

    pixel: bool = False
    method: str | None = None
    scale: float = 1.0
    size: tuple[int, int] | None = None
    model: str | None = None


@dataclass
class Origin:
    """Where a pass's latent comes from: ``empty`` (size, batch), ``image`` (file name),
    ``sampler`` (a previous pass, through ``upscale`` if any) or ``unknown``."""

    kind: str
    width: int | None = None
    height: int | None = None
    batch: int | None = None
    image: str | None = None
    sampler: Node | None = None
    upscale: Upscale | None = None


@dataclass
class Pass:
    """One sampler node's settings, in ComfyUI's terms."""

    node: Node
    seed: object = None
    steps: object = None
    cfg: object = None
    sampler: object = None
    scheduler: object = None
    denoise: object = 1.0
    start: object = None
    end: object = None
    model: Ref | None = None
    positive: Ref | None = None
    negative: Ref | None = None
    origin: Origin = field(default_factory=lambda: Origin("unknown"))


def read_pass(walk: Walk, node: Node) -> Pass:
    """The settings of sampler ``node`` (KSampler, KSamplerAdvanced, SamplerCustom(Advanced))."""
    g = walk.graph
    p = Pass(
        node,
        model=g.link(node, "model"),
        positive=g.link(node, "positive"),
        negative=g.link(node, "negative"),
    )
    for name in ("seed", "noise_seed"):
        if p.seed is None:
            p.seed = g.value(node, name)
    p.steps, p.cfg = g.value(node, "steps"), g.value(node, "cfg")
    p.sampler, p.scheduler = g.value(node, "sampler_name"), g.value(node, "scheduler")
    if "denoise" in node.inputs:
        p.denoise = g.value(node, "denoise")
    p.start, p.end = g.value(node, "start_at_step"), g.value(node, "end_at_step")
    if node.kind == "SamplerCustomAdvanced":
        _custom_advanced(walk, p)
    if "sampler" in node.inputs:
        _sampler_object(walk, p, g.link(node, "sampler"))
    if "sigmas" in node.inputs:
        _sigmas(walk, p, g.link(node, "sigmas"))
    p.origin = latent_origin(walk, node)
    return p


def _custom_advanced(walk: Walk, p: Pass) -> None:
    g = walk.graph
    noise = g.link(p.node, "noise")
    if noise is not None and noise.node.kind == "DisableNoise":
        walk.note("this ComfyUI sampler adds no noise (DisableNoise); a seed still has to be used here")
    elif noise is not None:
        p.seed = g.value(noise.node, "noise_seed")
    guider = g.link(p.node, "guider")
    if guider is None:
        return
    p.model = g.link(guider.node, "model")
    if "conditioning" in guider.node.inputs:  # BasicGuider: no negative prompt, no CFG (Flux)
        p.positive, p.cfg = g.link(guider.node, "conditioning"), 1.0
        walk.note(f"ComfyUI's {guider.node.kind} uses no negative prompt; CFG scale 1 is the closest here")
    else:
        p.positive, p.negative = g.link(guider.node, "positive"), g.link(guider.node, "negative")
        p.cfg = g.value(guider.node, "cfg")
        if guider.node.kind != "CFGGuider":
            walk.ignored(guider.node)


def _sampler_object(walk: Walk, p: Pass, ref: Ref | None) -> None:
    if ref is None:
        return
    if ref.node.kind in _SAMPLER_NODES:
        p.sampler = _SAMPLER_NODES[ref.node.kind]
    else:
        p.sampler = walk.graph.value(ref.node, "sampler_name")
        if p.sampler is None:
            walk.ignored(ref.node)


def _sigmas(walk: Walk, p: Pass, ref: Ref | None) -> None:
    if ref is None:
        return
    g, node = walk.graph, ref.node
    p.steps = g.value(node, "steps")
    if node.kind in _SIGMA_NODES:
        p.scheduler = _SIGMA_NODES[node.kind]
        if node.kind == "KarrasScheduler":
            walk.note("KarrasScheduler's own sigma range and rho are not used; the model's are")
    else:
        p.scheduler = g.value(node, "scheduler")
        if p.scheduler is None:
            walk.ignored(node)
    if "denoise" in node.inputs:
        p.denoise = g.value(node, "denoise")


def latent_origin(walk: Walk, sampler: Node) -> Origin:
    """Follow a sampler's latent input back to an empty latent, an image or an earlier sampler."""
    g = walk.graph
    ref = g.link(sampler, "latent_image")
    up = Upscale()
    changed = False
    seen: set[str] = set()
    while ref is not None and ref.node.id not in seen and len(seen) < MAX_DEPTH:
        node = ref.node
        seen.add(node.id)
        if is_sampler(node):
            return Origin("sampler", sampler=node, upscale=up if changed else None)
        if node.kind.startswith("Empty") and "width" in node.inputs:
            return Origin(
                "empty",
                _int(g.value(node, "width")),
                _int(g.value(node, "height")),
                _int(g.value(node, "batch_size")),
            )
        if node.kind == "LoadImage" or (
            isinstance(g.value(node, "image"), str) and g.link(node, "image") is None
        ):
            name = g.value(node, "image")
            return Origin("image", image=name if isinstance(name, str) else None)
        changed |= _upscale_step(walk, node, up)
        ref = next(
            (g.link(node, k) for k in ("samples", "pixels", "image", "latent") if g.link(node, k)), None
        )
    return Origin("unknown")


def _upscale_step(walk: Walk, node: Node, up: Upscale) -> bool:
    """Record what an in-between node does; True when it changes the size."""
    g = walk.graph
    if node.kind in ("LatentUpscale", "LatentUpscaleBy", "ImageScale", "ImageScaleBy"):
        up.pixel |= node.kind.startswith("Image")
        up.method = str(g.value(node, "upscale_method"))
        scale = as_float(g.value(node, "scale_by"))
        if scale is not None:
            up.scale *= scale
        else:
            w, h = _int(g.value(node, "width")), _int(g.value(node, "height"))
            up.size = (w or 0, h or 0)
        return True
    if node.kind == "ImageUpscaleWithModel":
        up.pixel = True
        loader = g.link(node, "upscale_model")
        name = g.value(loader.node, "model_name") if loader else None
        up.model = model_stem(name) if isinstance(name, str) else None
        up.scale *= model_factor(up.model or "", walk)
        return True
    if node.kind.startswith(("VAEEncode", "VAEDecode")):
        up.pixel = True
        return False
    walk.ignored(node)
    return False


def model_factor(name: str, walk: Walk) -> float:
    """An upscale model's factor, read from its name (``4x-UltraSharp``, ``RealESRGAN_x4plus``)."""
    match = _UPSCALE_FACTOR.search(name)
    if match is None:
        walk.note(f"the scale of upscale model {name!r} is not in its name; 4x is assumed")
        return 4.0
    return float(match[1] or match[2])


def _int(value: object) -> int | None:
    return as_int(value) if isinstance(value, int | float) else None
