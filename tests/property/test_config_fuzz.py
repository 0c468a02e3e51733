"""Property tests: RunConfig reading never fails with anything but a ConfigError that says something,
valid configs round-trip through JSON, and every plan StageSequencer accepts keeps its invariants."""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

import annotated_types
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from stablenew_qt.core.config import (
    ADETAILER_SAME,
    ADetailerConfig,
    ADetailerUnit,
    Img2ImgConfig,
    RunConfig,
    Txt2ImgConfig,
    UpscaleConfig,
)
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.samplers import SAMPLERS, SCHEDULERS
from stablenew_qt.core.sequencer import CANONICAL_ORDER, StageName, StageSequencer

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SECTIONS: dict[str, type[BaseModel]] = {
    "txt2img": Txt2ImgConfig,
    "img2img": Img2ImgConfig,
    "upscale": UpscaleConfig,
    "adetailer": ADetailerConfig,
}
ALL_KEYS = sorted(
    {
        name
        for model in (RunConfig, Txt2ImgConfig, Img2ImgConfig, UpscaleConfig, ADetailerConfig, ADetailerUnit)
        for name in model.model_fields
    }
)
LEGACY_SAMPLERS = [f"{s} {k}" for s in ("DPM++ 2M", "DPM++ 2M SDE", "Euler a", "DDIM") for k in SCHEDULERS]
WORDS = ["", " ", "None", "Latent", "Lanczos", "model.safetensors", "in.png", "Use same scheduler"]

# -- arbitrary JSON-like values ------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**300), max_value=10**300),
    st.sampled_from([0, -1, 1, 8, 64, 150, 151, 2**32 - 1, 2**32, 2**63, -(2**63)]),
    st.floats(),  # includes nan, inf, -0.0, subnormals and 1.8e308
    st.sampled_from([0.0, 0.5, 1.0, 1e-300, 1e300, float("nan"), float("inf")]),
    st.text(max_size=12),
    st.sampled_from(WORDS + list(SAMPLERS) + list(SCHEDULERS) + LEGACY_SAMPLERS[:8]),
)
json_keys = st.one_of(st.text(max_size=10), st.sampled_from(ALL_KEYS))
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(json_keys, children, max_size=5),
    max_leaves=24,
)


def keyed_dict(model: type[BaseModel], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts that use ``model``'s real key names (any subset) with values from ``values``."""
    return st.fixed_dictionaries({}, optional=dict.fromkeys(model.model_fields, values))


units_keyed = st.lists(keyed_dict(ADetailerUnit, json_values) | json_values, max_size=3)
adetailer_keyed = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(ADetailerConfig.model_fields, json_values),
        "units": units_keyed | json_values,
    },
)
sections_keyed = {
    name: (adetailer_keyed if name == "adetailer" else keyed_dict(model, json_values)) | json_values
    for name, model in SECTIONS.items()
}
top_keyed = st.fixed_dictionaries(
    {},
    optional={
        **{k: json_values for k in RunConfig.model_fields if k not in SECTIONS},
        **sections_keyed,
    },
)

# -- valid configs, built from the models' own field constraints -------------------------------

SIZE_FIELDS = {"width", "height"}
OPTIONAL_SIZE_FIELDS = {"hires_resize_width", "hires_resize_height", "left", "right", "top", "bottom"}
sampler_names = st.sampled_from(SAMPLERS) | st.sampled_from(LEGACY_SAMPLERS)
text_values = st.sampled_from(WORDS) | st.text(max_size=8)


def _bounds(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            found["min_value"] = item.ge
        elif isinstance(item, annotated_types.Gt):
            found["min_value"], found["exclude_min"] = item.gt, True
        elif isinstance(item, annotated_types.Le):
            found["max_value"] = item.le
        elif isinstance(item, annotated_types.Lt):
            found["max_value"], found["exclude_max"] = item.lt, True
        elif isinstance(item, annotated_types.MinLen):
            found["min_size"] = item.min_length
    return found


def _ints(name: str, bounds: dict[str, Any]) -> st.SearchStrategy[int]:
    lo, hi = bounds.get("min_value"), bounds.get("max_value")
    assert lo is not None and hi is not None, f"{name}: every int field is expected to have bounds"
    if name in SIZE_FIELDS or name in OPTIONAL_SIZE_FIELDS:
        eights = st.integers(-(-lo // 8), hi // 8).map(lambda n: n * 8)
        return eights | st.just(0) if name in OPTIONAL_SIZE_FIELDS else eights
    return st.integers(lo, hi) | st.sampled_from([lo, hi])


def _plain(name: str, annotation: Any, info: FieldInfo) -> st.SearchStrategy[Any]:
    bounds = _bounds(info)
    if name in ("sampler", "adetailer_sampler", "hires_sampler"):
        return sampler_names
    if name in ("scheduler", "hires_scheduler"):
        return st.sampled_from(SCHEDULERS)
    if name == "adetailer_scheduler":
        return st.sampled_from((*SCHEDULERS, ADETAILER_SAME))
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return _ints(name, bounds)
    if annotation is float:
        edges = [
            bounds[k]
            for k in ("min_value", "max_value")
            if k in bounds and not bounds.get(f"exclude_{k[:3]}")
        ]
        floats = st.floats(allow_nan=False, allow_infinity=False, **bounds)
        return floats | st.sampled_from(edges) if edges else floats
    if annotation is str:
        return st.text(min_size=1, max_size=8) | st.sampled_from(WORDS[2:]) if bounds else text_values
    if typing.get_origin(annotation) is Literal:
        return st.sampled_from(typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return valid_dict(annotation)
    raise AssertionError(f"no strategy for field {name!r} of type {annotation!r}: extend the fuzz tests")


def _field(name: str, info: FieldInfo) -> st.SearchStrategy[Any]:
    annotation = info.annotation
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return st.none() | _plain(name, inner, info)
    return _plain(name, annotation, info)


# Keys that decide the plan's structure are always drawn, so every sequencer rule is reached often.
STRUCTURAL = {
    "enabled",
    "input_image_path",
    "refiner_enabled",
    "refiner_model_name",
    "hires_enabled",
    "adetailer_tab_enable",
    "adetailer_model",
    "adetailer_use_checkpoint",
    "adetailer_checkpoint",
}


def valid_dict(model: type[BaseModel], skip: tuple[str, ...] = ()) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts that ``model`` accepts: the STRUCTURAL keys and any subset of the others."""
    fields = {name: _field(name, info) for name, info in model.model_fields.items() if name not in skip}
    return st.fixed_dictionaries(
        {k: v for k, v in fields.items() if k in STRUCTURAL},
        optional={k: v for k, v in fields.items() if k not in STRUCTURAL},
    )


@st.composite
def valid_unit(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(valid_dict(ADetailerUnit))
    low, high = data.get("adetailer_mask_min_ratio", 0.0), data.get("adetailer_mask_max_ratio", 1.0)
    if low > high:
        data["adetailer_mask_min_ratio"], data["adetailer_mask_max_ratio"] = high, low
    return data


def _one_mask_source(data: dict[str, Any]) -> dict[str, Any]:
    """mask_path and mask_from_alpha are two sources for one mask: a valid config sets one."""
    if data.get("mask_path") is not None and data.get("mask_from_alpha"):
        return {**data, "mask_from_alpha": False}
    return data


def _with_units(data: dict[str, Any], units: list[dict[str, Any]] | None) -> dict[str, Any]:
    return data if units is None else {**data, "units": units}


adetailer_valid = st.builds(
    _with_units,
    valid_dict(ADetailerConfig, skip=("units",)),
    st.none() | st.lists(valid_unit(), min_size=1, max_size=3),
)
valid_config_dicts = st.builds(
    lambda top, sections, version: {**top, **sections, **version},
    valid_dict(RunConfig, skip=("schema_version", *SECTIONS)),
    st.fixed_dictionaries(
        {
            "txt2img": valid_dict(Txt2ImgConfig),
            "img2img": valid_dict(Img2ImgConfig).map(_one_mask_source),
            "upscale": valid_dict(UpscaleConfig),
            "adetailer": adetailer_valid,
        }
    ),
    st.sampled_from([{}, {"schema_version": 1}]),
)
valid_configs = valid_config_dicts.map(RunConfig.from_dict)

# -- mutations of a valid config ---------------------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


@st.composite
def mutated_configs(draw: st.DrawFn) -> Any:
    data = draw(valid_configs).model_dump(mode="json")
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(data)
        if not paths:
            return draw(json_values)
        path = draw(st.sampled_from(paths))
        parent: Any = data
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "add_key"]))
        if action == "replace":
            parent[last] = draw(json_values)
        elif action == "delete" and isinstance(parent, dict):
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(json_keys)] = draw(json_values)
    return data


# -- helpers -----------------------------------------------------------------------------------


def assert_teaches(error: ConfigError) -> None:
    assert error.problems, "ConfigError without problems"
    for problem in error.problems:
        assert isinstance(problem.field, str)
        assert isinstance(problem.message, str) and problem.message.strip(), problem
    assert str(error).strip()


def load_or_error(load: Any, value: Any) -> RunConfig | None:
    try:
        return load(value)
    except ConfigError as error:
        assert_teaches(error)
        return None


# -- (a) anything JSON-like ----------------------------------------------------------------------

any_config_like = st.one_of(json_values, top_keyed, mutated_configs())


@FUZZ
@given(any_config_like)
def test_from_dict_raises_only_config_error(data: Any) -> None:
    before = json.dumps(data, sort_keys=True)
    config = load_or_error(RunConfig.from_dict, data)
    assert json.dumps(data, sort_keys=True) == before, "from_dict changed its input"
    if config is not None:
        assert RunConfig.from_json(config.to_json()) == config


@FUZZ
@given(any_config_like)
def test_from_json_raises_only_config_error(data: Any) -> None:
    load_or_error(RunConfig.from_json, json.dumps(data))


# -- (b) raw bytes and text ----------------------------------------------------------------------


@st.composite
def damaged_json(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(valid_configs).to_json(indent=draw(st.sampled_from([None, 2]))).encode("utf-8"))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[at:]
            if not raw:
                break
        else:
            raw[at:at] = draw(st.binary(min_size=1, max_size=3))
    return bytes(raw)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300), damaged_json()))
def test_from_json_on_raw_input_raises_only_config_error(raw: bytes | str) -> None:
    load_or_error(RunConfig.from_json, raw)


# -- (c) stage plans -----------------------------------------------------------------------------

EXAMPLES = [
    {},
    {"txt2img": {"enabled": False}, "adetailer": {"enabled": True}},
    {"txt2img": {"enabled": False}},
    {"txt2img": {"enabled": False}, "img2img": {"enabled": True}, "input_image_path": "in.png"},
    {"txt2img": {"enabled": False}, "upscale": {"enabled": True}, "input_image_path": " "},
    {"img2img": {"enabled": True}, "upscale": {"enabled": True}, "adetailer": {"enabled": True}},
    {"txt2img": {"refiner_enabled": True, "hires_enabled": True, "refiner_model_name": "r"}},
]


def _with_examples(test: Any) -> Any:
    for data in EXAMPLES:
        test = example(RunConfig.from_dict(data))(test)
    return test


def _resolves(dump: dict[str, Any], field: str) -> bool:
    node: Any = dump
    for part in field.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            if not isinstance(node, list) or index >= len(node):
                return False
            node = node[index]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return False
    return True


@FUZZ
@_with_examples
@given(valid_configs)
def test_valid_config_gives_plan_or_config_error(config: RunConfig) -> None:
    try:
        plan = StageSequencer().build_execution_plan(config, check_files=False)
    except ConfigError as error:
        assert_teaches(error)
        dump = config.model_dump(mode="json")
        for problem in error.problems:
            assert problem.field == "" or _resolves(dump, problem.field), f"no such field: {problem.field}"
        return
    names = plan.names
    assert len(plan) > 0
    assert all(isinstance(n, StageName) for n in names)
    order = [CANONICAL_ORDER.index(n) for n in names]
    assert order == sorted(set(order)), f"not in canonical order (or repeated): {names}"
    assert StageName.ADETAILER not in names[:-1], "ADetailer must be last"
    assert names != (StageName.ADETAILER,), "ADetailer cannot run alone"
    assert {n.value for n in names} <= {"txt2img", "img2img", "upscale", "adetailer"}  # no refiner/hires
    assert [s.index for s in plan.stages] == list(range(len(plan)))
    for stage in plan.stages:
        assert stage.stage_config == getattr(config, stage.stage.value)
        if stage.stage is not StageName.TXT2IMG:
            assert not (stage.refiner_enabled or stage.hires_enabled)
    enabled = [n for n in CANONICAL_ORDER if getattr(config, n.value).enabled]
    assert list(names) == enabled
    if names[0] is StageName.TXT2IMG:
        assert plan.input_image_path is None
    else:
        assert plan.input_image_path is not None and plan.input_image_path.strip()
        assert plan.input_image_path == config.input_image_path


# -- (d) round trip ------------------------------------------------------------------------------


@FUZZ
@given(valid_configs, st.sampled_from([None, 0, 2, 4]))
def test_valid_config_round_trips(config: RunConfig, indent: int | None) -> None:
    text = config.to_json(indent=indent)
    again = RunConfig.from_json(text)
    assert again == config
    assert again.to_json(indent=indent) == text
    assert RunConfig.from_json(text.encode("utf-8")) == config
    assert RunConfig.from_dict(config.model_dump(mode="json")) == config
