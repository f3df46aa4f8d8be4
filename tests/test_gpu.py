"""What only a CUDA GPU can show: fp16 teacher inference, mixed-precision training, DDP, Inception there.

Skipped without CUDA (the reason says so); `benchmarks/gpu_checks.py` runs them with the GPU timings.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import write_micro_toml

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def test_fp16_instructpix2pix_edits_on_the_gpu():
    from e2gan.teachers import load_teacher
    from tests.tiny_pipelines import ip2p_dir

    teacher = load_teacher(f"diffusers:{ip2p_dir()}?steps=2&device=cuda")
    assert teacher.describe()["dtype"] == "float16" and teacher.device.type == "cuda"
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(4)]
    out = [np.asarray(im, np.float32) for im in teacher.edit(images, "make it a watercolor", [0, 1, 2, 3])]
    assert all(o.shape == (32, 32, 3) and np.isfinite(o).all() and o.std() > 0 for o in out)
    again = [np.asarray(im, np.float32) for im in teacher.edit(images[:1], "make it a watercolor", [0])]
    assert np.abs(again[0] - out[0]).mean() < 2.0  # one seed per image: the batch does not change it


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_base_training(tmp_path, precision):
    cfg = write_micro_toml(tmp_path / "micro.toml", train={"steps": 4, "ckpt_every": 2, "accelerator": "gpu",
                                                           "precision": precision})
    proc = subprocess.run([sys.executable, "-m", "e2gan.cli", "train-base", "--config", str(cfg), "--runs",
                           str(tmp_path / "runs"), "--no-progress"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(next((tmp_path / "runs").glob("base-*/train.json")).read_text())
    assert summary["stopped_by"] == "steps" and summary["gan_step"] == 4, summary
    assert precision.split("-")[0] in summary["precision"] and summary["device"].startswith("cuda"), summary


def test_ddp_on_one_gpu(tmp_path):
    cfg = write_micro_toml(tmp_path / "micro.toml", train={"steps": 4, "ckpt_every": 2})
    proc = subprocess.run([sys.executable, "-m", "e2gan.cli", "train-base", "--config", str(cfg), "--runs",
                           str(tmp_path / "runs"), "--accelerator", "gpu", "--devices", "1", "--strategy", "ddp",
                           "--no-progress"], capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(next((tmp_path / "runs").glob("base-*/train.json")).read_text())
    assert (summary["world_size"], summary["gan_step"]) == (1, 4) and summary["device"].startswith("cuda")


def test_inception_features_on_the_gpu_match_the_cpu(tmp_path, monkeypatch):
    from e2gan.metrics.features import get_backbone
    from tests.stand_ins import save_inception

    monkeypatch.setenv("E2GAN_WEIGHTS", str(tmp_path))
    save_inception(tmp_path)
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (6, 3, 256, 256), dtype=np.uint8))
    cpu, gpu = get_backbone("inception", "cpu")(images), get_backbone("inception", "cuda")(images)
    assert gpu.shape == (6, 2048)
    assert torch.allclose(cpu, gpu, rtol=1e-3, atol=1e-3 * float(cpu.abs().max()))
