"""Export to .tflite: known-bad layers named in one line (fast), parity of real conversions (slow)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from e2gan.deploy.export import export_tflite
from e2gan.deploy.export_prep import check_exportable
from e2gan.errors import InputError
from e2gan.nets.factory import build_generator

# (kernel, stride, padding, output_padding) -> convertible by litert-torch 0.10.0 (measured, see export.py)
CONV_TRANSPOSE_CASES = {
    (3, 2, 1, 1): False,  # pix2pix: fails to legalize
    (3, 2, 1, 0): False,
    (5, 2, 2, 1): False,
    (4, 2, 2, 0): False,
    (3, 3, 1, 0): False,
    (4, 2, 1, 1): False,  # converts, but wrong numbers
    (4, 2, 1, 0): True,   # DCGAN-style k4 s2 p1
    (6, 2, 2, 0): True,
    (3, 2, 0, 1): True,
    (2, 2, 0, 0): True,
    (3, 1, 1, 0): True,   # stride 1 is an ordinary conv
}


@pytest.mark.parametrize("k, s, p, op", sorted(CONV_TRANSPOSE_CASES))
def test_conv_transpose_precheck_table(k, s, p, op):
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ConvTranspose2d(4, 2, k, s, p, output_padding=op))
    if CONV_TRANSPOSE_CASES[(k, s, p, op)]:
        check_exportable(net)
    else:
        with pytest.raises(InputError, match=rf"^layer '1' \(ConvTranspose2d k{k} s{s} p{p} op{op}\)"):
            check_exportable(net)


def test_pix2pix_transpose_variant_gives_one_line_naming_the_layer(tmp_path):
    g = build_generator("pix2pix", ngf=8, n_blocks=2)
    with pytest.raises(InputError) as e:
        export_tflite(g, tmp_path / "p.tflite", 32)
    msg = str(e.value)
    assert msg.startswith("layer 'up.0' (ConvTranspose2d k3 s2 p1 op1) (export to LiteRT):")
    assert "pix2pix-resize" in msg and "\n" not in msg
    assert not (tmp_path / "p.tflite").exists()


def test_resize_variant_and_e2gan_pass_the_precheck():
    check_exportable(build_generator("pix2pix-resize", ngf=8, n_blocks=2))
    check_exportable(build_generator("e2gan", n_concepts=2, width=8, attn_heads=2, n_tokens=2))


@pytest.mark.parametrize("padding", [(1, 1, 1, 1), (3, 3, 3, 3), (2, 0, 1, 3), (0, 0, 0, 0), (4, 4, 4, 4)])
def test_slice_reflection_pad_equals_reflection_pad(padding):
    from e2gan.deploy.export_prep import SliceReflectionPad2d

    x = torch.randn(2, 3, 5, 7)
    assert torch.equal(SliceReflectionPad2d(padding)(x), nn.ReflectionPad2d(padding)(x))


def test_reflection_pads_are_sliced_on_a_copy():
    from e2gan.deploy.export_prep import SliceReflectionPad2d, slice_reflection_pads

    g = build_generator("e2gan", n_concepts=2, width=8, attn_heads=2, n_tokens=2).eval()
    n = sum(isinstance(m, nn.ReflectionPad2d) for m in g.modules())
    sliced, swapped = slice_reflection_pads(g, copied=False)
    assert swapped == n > 0 and sliced is not g
    assert not any(isinstance(m, nn.ReflectionPad2d) for m in sliced.modules())
    assert sum(isinstance(m, SliceReflectionPad2d) for m in sliced.modules()) == n
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in g.modules()) == n  # the caller's model is untouched
    x, cid = torch.rand(1, 3, 32, 32) * 2 - 1, torch.tensor([1])
    with torch.no_grad():
        assert torch.equal(sliced(x, cid), g(x, cid))


@pytest.mark.parametrize("kwargs, match", [({"quantize": "int4"}, "quantize"), ({"resolution": 0}, "resolution"),
                                           ({"reflect_pad": "edge"}, "reflect_pad"),
                                           ({"parity_tol": 0}, "parity_tol"), ({"concept_id": 5}, "concept id 5"),
                                           ({"out": "model.onnx"}, "ending in .tflite"),
                                           ({"resolution": 36}, "divisible by 8")])
def test_bad_export_arguments_fail_before_converting(tmp_path, kwargs, match):
    g = build_generator("e2gan", n_concepts=2, width=8, attn_heads=2, n_tokens=2).train()
    out = tmp_path / kwargs.pop("out", "m.tflite")
    with pytest.raises(InputError, match=match):
        export_tflite(g, out, kwargs.pop("resolution", 32), **kwargs)
    assert g.training  # the caller's module is left as it was


# ----------------------------------------------------------------------------- real conversions
@pytest.mark.slow
def test_tiny_e2gan_run_exports_with_parity(tiny_export, tiny_run):
    from ai_edge_litert.interpreter import Interpreter

    from e2gan.deploy.export_prep import ConceptBound
    from e2gan.io import sha256_file
    from e2gan.nets.registry import load_generator
    from e2gan.results import read_result

    info = tiny_export
    path = Path(info["path"])
    assert path == tiny_run / "export" / "model.tflite" and path.stat().st_size == info["bytes"] > 0
    assert info["sha256"] == sha256_file(path)
    assert 0 <= info["parity_max_abs_diff"] <= 1e-4 and info["parity_inputs"]["n"] == 3
    assert info["quantize"] is None and info["int8_max_abs_diff"] is None
    assert info["layout"] == "NCHW" and info["input_shape"] == [1, 3, 32, 32]
    assert info["concept"] == "hue-120" and info["concept_id"] == 0
    assert info["litert_torch"] == "0.10.0" and info["seconds"] > 0 and info["macs"] > 0
    assert info["reflect_pad"] == "slices" and info["reflection_pads_sliced"] > 0
    assert info["io"]["inputs"][0]["shape"] == [1, 3, 32, 32]
    # recorded in the run: result.json and a sidecar
    assert read_result(tiny_run)["export"]["model"]["sha256"] == info["sha256"]
    assert json.loads(path.with_suffix(".json").read_text())["sha256"] == info["sha256"]
    # independent check: the file computes the generator for the baked-in concept, not another one
    g, _ = load_generator(tiny_run)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    interp = Interpreter(model_path=str(path))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x.numpy())
    interp.invoke()
    y = interp.get_tensor(interp.get_output_details()[0]["index"])
    with torch.no_grad():
        same, other = ConceptBound(g, 0)(x).numpy(), ConceptBound(g, 1)(x).numpy()
    assert np.abs(y - same).max() <= 1e-4 < np.abs(y - other).max()


@pytest.mark.slow
def test_pix2pix_resize_exports_nhwc_and_int8(tmp_path):
    torch.manual_seed(0)
    g = build_generator("pix2pix-resize", ngf=8, n_blocks=2).eval()
    info = export_tflite(g, tmp_path / "p2p.tflite", 32, nhwc=True, quantize="dynamic-int8")
    assert info["layout"] == "NHWC" and info["io"]["inputs"][0]["shape"] == [1, 32, 32, 3]
    assert info["io"]["outputs"][0]["shape"] == [1, 32, 32, 3]
    assert info["parity_max_abs_diff"] <= 1e-4  # the float conversion, before quantizing
    assert info["int8_max_abs_diff"] > info["parity_max_abs_diff"] and info["int8_max_abs_diff"] < 1.0
    assert info["bytes"] < info["float_bytes"]  # int8 weights
    assert info["concept_id"] is None  # pix2pix takes no concept
    mirror = export_tflite(g, tmp_path / "p2p-mirror.tflite", 32, reflect_pad="mirror-pad")
    assert mirror["reflection_pads_sliced"] == 0 and mirror["parity_max_abs_diff"] <= 1e-4
    x = np.random.default_rng(0).uniform(-1, 1, (1, 3, 32, 32)).astype(np.float32)
    from e2gan.deploy.tflite_run import run_tflite

    sliced = export_tflite(g, tmp_path / "p2p-sliced.tflite", 32)
    (a,), (b,) = run_tflite(sliced["path"], [x]), run_tflite(mirror["path"], [x])
    assert np.abs(a - b).max() <= 1e-5  # the same function either way


@pytest.mark.slow
def test_converter_failure_is_caught_and_the_layer_named(tmp_path):
    g = build_generator("pix2pix", ngf=8, n_blocks=2)
    with pytest.raises(InputError) as e:
        export_tflite(g, tmp_path / "p.tflite", 32, precheck=False)
    msg = str(e.value)
    assert msg.startswith("layer 'up.0' (ConvTranspose2d:") and "litert-torch 0.10.0" in msg
    assert "mhlo.convolution" in msg and "\n" not in msg
    assert not (tmp_path / "p.tflite").exists()


@pytest.mark.slow
def test_parity_failure_writes_nothing(tmp_path, tiny_export, monkeypatch):
    """A model whose conversion does not match: reuse the tiny E2GAN's .tflite for a different net."""
    import e2gan.deploy.export as export_mod

    float_bytes = Path(tiny_export["path"]).read_bytes()
    monkeypatch.setattr(export_mod, "convert_module", lambda module, sample, progress: float_bytes)
    other = build_generator("e2gan", n_concepts=2, width=8, attn_heads=2, n_tokens=2)  # other weights
    out = tmp_path / "m.tflite"
    with pytest.raises(InputError, match=r"export does not match PyTorch \(max abs diff .*\).*<= 0.0001"):
        export_tflite(other, out, 32)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_unmerged_lora_generator_is_merged_on_a_copy(tmp_path):
    from peft import LoraConfig, inject_adapter_in_model
    from peft.tuners.lora import LoraLayer

    torch.manual_seed(0)
    g = build_generator("e2gan", n_concepts=2, width=8, attn_heads=2, n_tokens=2)
    g = inject_adapter_in_model(LoraConfig(r=2, lora_alpha=4, target_modules=["ds.0", "tb.cross_attn.to_v"]), g)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # a non-zero delta, so merging matters
    g.eval()
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = g(x, torch.tensor([1])).numpy()
    info = export_tflite(g, tmp_path / "lora.tflite", 32, concept_id=1)
    assert info["lora_merged"] is True and info["parity_max_abs_diff"] <= 1e-4
    assert any(isinstance(m, LoraLayer) for m in g.modules())  # the caller's model is untouched
    from e2gan.deploy.tflite_run import run_tflite

    (y,) = run_tflite(info["path"], [x.numpy()])
    assert np.abs(y - expected).max() <= 1e-4
