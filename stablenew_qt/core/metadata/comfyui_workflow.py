"""ComfyUI's UI graph (the ``workflow`` chunk) turned into the API graph the walker reads.

Used only when an image has no ``prompt`` chunk. A UI node keeps its widget values by position
(``widgets_values``), so only node kinds whose widget order is known here get their values;
links carry over for every kind. Bypassed nodes and Reroutes pass their input of the same type
through, as ComfyUI does when it queues a workflow; muted nodes are left out.
"""

from __future__ import annotations

from .comfyui_graph import MAX_DEPTH, MAX_NODES, Graph, Node

#: Widget names in ComfyUI's order, per node kind (seed widgets are followed by a
#: "control after generate" value in ``widgets_values``, skipped when present).
WIDGETS: dict[str, tuple[str, ...]] = {
    "KSampler": ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"),
    "KSamplerAdvanced": (
        "add_noise",
        "noise_seed",
        "steps",
        "cfg",
        "sampler_name",
        "scheduler",
        "start_at_step",
        "end_at_step",
        "return_with_leftover_noise",
    ),
    "SamplerCustom": ("add_noise", "noise_seed", "cfg"),
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CheckpointLoader": ("config_name", "ckpt_name"),
    "UNETLoader": ("unet_name", "weight_dtype"),
    "CLIPTextEncode": ("text",),
    "CLIPTextEncodeSDXL": (
        "width",
        "height",
        "crop_w",
        "crop_h",
        "target_width",
        "target_height",
        "text_g",
        "text_l",
    ),
    "CLIPTextEncodeSDXLRefiner": ("ascore", "width", "height", "text"),
    "CLIPSetLastLayer": ("stop_at_clip_layer",),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "EmptySD3LatentImage": ("width", "height", "batch_size"),
    "LoraLoader": ("lora_name", "strength_model", "strength_clip"),
    "LoraLoaderModelOnly": ("lora_name", "strength_model"),
    "VAELoader": ("vae_name",),
    "LatentUpscale": ("upscale_method", "width", "height", "crop"),
    "LatentUpscaleBy": ("upscale_method", "scale_by"),
    "UpscaleModelLoader": ("model_name",),
    "ImageScale": ("upscale_method", "width", "height", "crop"),
    "ImageScaleBy": ("upscale_method", "scale_by"),
    "LoadImage": ("image",),
    "KSamplerSelect": ("sampler_name",),
    "BasicScheduler": ("scheduler", "steps", "denoise"),
    "KarrasScheduler": ("steps", "sigma_max", "sigma_min", "rho"),
    "RandomNoise": ("noise_seed",),
    "CFGGuider": ("cfg",),
    "FluxGuidance": ("guidance",),
    "PrimitiveNode": ("value",),
    "PrimitiveInt": ("value",),
    "PrimitiveFloat": ("value",),
    "PrimitiveString": ("value",),
    "PrimitiveStringMultiline": ("value",),
}
_SEED_WIDGETS = frozenset({"seed", "noise_seed", "value"})
_CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
_MUTED, _BYPASSED = 2, 4

# A link: (source node id, source slot, type name).
_Link = tuple[str, int, str]


def graph_from_workflow(workflow: object, notes: list[str]) -> Graph | None:
    """The API graph of a UI workflow; None when ``workflow`` is not one."""
    if not isinstance(workflow, dict):
        return None
    raw_nodes = workflow.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes or len(raw_nodes) > MAX_NODES:
        return None
    nodes = {
        str(n["id"]): n
        for n in raw_nodes
        if isinstance(n, dict) and isinstance(n.get("type"), str) and "id" in n
    }
    links = _links(workflow.get("links"))
    graph: dict[str, Node] = {}
    for node_id, raw in nodes.items():
        if raw.get("mode") in (_MUTED, _BYPASSED) or raw["type"] == "Reroute":
            continue
        graph[node_id] = Node(node_id, raw["type"], {**_widgets(raw, notes), **_inputs(raw, nodes, links)})
    if isinstance(workflow.get("definitions"), dict):
        notes.append("the workflow uses subgraphs; only its top level is read")
    notes.append(
        "read from the ComfyUI workflow (the image has no prompt graph): widget values are positional"
    )
    return Graph(graph) if graph else None


def _links(raw: object) -> dict[int, _Link]:
    links: dict[int, _Link] = {}
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, list) and len(item) >= 6 and all(isinstance(v, int) for v in item[:5]):
            links[item[0]] = (str(item[1]), item[2], str(item[5]))
        elif (
            isinstance(item, dict)
            and isinstance(item.get("id"), int)
            and isinstance(item.get("origin_slot"), int)
        ):
            links[item["id"]] = (str(item.get("origin_id")), item["origin_slot"], str(item.get("type")))
    return links


def _widgets(raw: dict[str, object], notes: list[str]) -> dict[str, object]:
    values = raw.get("widgets_values")
    if isinstance(values, dict):
        return {str(k): v for k, v in values.items()}
    names = WIDGETS.get(str(raw["type"]))
    if not isinstance(values, list) or names is None:
        return {}
    out: dict[str, object] = {}
    position = 0
    for name in names:
        if position >= len(values):
            break
        out[name] = values[position]
        position += 1
        if name in _SEED_WIDGETS and position < len(values) and values[position] in _CONTROL_VALUES:
            position += 1
    return out


def _inputs(
    raw: dict[str, object], nodes: dict[str, dict[str, object]], links: dict[int, _Link]
) -> dict[str, object]:
    out: dict[str, object] = {}
    inputs = raw.get("inputs")
    for item in inputs if isinstance(inputs, list) else []:
        if isinstance(item, dict) and isinstance(item.get("name"), str) and isinstance(item.get("link"), int):
            source = _source(item["link"], nodes, links)
            if source is not None:
                out[item["name"]] = [source[0], source[1]]
    return out


def _source(
    link_id: int, nodes: dict[str, dict[str, object]], links: dict[int, _Link]
) -> tuple[str, int] | None:
    """Where a link really starts, passing through Reroutes and bypassed nodes; None if muted."""
    seen: set[int] = set()
    while link_id in links and link_id not in seen and len(seen) < MAX_DEPTH:
        seen.add(link_id)
        origin, slot, kind = links[link_id]
        node = nodes.get(origin)
        if node is None or node.get("mode") == _MUTED:
            return None
        if node.get("mode") != _BYPASSED and node.get("type") != "Reroute":
            return origin, slot
        inputs = node.get("inputs")
        candidates = [i for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []
        same_type = [i for i in candidates if i.get("type") == kind or node.get("type") == "Reroute"]
        next_link = next((i.get("link") for i in same_type if isinstance(i.get("link"), int)), None)
        if not isinstance(next_link, int):
            return None
        link_id = next_link
    return None
