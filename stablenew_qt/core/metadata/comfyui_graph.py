"""ComfyUI's API graph (the ``prompt`` chunk) and the walks back through its links.

The graph maps node ids to ``{"class_type": ..., "inputs": {...}}``; an input is a literal or a
link ``[source_id, output_index]``. Every walk here keeps a visited set and a depth bound, so a
cyclic or absurdly deep graph ends the walk with a note instead of hanging.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from .draft import as_float
from .names import model_stem

MAX_NODES = 5000
MAX_DEPTH = 64
#: Inputs a primitive-like node keeps its value in (core Primitive*, rgthree, WAS, Impact...).
_VALUE_KEYS = ("value", "seed", "noise_seed", "int", "float", "number", "string", "text", "Text")
_NUMERIC_ID = re.compile(r"[0-9]{1,18}")
_EMBEDDING = re.compile(r"embedding:([^\s,()\[\]<>]+)")


@dataclass(frozen=True)
class Node:
    """One node: its id, its ``class_type`` and its inputs (literals or links)."""

    id: str
    kind: str
    inputs: Mapping[str, object]


@dataclass(frozen=True)
class Ref:
    """The output ``slot`` of ``node`` that an input is linked to."""

    node: Node
    slot: int


def as_link(value: object) -> tuple[str, int] | None:
    """``[source_id, output_index]`` as a pair; None for anything else."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        return None
    source, slot = value
    if isinstance(source, bool) or not isinstance(source, str | int) or isinstance(slot, bool):
        return None
    return (str(source), slot) if isinstance(slot, int) and 0 <= slot < 1000 else None


class Graph:
    """A ComfyUI API graph, read defensively: malformed nodes are left out."""

    def __init__(self, nodes: Mapping[str, Node]) -> None:
        self.nodes = dict(nodes)

    @classmethod
    def from_prompt(cls, data: object) -> Graph | None:
        """The graph of a ``prompt`` chunk's JSON; None when it is not a ComfyUI API graph."""
        if not isinstance(data, dict) or not data or len(data) > MAX_NODES:
            return None
        nodes: dict[str, Node] = {}
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(value.get("class_type"), str):
                inputs = value.get("inputs")
                nodes[str(key)] = Node(
                    str(key), value["class_type"], inputs if isinstance(inputs, dict) else {}
                )
        return cls(nodes) if nodes else None

    def ordered(self) -> list[Node]:
        """Nodes by id, numerically where ids are numbers (ComfyUI's own numbering)."""
        return sorted(self.nodes.values(), key=_id_order)

    def link(self, node: Node, name: str) -> Ref | None:
        """Where input ``name`` of ``node`` comes from, if it is a link to a node in the graph."""
        found = as_link(node.inputs.get(name))
        if found is None or found[0] not in self.nodes:
            return None
        return Ref(self.nodes[found[0]], found[1])

    def value(self, node: Node, name: str, depth: int = 0) -> object:
        """Input ``name`` as a literal, following links to primitive nodes (seed, text, number)."""
        raw = node.inputs.get(name)
        ref = self.link(node, name)
        if ref is None:
            return None if as_link(raw) else raw
        return self.node_value(ref.node, depth + 1)

    def node_value(self, node: Node, depth: int = 0) -> object:
        """The value a primitive-like node outputs; None when it is not one."""
        if depth > MAX_DEPTH:
            return None
        if node.kind == "StringConcatenate":
            parts = [self.value(node, key, depth) for key in ("string_a", "string_b")]
            delimiter = self.value(node, "delimiter", depth)
            if all(isinstance(p, str) for p in parts):
                return (delimiter if isinstance(delimiter, str) else "").join(str(p) for p in parts)
            return None
        for key in _VALUE_KEYS:
            if key in node.inputs:
                return self.value(node, key, depth)
        return None


@dataclass
class Walk:
    """What walking the graph found besides values: notes, LoRAs by node id, clip skip."""

    graph: Graph
    notes: list[str] = field(default_factory=list)
    loras: dict[str, tuple[str, float, float | None]] = field(default_factory=dict)
    clip_skip: int | None = None
    embeddings: bool = False

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def ignored(self, node: Node) -> None:
        self.note(f"ComfyUI node {node.kind} ignored (no equivalent here)")

    # -- model -------------------------------------------------------------------------------

    def checkpoint(self, ref: Ref | None) -> str | None:
        """Follow a MODEL link back to its loader, collecting LoRAs; the checkpoint's A1111 name."""
        seen: set[str] = set()
        while ref is not None and ref.node.id not in seen and len(seen) < MAX_DEPTH:
            node = ref.node
            seen.add(node.id)
            name = self.graph.value(node, "ckpt_name")
            if isinstance(name, str):
                return model_stem(name)
            unet = self.graph.value(node, "unet_name")
            if isinstance(unet, str):
                self.note(f"the model was loaded as a bare diffusion model ({unet}); choose its checkpoint")
                return model_stem(unet)
            if not self._lora(node) and node.kind != "Reroute":
                if "model" not in node.inputs:
                    self.note(f"the model comes from ComfyUI node {node.kind}, which has no equivalent here")
                    return None
                self.ignored(node)
            ref = self.graph.link(node, "model")
        return None

    def _lora(self, node: Node) -> bool:
        """Record a LoRA loader (core LoraLoader kinds, or rgthree's Power Lora Loader)."""
        name = self.graph.value(node, "lora_name")
        if isinstance(name, str):
            if name not in ("None", ""):
                unet = _number(self.graph.value(node, "strength_model"), 1.0)
                clip = self.graph.value(node, "strength_clip")
                self.loras[node.id] = (name, unet, _number(clip, unet) if clip is not None else None)
            return True
        slots = [v for k, v in node.inputs.items() if k.startswith("lora_") and isinstance(v, dict)]
        for index, slot in enumerate(slots):
            if slot.get("on", True) is True and isinstance(slot.get("lora"), str):
                weight = _number(slot.get("strength"), 1.0)
                self.loras[f"{node.id}:{index}"] = (
                    str(slot["lora"]),
                    weight,
                    _number(slot.get("strengthTwo"), weight),
                )
        return bool(slots)

    # -- prompts -----------------------------------------------------------------------------

    def prompt(self, ref: Ref | None) -> str | None:
        """The A1111 prompt a CONDITIONING link carries: ConditioningCombine becomes ``AND``
        (each part weighted 1/n, as ComfyUI averages them), ConditioningConcat ``BREAK``."""
        parts = self._parts(ref, 0)
        texts = [p for p in parts if p is not None]
        if not texts:
            return None
        if len(texts) == 1:
            return texts[0]
        weight = 1 / len(texts)
        self.note(
            "ConditioningCombine is written as A1111's AND, each part weighted 1/n as ComfyUI averages them"
        )
        return " AND ".join(f"{text} :{weight:.4g}" for text in texts)

    def _parts(self, ref: Ref | None, depth: int) -> list[str | None]:
        if ref is None:
            return [None]
        if depth > MAX_DEPTH:
            self.note("the prompt's conditioning chain is too deep to follow")
            return [None]
        node, inputs = ref.node, ref.node.inputs
        if "clip" in inputs and any(k in inputs for k in ("text", "text_g", "t5xxl")):
            return [self._encoder_text(node)]
        if node.kind == "ConditioningCombine":
            return [
                p
                for key in ("conditioning_1", "conditioning_2")
                for p in self._parts(self.graph.link(node, key), depth + 1)
            ]
        if node.kind == "ConditioningConcat":
            texts = [
                self.prompt_at(self.graph.link(node, key), depth)
                for key in ("conditioning_to", "conditioning_from")
            ]
            return [" BREAK ".join(t for t in texts if t) or None]
        if node.kind == "FluxGuidance":
            self.note(f"Flux guidance {self.graph.value(node, 'guidance')} has no equivalent here")
            return self._parts(self.graph.link(node, "conditioning"), depth + 1)
        for key in (("negative" if ref.slot == 1 else "positive"), "conditioning", "conditioning_to"):
            if key in inputs:
                self.ignored(node)
                return self._parts(self.graph.link(node, key), depth + 1)
        self.note(f"a prompt comes from ComfyUI node {node.kind}, which has no equivalent here")
        return [None]

    def prompt_at(self, ref: Ref | None, depth: int) -> str | None:
        texts = [p for p in self._parts(ref, depth + 1) if p]
        return " AND ".join(texts) if texts else None

    def _encoder_text(self, node: Node) -> str | None:
        self._clip(self.graph.link(node, "clip"))
        if "text_g" in node.inputs:
            text, other = self.graph.value(node, "text_g"), self.graph.value(node, "text_l")
            if isinstance(other, str) and other.strip() and other != text:
                self.note("CLIPTextEncodeSDXL's separate text_l prompt is not used; text_g is")
        elif "t5xxl" in node.inputs:
            text = self.graph.value(node, "t5xxl")
            self.note("CLIPTextEncodeFlux: its t5xxl prompt is used, its clip_l prompt and guidance are not")
        else:
            text = self.graph.value(node, "text")
        if not isinstance(text, str):
            self.note(f"the text of ComfyUI node {node.kind} comes from a node that has no equivalent here")
            return None
        if _EMBEDDING.search(text):
            self.embeddings = True
            text = _EMBEDDING.sub(lambda m: model_stem(m[1]), text)
        return text

    def _clip(self, ref: Ref | None) -> None:
        seen: set[str] = set()
        while ref is not None and ref.node.id not in seen and len(seen) < MAX_DEPTH:
            node = ref.node
            seen.add(node.id)
            if "ckpt_name" in node.inputs:
                return
            if node.kind == "CLIPSetLastLayer":
                layer = _number(self.graph.value(node, "stop_at_clip_layer"), -1.0)
                if self.clip_skip is None and -12 <= layer <= -1 and layer.is_integer():
                    self.clip_skip = int(-layer)
            elif not self._lora(node) and node.kind != "Reroute":
                if "clip" not in node.inputs:
                    self.note(
                        f"the text encoder comes from ComfyUI node {node.kind}, which has no equivalent here"
                    )
                    return
                self.ignored(node)
            ref = self.graph.link(node, "clip")


def _id_order(node: Node) -> tuple[bool, int, str]:
    numeric = _NUMERIC_ID.fullmatch(node.id) is not None
    return (not numeric, int(node.id) if numeric else 0, node.id)


def _number(value: object, default: float) -> float:
    number = as_float(value)
    return default if number is None else number
