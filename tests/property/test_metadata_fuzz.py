"""Property tests: the metadata readers never fail with anything but a ConfigError, whatever the
graph, JSON or pixels (cycles, wrong types, dangling links, random bits), and NovelAI emphasis
always comes out as balanced A1111 syntax."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.metadata import ImageSources, settings_from_sources
from stablenew_qt.core.metadata.comfyui import read_comfyui
from stablenew_qt.core.metadata.comfyui_workflow import graph_from_workflow
from stablenew_qt.core.metadata.fooocus import read_fooocus
from stablenew_qt.core.metadata.invokeai import read_invokeai_dream, read_invokeai_v2, read_invokeai_v3
from stablenew_qt.core.metadata.nai_emphasis import novelai_to_a1111
from stablenew_qt.core.metadata.novelai import read_novelai
from stablenew_qt.core.metadata.stealth import read_stealth
from stablenew_qt.core.metadata.swarmui import read_swarmui

FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

IDS = [str(i) for i in range(1, 9)]
KINDS = [
    "KSampler",
    "KSamplerAdvanced",
    "SamplerCustom",
    "SamplerCustomAdvanced",
    "CheckpointLoaderSimple",
    "LoraLoader",
    "CLIPTextEncode",
    "CLIPTextEncodeSDXL",
    "CLIPSetLastLayer",
    "ConditioningCombine",
    "ConditioningConcat",
    "FluxGuidance",
    "EmptyLatentImage",
    "LatentUpscaleBy",
    "LatentUpscale",
    "VAEDecode",
    "VAEEncode",
    "SaveImage",
    "PrimitiveNode",
    "StringConcatenate",
    "ImageUpscaleWithModel",
    "ImageScaleBy",
    "UpscaleModelLoader",
    "LoadImage",
    "BasicGuider",
    "CFGGuider",
    "RandomNoise",
    "KSamplerSelect",
    "BasicScheduler",
    "VAELoader",
    "ControlNetApplyAdvanced",
    "Reroute",
    "SomethingCustom",
]
INPUTS = [
    "model",
    "clip",
    "positive",
    "negative",
    "latent_image",
    "samples",
    "pixels",
    "image",
    "images",
    "vae",
    "seed",
    "noise_seed",
    "steps",
    "cfg",
    "sampler_name",
    "scheduler",
    "denoise",
    "start_at_step",
    "end_at_step",
    "ckpt_name",
    "lora_name",
    "strength_model",
    "strength_clip",
    "text",
    "text_g",
    "text_l",
    "stop_at_clip_layer",
    "conditioning",
    "conditioning_1",
    "conditioning_2",
    "conditioning_to",
    "conditioning_from",
    "width",
    "height",
    "batch_size",
    "scale_by",
    "upscale_method",
    "value",
    "noise",
    "guider",
    "sampler",
    "sigmas",
    "upscale_model",
    "model_name",
    "guidance",
    "string_a",
    "string_b",
    "delimiter",
    "lora_1",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["euler", "karras", "dpmpp_2m", "nearest-exact", "a.safetensors", "-2"]),
)
links = st.lists(
    st.one_of(st.sampled_from([*IDS, "99"]), st.integers(0, 9), st.none()), min_size=2, max_size=2
).map(lambda pair: [pair[0], pair[1] if isinstance(pair[1], int) else 0])
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
node = st.fixed_dictionaries(
    {
        "class_type": st.sampled_from(KINDS),
        "inputs": st.dictionaries(
            st.sampled_from(INPUTS), st.one_of(links, links, scalars, json_values), max_size=8
        ),
    }
)
graphs = st.dictionaries(st.sampled_from(IDS), node, min_size=1, max_size=8)


def only_config_errors(read: Any, *args: Any) -> None:
    try:
        read(*args)
    except ConfigError as exc:
        assert str(exc)


@FUZZ
@given(graph=graphs)
def test_comfyui_graph_walker_never_crashes(graph: dict[str, Any]) -> None:
    only_config_errors(read_comfyui, graph, None, "fuzz")


workflow_nodes = st.fixed_dictionaries(
    {
        "id": st.one_of(st.integers(1, 8), st.text(max_size=2)),
        "type": st.sampled_from(KINDS),
        "mode": st.sampled_from([0, 2, 4, None]),
        "widgets_values": st.one_of(
            st.lists(scalars, max_size=10), st.dictionaries(st.text(max_size=5), scalars, max_size=3), scalars
        ),
        "inputs": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.sampled_from(INPUTS),
                    "type": st.sampled_from(["MODEL", "CLIP", "*", "INT"]),
                    "link": st.one_of(st.integers(0, 12), st.none()),
                }
            ),
            max_size=5,
        ),
    }
)
workflow_links = st.lists(
    st.one_of(st.lists(st.integers(0, 12), min_size=5, max_size=5).map(lambda v: [*v, "MODEL"]), json_values),
    max_size=12,
)


@FUZZ
@given(nodes=st.lists(workflow_nodes, max_size=8), link_list=workflow_links)
def test_workflow_conversion_and_walk_never_crash(nodes: list[Any], link_list: list[Any]) -> None:
    workflow = {"nodes": nodes, "links": link_list}
    graph_from_workflow(workflow, [])
    only_config_errors(read_comfyui, None, workflow, "fuzz")


json_objects = st.dictionaries(
    st.sampled_from(
        [
            "prompt",
            "negative_prompt",
            "full_prompt",
            "steps",
            "guidance_scale",
            "seed",
            "sampler",
            "scheduler",
            "resolution",
            "base_model",
            "refiner_model",
            "refiner_switch",
            "loras",
            "lora_combined_1",
            "vae",
            "styles",
            "positive_prompt",
            "cfg_scale",
            "width",
            "height",
            "model",
            "clip_skip",
            "hrf_enabled",
            "hrf_method",
            "refiner_start",
            "generation_mode",
            "strength",
            "image",
            "uc",
            "scale",
            "noise_schedule",
            "v4_prompt",
            "request_type",
            "negativeprompt",
            "cfgscale",
            "refinerupscale",
            "refinermodel",
            "loraweights",
            "refinercontrolpercentage",
            "refinerupscalemethod",
            "clipstopatlayer",
        ]
    ),
    json_values,
    max_size=12,
)


@FUZZ
@given(data=json_objects)
def test_json_readers_never_crash(data: dict[str, Any]) -> None:
    only_config_errors(read_fooocus, data, "fuzz")
    only_config_errors(read_swarmui, {"sui_image_params": data}, "fuzz")
    only_config_errors(read_invokeai_v3, data, "fuzz")
    only_config_errors(read_invokeai_v2, {"image": data, "model_weights": data.get("model")}, "fuzz")
    only_config_errors(read_novelai, {"Comment": json.dumps(data), "Source": "x"}, (64, 64), "fuzz")


@FUZZ
@given(command=st.text(alphabet=st.sampled_from(list("\"' -sSWHCAfI0123456789.=abc[]\\")), max_size=60))
def test_dream_command_never_crashes(command: str) -> None:
    only_config_errors(read_invokeai_dream, command, "fuzz")


chunk_values = st.one_of(st.text(max_size=40), json_values.map(json.dumps), graphs.map(json.dumps))


@FUZZ
@given(
    chunks=st.dictionaries(
        st.sampled_from(
            [
                "parameters",
                "prompt",
                "workflow",
                "invokeai_metadata",
                "invokeai",
                "sd-metadata",
                "Dream",
                "Comment",
                "Software",
                "fooocus_scheme",
                "stablenew_run_config",
            ]
        ),
        chunk_values,
        max_size=4,
    )
)
def test_dispatcher_never_crashes(chunks: dict[str, str]) -> None:
    only_config_errors(settings_from_sources, ImageSources(chunks, (64, 64), "PNG text"))


@settings(max_examples=100, deadline=None, database=None)
@given(
    bits=st.binary(min_size=0, max_size=64 * 16 // 8),
    signature=st.sampled_from(
        [b"stealth_pngcomp", b"stealth_pnginfo", b"stealth_rgbcomp", b"junk_signature!"]
    ),
)
def test_stealth_reader_never_crashes_on_random_bits(bits: bytes, signature: bytes) -> None:
    stream = "".join(f"{b:08b}" for b in signature + bits)
    image = Image.new("RGBA", (16, 64), (0, 0, 0, 0))
    alpha = bytes(int(bit) for bit in stream[: 16 * 64].ljust(16 * 64, "0"))
    image.putalpha(Image.frombytes("L", (64, 16), alpha).transpose(Image.Transpose.TRANSPOSE))
    result = read_stealth(image)
    assert result is None or isinstance(result.chunks, dict)


def _unescaped_parens(text: str) -> list[str]:
    """The parentheses A1111 reads as emphasis: those not escaped by a backslash."""
    found, escaped = [], False
    for char in text:
        if not escaped and char in "()":
            found.append(char)
        escaped = not escaped and char == "\\"
    return found


@settings(max_examples=300, deadline=None, database=None)
@given(prompt=st.text(alphabet=st.sampled_from(list("ab ,{}[]()\\:1.5-")), max_size=40))
def test_novelai_emphasis_is_balanced_a1111(prompt: str) -> None:
    converted, _ = novelai_to_a1111(prompt)
    depth = 0
    for paren in _unescaped_parens(converted):
        depth += 1 if paren == "(" else -1
        assert depth in (0, 1)
    assert depth == 0
    assert "{" not in converted and "[" not in converted
