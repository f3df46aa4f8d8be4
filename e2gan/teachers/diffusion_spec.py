"""The diffusion teacher's spec: ``diffusers:<model>[?key=value&key=value...]`` parsed and typed.

The options and their meaning are listed in ``e2gan.teachers.diffusion``; values are checked
here (types and ranges) before any pipeline class or weight is touched.
"""
from __future__ import annotations

import re
from urllib.parse import parse_qsl

from e2gan.errors import InputError
from e2gan.data.concepts import TEACHER_SETTINGS, check_teacher_settings

__all__ = ["parse_spec", "DEFAULT_PIPELINE", "OPTION_KEYS", "CALL_ARGS"]

DEFAULT_PIPELINE = "StableDiffusionInstructPix2PixPipeline"
OPTION_KEYS = ("pipeline", "scheduler", "steps", "guidance_scale", "image_guidance_scale", "strength",
               "negative_prompt", "resolution", "device", "dtype", "revision", "variant", "safety_checker",
               "max_batch")
# Teacher setting -> the pipeline __call__ argument it sets.
CALL_ARGS = {"steps": "num_inference_steps", "guidance_scale": "guidance_scale",
             "image_guidance_scale": "image_guidance_scale", "strength": "strength",
             "negative_prompt": "negative_prompt"}


def parse_spec(spec: str) -> tuple[str, dict]:
    """``diffusers:<model>[?k=v&...]`` -> (model, options as typed values)."""
    if not isinstance(spec, str) or not spec.startswith("diffusers:"):
        raise InputError(f"teacher {spec!r}", "teacher", "'diffusers:<model id or folder>[?key=value&...]'")
    body = spec[len("diffusers:"):].strip()
    model, _, query = body.partition("?")
    if not model.strip():
        raise InputError(f"teacher {spec!r}", "teacher", "a model after 'diffusers:' (hub id or local folder)")
    options: dict = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InputError(f"teacher options {query!r}", f"teacher {spec!r}", "key=value pairs joined by '&'") from None
    for key, value in pairs:
        if key not in OPTION_KEYS:
            raise InputError(f"teacher option {key!r}", f"teacher {spec!r}", f"one of {', '.join(OPTION_KEYS)}")
        if key in options:
            raise InputError(f"teacher option {key!r}", f"teacher {spec!r}", "each option at most once")
        options[key] = _typed(key, value, spec)
    return model.strip(), options


def _typed(key: str, value: str, spec: str):
    where = f"teacher {spec!r}"
    try:
        if key in ("steps", "resolution", "max_batch"):
            v = int(value)
            if v < (1 if key == "steps" else 0):
                raise ValueError
            return v
        if key in ("guidance_scale", "image_guidance_scale", "strength"):
            v = float(value)
            check_teacher_settings({key: v}, f"option {key}", where)
            return v
    except ValueError:
        expected = "an integer >= 1" if key == "steps" else (
            "an integer >= 0 (0: default)" if key in ("resolution", "max_batch") else TEACHER_SETTINGS[key])
        raise InputError(f"teacher option {key}={value!r}", where, expected) from None
    if key == "safety_checker":
        if value.lower() not in ("on", "off", "true", "false", "1", "0"):
            raise InputError(f"teacher option {key}={value!r}", where, "on or off")
        return value.lower() in ("on", "true", "1")
    if key == "dtype" and value not in ("auto", "float32", "float16", "bfloat16"):
        raise InputError(f"teacher option {key}={value!r}", where, "auto, float32, float16 or bfloat16")
    if key == "device" and not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?", value):
        raise InputError(f"teacher option {key}={value!r}", where, "auto, cpu, cuda or cuda:N")
    if key in ("pipeline", "scheduler") and not value.isidentifier():
        raise InputError(f"teacher option {key}={value!r}", where, "a diffusers class name")
    return value
