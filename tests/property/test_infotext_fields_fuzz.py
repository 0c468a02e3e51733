"""Property tests of the infotext of A1111's seed, RNG, emphasis, sampler-parameter, hires-override
and noise-multiplier fields: config -> infotext -> config gives the fields back, whatever the
sampler the text is as stable as the config, and hostile values raise only ConfigError."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stablenew_qt.core.config import RunConfig
from stablenew_qt.core.errors import ConfigError
from stablenew_qt.core.executor import StageInfo
from stablenew_qt.core.infotext import build_infotext, infotext_to_config
from stablenew_qt.core.metadata.a1111 import read_a1111_text
from stablenew_qt.core.samplers import SAMPLERS, SCHEDULERS
from stablenew_qt.core.sequencer import StageName

VERSION = "0.1.0"
SD15 = StageInfo(model_name="v1-5-pruned-emaonly", model_hash="6ce0161689")


def make(**fields: Any) -> RunConfig:
    data: dict[str, Any] = {
        "prompt": "a (red:1.2) lighthouse",
        "seed": 1234,
        "txt2img": {
            "model": "v1-5-pruned-emaonly",
            "sampler": "Euler a",
            "scheduler": "Automatic",
            "steps": 20,
            "width": 512,
            "height": 512,
        },
    }
    for key, value in fields.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) and key in data else value
    return RunConfig.from_dict(data)


def build(config: RunConfig) -> str:
    return build_infotext(config, seed=config.seed, stage_infos={StageName.TXT2IMG: SD15}, version=VERSION)


_SEED = st.integers(0, 2**32 - 1)


@settings(max_examples=120, deadline=None, database=None)
@given(
    subseed=_SEED,
    strength=st.floats(0.01, 1.0),
    resize=st.tuples(st.integers(1, 8192), st.integers(1, 8192)),
    rng=st.sampled_from(["GPU", "CPU", "NV"]),
    ensd=_SEED,
    emphasis=st.sampled_from(["Original", "No norm", "Ignore", "None"]),
    eta=st.floats(0.0, 1.0),
    s_noise=st.floats(0.0, 1.1),
    s_churn=st.floats(0.0, 100.0),
    s_tmin=st.floats(0.0, 10.0),
    s_tmax=st.floats(0.0, 999.0),
    flags=st.tuples(st.booleans(), st.booleans()),
    hires_sampler=st.none() | st.sampled_from(["DPM++ 2M", "Heun", "DDIM"]),
    hires_scheduler=st.none() | st.sampled_from(["Karras", "Exponential", "Simple"]),
    noise_multiplier=st.floats(0.0, 1.5),
)
def test_config_infotext_config_round_trip(
    subseed: int,
    strength: float,
    resize: tuple[int, int],
    rng: str,
    ensd: int,
    emphasis: str,
    eta: float,
    s_noise: float,
    s_churn: float,
    s_tmin: float,
    s_tmax: float,
    flags: tuple[bool, bool],
    hires_sampler: str | None,
    hires_scheduler: str | None,
    noise_multiplier: float,
) -> None:
    # Euler a takes eta, s_noise and ENSD; Euler (the img2img pass) the churn parameters, so with
    # values off their defaults every one is written, and must come back exactly.
    config = make(
        subseed=subseed,
        subseed_strength=strength,
        seed_resize_from_w=resize[0],
        seed_resize_from_h=resize[1],
        rng_source=rng,
        eta_noise_seed_delta=ensd,
        emphasis=emphasis,
        sampler_settings={
            "eta": eta if eta != 1.0 else None,
            "s_noise": s_noise,
            "s_churn": s_churn,
            "s_tmin": s_tmin,
            "s_tmax": s_tmax,
            "sgm_noise_multiplier": flags[0],
            "always_discard_next_to_last_sigma": flags[1],
        },
        txt2img={"hires_enabled": True, "hires_sampler": hires_sampler, "hires_scheduler": hires_scheduler},
        img2img={"enabled": True, "sampler": "Euler", "noise_multiplier": noise_multiplier},
    )
    back = infotext_to_config(build(config))
    if eta == 0.0:  # eta 0 leaves no extra noise, so A1111 writes no ENSD
        config = config.model_copy(update={"eta_noise_seed_delta": 0})
    if hires_sampler == "DDIM":  # a timestep sampler: A1111 writes no schedule type for it
        config = config.model_copy(
            update={"txt2img": config.txt2img.model_copy(update={"hires_scheduler": None})}
        )
    if hires_scheduler is None and hires_sampler == "DPM++ 2M":  # Automatic, resolved to DPM++ 2M's Karras
        config = config.model_copy(
            update={"txt2img": config.txt2img.model_copy(update={"hires_scheduler": "Karras"})}
        )
    assert back == config


@settings(max_examples=150, deadline=None, database=None)
@given(
    sampler=st.sampled_from(SAMPLERS),
    schedule=st.sampled_from(SCHEDULERS),
    hires_sampler=st.none() | st.sampled_from(SAMPLERS),
    hires_scheduler=st.none() | st.sampled_from(SCHEDULERS),
    img2img_sampler=st.none() | st.sampled_from(SAMPLERS),
    eta=st.none() | st.floats(0.0, 1.0),
    s_churn=st.sampled_from([0.0, 0.5]),
    s_tmax=st.sampled_from([0.0, 5.0]),
    s_noise=st.sampled_from([1.0, 0.9]),
    flags=st.tuples(st.booleans(), st.booleans()),
    ensd=st.sampled_from([0, 31337]),
    emphasis=st.sampled_from(["Original", "No norm", "Ignore", "None"]),
)
def test_infotext_is_a_fixed_point_for_every_sampler(
    sampler: str,
    schedule: str,
    hires_sampler: str | None,
    hires_scheduler: str | None,
    img2img_sampler: str | None,
    eta: float | None,
    s_churn: float,
    s_tmax: float,
    s_noise: float,
    flags: tuple[bool, bool],
    ensd: int,
    emphasis: str,
) -> None:
    # Whatever a config leaves unwritten (a default, or a parameter no sampler that ran takes), the
    # config read back writes the very same text: nothing is lost or invented on the way.
    config = make(
        eta_noise_seed_delta=ensd,
        emphasis=emphasis,
        sampler_settings={
            "eta": eta,
            "s_churn": s_churn,
            "s_tmax": s_tmax,
            "s_noise": s_noise,
            "sgm_noise_multiplier": flags[0],
            "always_discard_next_to_last_sigma": flags[1],
        },
        txt2img={
            "sampler": sampler,
            "scheduler": schedule,
            "hires_enabled": True,
            "hires_sampler": hires_sampler,
            "hires_scheduler": hires_scheduler,
        },
        img2img={"enabled": True, "sampler": img2img_sampler},
    )
    text = build(config)
    assert build(infotext_to_config(text)) == text


_KEYS = (
    "Variation seed",
    "Variation seed strength",
    "Seed resize from",
    "ENSD",
    "RNG",
    "Emphasis",
    "Eta",
    "Eta DDIM",
    "Sigma churn",
    "Sigma tmin",
    "Sigma tmax",
    "Sigma noise",
    "SGM noise multiplier",
    "Discard penultimate sigma",
    "Hires sampler",
    "Hires schedule type",
    "Hires prompt",
    "Noise multiplier",
)
_VALUES = st.one_of(
    st.sampled_from(
        ["-1", "1e400", "nan", "True", "GPU", "NV", "512x", "0x0", "99999999999", "Use same sampler"]
    ),
    st.text(alphabet=st.sampled_from(list("0123456789.-x eE")), max_size=12),
)


@settings(max_examples=200, deadline=None, database=None)
@given(pairs=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=6))
def test_hostile_values_raise_only_config_error(pairs: dict[str, str]) -> None:
    line = ", ".join(["Steps: 20", "Sampler: Euler", "Seed: 1", *(f"{k}: {v}" for k, v in pairs.items())])
    for read in (infotext_to_config, lambda text: read_a1111_text(text, "test").config):
        with contextlib.suppress(ConfigError):
            read(f"x\n{line}")
