"""Bad-input corpus: every case goes through the CLI's ``main([...])`` and must exit 2 with one line
``error: <what> (<where>): <expected>`` naming the input, print no traceback, leave no partial file
and leave earlier results untouched. Odd-but-valid images are accepted and converted to RGB.

Phone faults (no device, a silent or vanished device, refused pushes, unparsable output, injection
in paths) are covered by ``tests/deploy/test_adb.py``; malformed study specs by
``tests/studies/test_runner.py::test_malformed_spec_is_one_line_exit_2``.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from e2gan.cli import main
from tests.reliability.common import assert_nothing_partial, copy_run, one_error_line, snapshot


def first_record(data: Path, split: str = "test") -> dict:
    lines = (data / "manifest.jsonl").read_text().splitlines()
    return next(json.loads(ln) for ln in lines if json.loads(ln)["split"] == split)


# --- each case: setup(tmp_path, trained) -> (argv, fragments the error line must contain) -------------

def _image_folder(tmp_path, name: str, data: bytes | None = None, img: Image.Image | None = None, **save):
    folder = tmp_path / "imgs"
    folder.mkdir(exist_ok=True)
    Image.new("RGB", (48, 40), (200, 30, 30)).save(folder / "good.png")
    if img is not None:
        img.save(folder / name, **save)
    else:
        (folder / name).write_bytes(data)
    return folder


def _distill_argv(tmp_path, trained, folder):
    return ["distill", "--config", str(trained["cfg"]), "--sources", str(folder),
            "--runs", str(tmp_path / "runs"), "--no-progress"]


def _png_bytes(size=(40, 40)) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def img_zero_byte(tmp_path, trained):
    folder = _image_folder(tmp_path, "empty.png", b"")
    return _distill_argv(tmp_path, trained, folder), ["empty.png", "source image", "a readable image file"]


def img_truncated_png(tmp_path, trained):
    folder = _image_folder(tmp_path, "half.png", _png_bytes()[:300])
    return _distill_argv(tmp_path, trained, folder), ["half.png", "a readable image file"]


def img_text_as_jpeg(tmp_path, trained):
    folder = _image_folder(tmp_path, "notes.jpg", b"just some text, not a JPEG\n" * 10)
    return _distill_argv(tmp_path, trained, folder), ["notes.jpg", "a readable image file"]


def img_html_as_webp(tmp_path, trained):
    folder = _image_folder(tmp_path, "page.webp", b"<html><script>alert(1)</script></html>")
    return _distill_argv(tmp_path, trained, folder), ["page.webp", "a readable image file"]


def src_missing_folder(tmp_path, trained):
    return _distill_argv(tmp_path, trained, tmp_path / "absent"), [str(tmp_path / "absent"), "an existing folder"]


def src_folder_is_file(tmp_path, trained):
    (tmp_path / "afile.png").write_bytes(_png_bytes())
    return _distill_argv(tmp_path, trained, tmp_path / "afile.png"), ["afile.png", "a folder, not a file"]


def pair_target_missing(tmp_path, trained):
    run, data = copy_run(trained, tmp_path)
    rec = first_record(data)
    (data / rec["target"]).unlink()
    return ["evaluate", str(run)], [rec["target"], "an existing file listed in manifest.jsonl"]


def pair_source_missing(tmp_path, trained):
    run, data = copy_run(trained, tmp_path)
    rec = first_record(data)
    (data / rec["source"]).unlink()
    return ["evaluate", str(run)], [rec["source"], "an existing file listed in manifest.jsonl"]


def pair_target_tampered(tmp_path, trained):
    run, data = copy_run(trained, tmp_path)
    rec = first_record(data)
    Image.new("RGB", tuple(rec["size"]), "white").save(data / rec["target"])
    return ["evaluate", str(run)], [rec["target"], "sha256 recorded in manifest.jsonl"]


def manifest_hash_tampered(tmp_path, trained):
    run, data = copy_run(trained, tmp_path)
    lines = (data / "manifest.jsonl").read_text().splitlines()
    recs = [json.loads(ln) for ln in lines]
    i = next(i for i, r in enumerate(recs) if r["split"] == "test")
    recs[i]["target_sha256"] = "0" * 64
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return ["evaluate", str(run)], [recs[i]["target"], "sha256 recorded in manifest.jsonl"]


def manifest_path_escape(tmp_path, trained):
    run, data = copy_run(trained, tmp_path)
    recs = [json.loads(ln) for ln in (data / "manifest.jsonl").read_text().splitlines()]
    recs[0]["target"] = "../../outside.png"
    (data / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    return ["evaluate", str(run)], ["../../outside.png", "paths inside the data folder"]


def manifest_corrupt_line(tmp_path, trained):
    run, data = copy_run(trained, tmp_path)
    lines = (data / "manifest.jsonl").read_text().splitlines()
    lines[1] = '{"concept": "hue-120", "source_id'
    (data / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return ["evaluate", str(run)], ["manifest.jsonl:2", "one JSON object per line"]


def manifest_missing(tmp_path, trained):
    run, data = copy_run(trained, tmp_path)
    (data / "manifest.jsonl").unlink()
    return ["evaluate", str(run)], [str(data / "manifest.jsonl"), "a manifest.jsonl written by distillation"]


def _config_case(name: str, text: str, fragments):
    def setup(tmp_path, trained):
        path = tmp_path / "bad.toml"
        path.write_text(text)
        return ["distill", "--config", str(path), "--runs", str(tmp_path / "runs"), "--no-progress"], \
            [str(path) if name != "cfg_unknown_preset" else "--preset", *fragments]
    setup.__name__ = name
    return setup


cfg_malformed_toml = _config_case("cfg_malformed_toml", 'preset = "tiny"\n[train\nsteps = 3\n', ["malformed TOML", "line 2"])
cfg_unknown_key = _config_case("cfg_unknown_key", '[train]\nstepz = 3\n', ["unknown key 'train.stepz'"])
cfg_unknown_section = _config_case("cfg_unknown_section", '[trian]\nsteps = 3\n', ["trian"])
cfg_zero_batch = _config_case("cfg_zero_batch", '[train]\nbatch_size = 0\n', ["'train.batch_size' = 0", "a positive number"])
cfg_negative_lr = _config_case("cfg_negative_lr", '[train]\nlr_g = -0.1\n', ["'train.lr_g' = -0.1", "a positive number"])
cfg_wrong_type = _config_case("cfg_wrong_type", '[data]\nresolution = "big"\n', ["'data.resolution' = 'big'"])
cfg_unknown_preset = _config_case("cfg_unknown_preset", 'preset = "huge"\n', ["unknown preset 'huge'"])


def cfg_flag_out_of_range(tmp_path, trained):
    return ["distill", "--batch-size", "-4", "--runs", str(tmp_path / "runs")], \
        ["'train.batch_size' = -4", "command line", "a positive number"]


def concept_path_traversal(tmp_path, trained):
    return ["adapt", "--config", str(trained["cfg"]), "--concept", "../x", "--runs", str(tmp_path / "runs"),
            "--no-progress"], ["concept name '../x'", "--concept"]


def ckpt_wrong_width(tmp_path, trained):
    run, _ = copy_run(trained, tmp_path)
    meta = json.loads((run / "model.json").read_text())
    meta["model"]["width"] = 16  # the weights were trained at width 8
    (run / "model.json").write_text(json.dumps(meta))
    return ["evaluate", str(run)], [str(run / "generator.safetensors"), "weights do not fit the architecture",
                                    "width 16"]


def ckpt_not_safetensors(tmp_path, trained):
    run, _ = copy_run(trained, tmp_path)
    (run / "generator.safetensors").write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    return ["evaluate", str(run)], [str(run / "generator.safetensors"), "safetensors"]


def ckpt_truncated_last(tmp_path, trained):
    run, _ = copy_run(trained, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    (run / "train.json").unlink()  # the run looks unfinished, so it resumes from last.ckpt
    return ["train-base", "--config", str(trained["cfg"]), "--runs", str(tmp_path / "runs"), "--run-dir", str(run),
            "--no-progress"], [str(last), "weights_only=True"]


def out_runs_under_a_file(tmp_path, trained):
    (tmp_path / "somefile").write_text("not a folder")
    return ["distill", "--config", str(trained["cfg"]), "--runs", str(tmp_path / "somefile" / "sub"),
            "--no-progress"], [str(tmp_path / "somefile"), "Not a directory", "not files"]


def out_study_runs_under_a_file(tmp_path, trained):
    (tmp_path / "somefile").write_text("not a folder")
    return ["study", "run", str(_spec(tmp_path)), "--runs", str(tmp_path / "somefile" / "sub"), "--no-progress"], \
        [str(tmp_path / "somefile"), "Not a directory"]


def _spec(tmp_path) -> Path:
    spec = tmp_path / "mini.toml"
    spec.write_text('name = "mini"\nmetric = "psnr"\nconcepts = ["hue-60"]\nseeds = [0]\n'
                    '[arms.e2gan]\nadapt = { method = "lora" }\n')
    return spec


def storage_unreachable(tmp_path, trained):
    url = "postgresql+psycopg2://alice:hunter2@127.0.0.1:1/studies"
    return ["study", "status", str(_spec(tmp_path)), "--storage", url], ["cannot open study storage",
                                                                       "alice:***@127.0.0.1:1"]


def storage_bad_url(tmp_path, trained):
    return ["study", "status", str(_spec(tmp_path)), "--storage", "nosuchdb://x/y"], ["cannot open study storage"]


def teacher_bare_name(tmp_path, trained):
    return ["distill", "--teacher", "os", "--runs", str(tmp_path / "runs")], ["teacher 'os'", "module:callable"]


def teacher_missing_module(tmp_path, trained):
    return ["distill", "--teacher", "no_such_module_xyz:make", "--runs", str(tmp_path / "runs")], \
        ["no_such_module_xyz:make", "an importable module"]


# --- phone faults through `e2gan latency --backend adb`: the fake phone of tests/deploy on loopback ------

_PHONES: list = []  # fake phones started by a case, stopped after the test (see _stop_fake_phones)


def _phone_argv(tmp_path, serial: str) -> list[str]:
    """A bare .tflite, a fake benchmark_model and an adb key, all made before the snapshot."""
    from e2gan.deploy.adb_session import load_adb_key
    from tests.deploy.conftest import write_fake_elf

    model = tmp_path / "model.tflite"
    model.write_bytes(os.urandom(20_000))
    binary = write_fake_elf(tmp_path / "benchmark_model")
    key = tmp_path / "adbkey"
    load_adb_key(key)
    return ["latency", str(model), "--backend", "adb", "--serial", serial, "--binary", str(binary),
            "--adb-key", str(key), "--timeout", "5"]


def _fake_phone(output: str, **kw):
    from tests.deploy.fake_adb_device import FakeAdbDevice

    phone = FakeAdbDevice(output, **kw).start()
    _PHONES.append(phone)
    return phone


def phone_none_on_port(tmp_path, trained):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return _phone_argv(tmp_path, f"127.0.0.1:{port}"), ["no device", f"(127.0.0.1:{port})", "an adb daemon listening"]


def phone_drops_mid_run(tmp_path, trained):
    from tests.deploy.conftest import golden

    phone = _fake_phone(golden("tf2_10_info_enotation_crlf.txt"), on_benchmark="partial-drop")
    return _phone_argv(tmp_path, phone.serial), [
        "device disconnected during benchmark_model", f"({phone.serial})", "raw output so far (",
        f"bytes) saved to {tmp_path / 'latency' / 'adb-'}"]


def phone_output_unparseable(tmp_path, trained):
    phone = _fake_phone("Segmentation fault\n")
    return _phone_argv(tmp_path, phone.serial), [
        "benchmark_model output did not parse", f"({phone.serial})", "Segmentation fault",
        f"raw output saved to {tmp_path / 'latency' / 'adb-'}"]


@pytest.fixture(autouse=True)
def _stop_fake_phones():
    yield
    while _PHONES:
        _PHONES.pop().stop()


CASES = [img_zero_byte, img_truncated_png, img_text_as_jpeg, img_html_as_webp, src_missing_folder,
         src_folder_is_file, pair_target_missing, pair_source_missing, pair_target_tampered,
         manifest_hash_tampered, manifest_path_escape, manifest_corrupt_line, manifest_missing,
         cfg_malformed_toml, cfg_unknown_key, cfg_unknown_section, cfg_zero_batch, cfg_negative_lr,
         cfg_wrong_type, cfg_unknown_preset, cfg_flag_out_of_range, concept_path_traversal, ckpt_wrong_width,
         ckpt_not_safetensors, ckpt_truncated_last, out_runs_under_a_file, out_study_runs_under_a_file,
         storage_unreachable, storage_bad_url, teacher_bare_name, teacher_missing_module,
         phone_none_on_port, phone_drops_mid_run, phone_output_unparseable]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_exits_2_with_one_line_and_leaves_nothing(case, trained, tmp_path, capsys):
    argv, fragments = case(tmp_path, trained)
    before, before_trained = snapshot(tmp_path), snapshot(trained["runs"])
    capsys.readouterr()
    assert main(argv) == 2
    line = one_error_line(capsys)
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    after = snapshot(tmp_path)
    # Earlier results untouched: every file that existed is byte-identical; new files are whole.
    assert {k: after.get(k) for k in before} == before
    assert snapshot(trained["runs"]) == before_trained
    assert_nothing_partial(tmp_path, skip=before)


# --- odd but valid images are accepted and converted -----------------------------------------------

def _cmyk():
    return Image.new("CMYK", (40, 40), (0, 200, 200, 0))


def _sixteen_bit():
    a = (np.linspace(0, 65535, 40 * 40).reshape(40, 40)).astype(np.uint16)
    return Image.fromarray(a)  # mode I;16


def _palette():
    img = Image.new("P", (40, 40))
    img.putpalette([i % 256 for i in range(768)])
    img.paste(7, (0, 0, 20, 40))
    return img


def _alpha():
    img = Image.new("RGBA", (40, 40), (0, 0, 255, 0))  # fully transparent blue: composited on white
    img.paste((255, 0, 0, 255), (0, 0, 20, 40))
    return img


def _tiny():
    return Image.new("RGB", (1, 1), (10, 200, 30))


@pytest.mark.parametrize("name,make,fmt,white_half", [
    ("cmyk.jpg", _cmyk, "JPEG", False), ("grey16.png", _sixteen_bit, "PNG", False),
    ("palette.png", _palette, "PNG", False), ("alpha.png", _alpha, "PNG", True), ("tiny.png", _tiny, "PNG", False),
])
def test_odd_images_are_converted_to_rgb(name, make, fmt, white_half, trained, tmp_path, capsys):
    folder = _image_folder(tmp_path, name, img=make(), format=fmt)
    assert main(_distill_argv(tmp_path, trained, folder)) == 0
    assert capsys.readouterr().out.strip().startswith("distilled ")
    data = next((tmp_path / "runs" / "data").iterdir())
    src = data / "sources" / f"{Path(name).stem}.png"
    with Image.open(src) as im:
        assert im.mode == "RGB" and im.size == (32, 32)
        a = np.asarray(im)
    if white_half:  # transparent pixels became white, not black
        assert a[:, -4:].min() >= 250
    assert_nothing_partial(tmp_path)


# --- disk full while writing: one line, nothing partial, earlier results kept, rerun completes --------

def test_disk_full_mid_distill_then_resume(trained, tmp_path, capsys, monkeypatch):
    import e2gan.io

    runs = tmp_path / "runs"
    argv = ["distill", "--config", str(trained["cfg"]), "--runs", str(runs), "--no-progress"]
    real_replace, calls = os.replace, {"n": 0}

    def replace_until_full(src, dst):
        calls["n"] += 1
        if calls["n"] > 40:
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(e2gan.io.os, "replace", replace_until_full)
    capsys.readouterr()
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "free space" in line and str(runs) in line
    assert_nothing_partial(runs)
    kept = snapshot(runs)
    assert any(k.startswith("data/") and "/targets/" in k for k in kept)  # work done before the disk filled

    monkeypatch.setattr(e2gan.io.os, "replace", real_replace)
    assert main(argv) == 0
    after = snapshot(runs)
    for k, digest in kept.items():  # nothing written before the fault was rewritten differently
        if k.endswith(".png"):
            assert after[k] == digest, k
    assert_nothing_partial(runs)
    # Same data as an uninterrupted run.
    ref = snapshot(trained["data"])
    got = snapshot(next((runs / "data").iterdir()))
    for k in ("manifest.jsonl", "teacher.json"):
        assert got[k] == ref[k], k
    assert {k: v for k, v in got.items() if k.endswith(".png")} == {k: v for k, v in ref.items() if k.endswith(".png")}


def test_disk_full_writing_result_keeps_the_previous_result(trained, tmp_path, capsys, monkeypatch):
    import e2gan.io

    run, _ = copy_run(trained, tmp_path)
    before = (run / "result.json").read_bytes()

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(e2gan.io.os, "replace", full)
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and str(run) in line
    assert (run / "result.json").read_bytes() == before
    assert_nothing_partial(run)


# --- adaptation and merge inputs (issue 4): checked before anything is distilled, trained or written --

def merge_adapter_other_base(tmp_path, trained):
    """A real adapter saved against a different base (one weight changed), merged onto the trained base."""
    import torch

    from e2gan.nets.lora import LoraSpec, add_lora, save_adapter
    from e2gan.config import ModelConfig
    from e2gan.nets.registry import load_generator, save_generator

    g, meta = load_generator(trained["run"])
    with torch.no_grad():
        next(g.parameters()).add_(1.0)
    other = tmp_path / "other-base"
    other.mkdir()
    save_generator(other, g, ModelConfig(**meta["model"]), meta["concepts"])
    ids = g.concepts.add_concepts(1)
    model = add_lora(g, LoraSpec(ranks={"tb": 2}))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    save_adapter(adapter, model, LoraSpec(ranks={"tb": 2}), "hue-60", ids, other / "generator.safetensors")
    return ["merge", "--base", str(trained["run"]), "--adapter", str(adapter)], \
        ["trained on another base", str(adapter), str(trained["run"]), str(adapter / "adapter.json")]


def merge_adapter_missing(tmp_path, trained):
    return ["merge", "--base", str(trained["run"]), "--adapter", str(trained["run"])], \
        ["no adapter", str(trained["run"]), "adapter.json"]


def adapt_unknown_concept(tmp_path, trained):
    return ["adapt", "--config", str(trained["cfg"]), "--concept", "nosuch", "--runs", str(tmp_path / "runs"),
            "--no-progress"], ["'nosuch'", "--concept", "new concepts of this configuration: ['hue-60']"]


def adapt_base_concept(tmp_path, trained):
    return ["adapt", "--config", str(trained["cfg"]), "--concept", "hue-120", "--runs", str(tmp_path / "runs"),
            "--no-progress"], ["'hue-120'", "--concept", "['hue-60']"]


def describe_negative_resolution(tmp_path, trained):
    return ["describe", "--resolution", "-8"], ["resolution -8", "--resolution", "a positive multiple of 8"]


def describe_zero_resolution(tmp_path, trained):  # was silently replaced by the preset's 64
    return ["describe", "--resolution", "0"], ["resolution 0", "--resolution", "a positive multiple of 8"]


ADAPT_CASES = [merge_adapter_other_base, merge_adapter_missing, adapt_unknown_concept, adapt_base_concept,
               describe_negative_resolution, describe_zero_resolution]


@pytest.mark.parametrize("case", ADAPT_CASES, ids=[c.__name__ for c in ADAPT_CASES])
def test_bad_adapt_input_exits_2_and_writes_nothing(case, trained, tmp_path, capsys):
    before = snapshot(tmp_path)
    test_bad_input_exits_2_with_one_line_and_leaves_nothing(case, trained, tmp_path, capsys)
    # Nothing at all was written: no data distilled, no base trained, no merged model.
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before or k.startswith(("other-base/", "adapter/"))} == after
    assert not (tmp_path / "runs").exists() and not (tmp_path / "adapter" / "merged").exists()
