"""ComfyUI: the ``prompt`` chunk's API graph (or, without it, the ``workflow`` UI graph) walked
back from the sampler that made the saved image.

The chain of passes is found from the first output node (SaveImage, PreviewImage, ...) back
through VAEDecode to its sampler, then from each sampler's latent input to the sampler before
it. The first pass gives the txt2img (or, from a LoadImage, the img2img) settings; a later pass
fed through a latent or pixel upscale becomes hires fix, one that continues a KSamplerAdvanced
split with another checkpoint becomes the refiner, and one that repaints at the same size
becomes img2img. A pixel upscale after the last pass becomes the upscale stage.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .comfyui_graph import MAX_DEPTH, Graph, Node, Walk
from .comfyui_passes import Origin, Pass, Upscale, is_sampler, latent_origin, model_factor, read_pass
from .comfyui_workflow import graph_from_workflow
from .draft import Draft, GenerationSettings, as_float, as_int
from .names import COMFY_SAMPLERS, COMFY_SCHEDULERS, format_weight, model_stem

_LATENT_UPSCALERS = {
    "nearest-exact": "Latent (nearest-exact)",
    "bilinear": "Latent",
    "bicubic": "Latent (bicubic)",
}
_PIXEL_UPSCALERS = {"lanczos": "Lanczos", "nearest-exact": "Nearest"}


def read_comfyui(
    prompt: object, workflow: object, source: str, size: tuple[int, int] | None = None
) -> GenerationSettings:
    """Settings from a ComfyUI image's parsed ``prompt`` (preferred) or ``workflow`` JSON;
    ``size`` (the image's) stands in when the graph's latent size cannot be found."""
    graph = Graph.from_prompt(prompt)
    draft = Draft("ComfyUI", source)
    if graph is None:
        graph = graph_from_workflow(workflow, draft.notes)
        if graph is None:
            raise ConfigError("its prompt graph is not a ComfyUI graph")
    walk = Walk(graph)
    samplers = [node for node in graph.ordered() if is_sampler(node)]
    if not samplers:
        raise ConfigError("its prompt graph has no sampler node")
    chain = _chain(walk, samplers)
    passes = [read_pass(walk, node) for node in chain]
    _first_pass(draft, walk, passes[0], size)
    for later in passes[1:]:
        _later_pass(draft, walk, passes[0], later)
    _stops_early(draft, passes[0])
    _postprocess(draft, walk, chain[-1])
    others = [f"{n.id} ({n.kind})" for n in samplers if n not in chain]
    if others:
        draft.note(
            f"ComfyUI samplers not on the way to the saved image are not used: {', '.join(others[:10])}"
        )
    if walk.clip_skip and walk.clip_skip > 1:
        draft.txt2img["clip_skip"] = walk.clip_skip
    for name, unet, clip in walk.loras.values():
        draft.add_lora(name, unet, clip)
    if walk.embeddings:
        draft.note("ComfyUI's embedding:name is written as A1111's bare embedding name")
    if "(" in str(draft.top.get("prompt", "")) + str(draft.top.get("negative_prompt", "")):
        draft.note(
            "ComfyUI weighs (text:1.2) without A1111's mean restore; emphasis may look a little different"
        )
    for text in walk.notes:
        draft.note(text)
    return draft.finish()


def _chain(walk: Walk, samplers: list[Node]) -> list[Node]:
    """The passes that make the saved image, first to last (at most MAX_DEPTH of them)."""
    last = _sampler_of_output(walk) or _last_sampler(walk, samplers)
    chain = [last]
    while len(chain) < MAX_DEPTH:
        origin = read_pass_origin(walk, chain[0])
        if origin.sampler is None or origin.sampler in chain:
            break
        chain.insert(0, origin.sampler)
    return chain


def read_pass_origin(walk: Walk, node: Node) -> Origin:
    return latent_origin(Walk(walk.graph), node)  # a scratch walk: notes come when passes are read


def _sampler_of_output(walk: Walk) -> Node | None:
    g = walk.graph
    outputs = [n for n in g.ordered() if "images" in n.inputs and ("Save" in n.kind or "Preview" in n.kind)]
    for output in outputs:
        ref = g.link(output, "images")
        seen: set[str] = set()
        while ref is not None and ref.node.id not in seen and len(seen) < MAX_DEPTH:
            seen.add(ref.node.id)
            if is_sampler(ref.node):
                return ref.node
            ref = next(
                (
                    g.link(ref.node, k)
                    for k in ("samples", "image", "images", "pixels")
                    if g.link(ref.node, k)
                ),
                None,
            )
    return None


def _last_sampler(walk: Walk, samplers: list[Node]) -> Node:
    """Without an output node: the last sampler no other sampler reads from."""
    fed = {origin.sampler.id for s in samplers if (origin := read_pass_origin(walk, s)).sampler}
    unread = [s for s in samplers if s.id not in fed]
    return (unread or samplers)[-1]


def _sampling(draft: Draft, section: dict[str, Any], p: Pass) -> None:
    steps, cfg = as_int(p.steps), as_float(p.cfg)
    if steps is not None:
        section["steps"] = steps
    if cfg is not None:
        section["cfg_scale"] = cfg
    sampler = COMFY_SAMPLERS.get(p.sampler) if isinstance(p.sampler, str) else None
    schedule = COMFY_SCHEDULERS.get(p.scheduler) if isinstance(p.scheduler, str) else None
    if p.sampler is not None and sampler is None:
        draft.note(f"ComfyUI sampler {p.sampler!r} has no A1111 equivalent; the default sampler is used")
    if p.scheduler is not None and schedule is None:
        draft.note(f"ComfyUI scheduler {p.scheduler!r} has no A1111 equivalent; Automatic is used")
    if p.sampler == "uni_pc_bh2":
        draft.note("ComfyUI's uni_pc_bh2 is UniPC's bh2 variant; A1111's UniPC uses bh1 by default")
    draft.set_sampler(section, sampler, schedule or ("Automatic" if sampler else None))


def _first_pass(draft: Draft, walk: Walk, p: Pass, size: tuple[int, int] | None) -> None:
    draft.set_seed(p.seed)
    draft.top["prompt"] = walk.prompt(p.positive) or ""
    draft.top["negative_prompt"] = walk.prompt(p.negative) or ""
    model = walk.checkpoint(p.model)
    origin = p.origin
    if origin.kind == "image":
        draft.txt2img["enabled"] = False
        section = draft.img2img
        section.update(enabled=True, denoise=as_float(p.denoise) if as_float(p.denoise) is not None else 1.0)
        name = origin.image or "the input image"
        draft.note(f"img2img from {name} in ComfyUI's input folder: choose it as the input image")
    else:
        section = draft.txt2img
        if origin.kind == "empty":
            _size(draft, origin)
        elif size and size[0] % 8 == 0 and size[1] % 8 == 0:
            draft.txt2img.update(width=size[0], height=size[1])
            draft.note("the first pass's size is not in the graph; the image's own size is used")
        denoise = as_float(p.denoise)
        if denoise is not None and denoise < 1.0 and origin.kind == "empty":
            draft.note(
                f"the first pass ran at denoise {format_weight(denoise)} on an empty latent; 1 is used"
            )
    if model:
        section["model"] = model
    _sampling(draft, section, p)


def _size(draft: Draft, origin: Origin) -> None:
    if origin.width and origin.height:
        draft.txt2img.update(width=origin.width, height=origin.height)
    if origin.batch and origin.batch > 1:
        draft.top["batch_size"] = origin.batch
        draft.note("ComfyUI draws a batch's noise from one seed; here image i uses seed + i, as in A1111")


def _later_pass(draft: Draft, walk: Walk, first: Pass, p: Pass) -> None:
    up = p.origin.upscale
    model = walk.checkpoint(p.model)
    base = draft.txt2img.get("model") or draft.img2img.get("model")
    other_model = bool(model) and model != base
    if walk.prompt(p.positive) not in (None, draft.top.get("prompt")):
        draft.note(f"sampler {p.node.id} has a prompt of its own, which is not used")
    if up is not None and not draft.txt2img.get("hires_enabled"):
        _hires(draft, p, up)
        if other_model:
            draft.note(f"the hires pass used checkpoint {model}; here it uses the first pass's")
    elif up is None and _is_split(p) and other_model and not draft.txt2img.get("refiner_enabled"):
        switch, steps = as_float(first.end) or 0.0, as_float(first.steps) or 1.0
        draft.txt2img.update(
            refiner_enabled=True, refiner_model_name=model, refiner_switch_at=round(switch / steps, 4)
        )
    elif up is None and _is_split(p) and not other_model:
        draft.note(
            f"sampler {p.node.id} continues the first pass with the same model; the steps add up the same"
        )
    elif up is None and not _is_split(p) and not draft.img2img.get("enabled"):
        draft.img2img.update(enabled=True, denoise=as_float(p.denoise) or 1.0)
        _sampling(draft, draft.img2img, p)
        if other_model:
            draft.img2img["model"] = model
        draft.note(f"sampler {p.node.id} repaints the first pass, so it becomes img2img (decoded in between)")
    else:
        draft.note(f"sampler {p.node.id} ({p.node.kind}) is a further pass with no equivalent here")


def _stops_early(draft: Draft, first: Pass) -> None:
    end, steps = as_int(first.end), as_int(first.steps)
    if end is not None and steps is not None and end < steps and not draft.txt2img.get("refiner_enabled"):
        draft.note(f"the first pass stops at step {end} of {steps}")


def _is_split(later: Pass) -> bool:
    start = as_int(later.start)
    return start is not None and start > 0


def _hires(draft: Draft, p: Pass, up: Upscale) -> None:
    section = draft.txt2img
    section["hires_enabled"] = True
    steps, denoise = as_int(p.steps), as_float(p.denoise)
    if steps is not None:
        section["hires_steps"] = steps
    if denoise is not None:
        section["hires_denoise"] = denoise
    if up.size and any(up.size):
        section.update(hires_resize_width=up.size[0], hires_resize_height=up.size[1])
    else:
        section["hires_upscale_factor"] = round(up.scale, 4)
    section["hires_upscaler_name"] = _upscaler_name(draft, up)


def _upscaler_name(draft: Draft, up: Upscale) -> str:
    method = up.method or ""
    if up.model:
        return up.model
    if up.pixel:
        if method not in _PIXEL_UPSCALERS:
            draft.note(f"ComfyUI's {method!r} image scaling is done with Lanczos here")
        return _PIXEL_UPSCALERS.get(method, "Lanczos")
    if method not in _LATENT_UPSCALERS:
        draft.note(f"ComfyUI's {method!r} latent upscale is done bilinearly here (Latent)")
    return _LATENT_UPSCALERS.get(method, "Latent")


def _postprocess(draft: Draft, walk: Walk, last: Node) -> None:
    """A model upscale between the last sampler's VAEDecode and the output: the upscale stage."""
    g = walk.graph
    outputs = [n for n in g.ordered() if "images" in n.inputs and ("Save" in n.kind or "Preview" in n.kind)]
    ref = g.link(outputs[0], "images") if outputs else None
    model, scale, seen = None, 1.0, set[str]()
    while ref is not None and ref.node.id not in seen and len(seen) < MAX_DEPTH and not is_sampler(ref.node):
        node = ref.node
        seen.add(node.id)
        if node.kind == "ImageUpscaleWithModel":
            loader = g.link(node, "upscale_model")
            name = g.value(loader.node, "model_name") if loader else None
            model = model_stem(name) if isinstance(name, str) else model
            scale *= model_factor(model or "", walk)
        elif node.kind == "ImageScaleBy" and as_float(g.value(node, "scale_by")):
            scale *= as_float(g.value(node, "scale_by")) or 1.0
        elif node.kind.startswith("VAEDecode"):
            _vae(draft, walk, node)
        else:
            walk.ignored(node)
        ref = next((g.link(node, k) for k in ("image", "images", "samples") if g.link(node, k)), None)
    if model:
        draft.top["upscale"] = {"enabled": True, "upscale_model": model, "upscale_factor": round(scale, 4)}


def _vae(draft: Draft, walk: Walk, decode: Node) -> None:
    ref = walk.graph.link(decode, "vae")
    name = walk.graph.value(ref.node, "vae_name") if ref else None
    if isinstance(name, str):
        draft.txt2img["vae"] = model_stem(name)
