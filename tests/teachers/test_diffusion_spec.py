"""The diffusion teacher's spec: options typed and checked before any pipeline is touched."""
import pytest

from e2gan.errors import InputError
from e2gan.teachers.diffusion_spec import parse_spec


def test_spec_parsing_and_errors():
    model, opts = parse_spec("diffusers:timbrooks/instruct-pix2pix?steps=20&guidance_scale=7&"
                             "negative_prompt=blurry+low+quality&safety_checker=off&scheduler=DDIMScheduler")
    assert model == "timbrooks/instruct-pix2pix"
    assert opts == {"steps": 20, "guidance_scale": 7.0, "negative_prompt": "blurry low quality",
                    "safety_checker": False, "scheduler": "DDIMScheduler"}
    assert parse_spec("diffusers:/data/ip2p") == ("/data/ip2p", {})
    for bad, match in [("diffusers:", "a model after"), ("diffusers:m?stepz=3", "one of pipeline"),
                       ("diffusers:m?steps=0", "integer >= 1"), ("diffusers:m?strength=2", r"\(0, 1\]"),
                       ("diffusers:m?dtype=int8", "float16"), ("diffusers:m?steps=2&steps=3", "at most once"),
                       ("diffusers:m?pipeline=a.b", "class name"), ("diffusers:m?device=tpu", "cuda:N")]:
        with pytest.raises(InputError, match=match):
            parse_spec(bad)
