"""Fixtures for deploy tests: an adb key, a fake benchmark_model binary, a tiny run directory."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str) -> str:
    """A recorded output, byte-exact (CRLF kept)."""
    with open(GOLDEN / name, newline="") as f:
        return f.read()


def write_fake_elf(path: Path, size: int = 4096, machine: int = 183) -> Path:
    """An executable file with a 64-bit little-endian ELF header (aarch64 by default)."""
    header = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (2).to_bytes(2, "little") + machine.to_bytes(2, "little")
    path.write_bytes(header + bytes(range(256)) * (size // 256))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def adb_key(tmp_path_factory) -> Path:
    from e2gan.deploy.adb_session import load_adb_key

    key = tmp_path_factory.mktemp("adbkey") / "adbkey"
    load_adb_key(key)
    return key


@pytest.fixture(scope="session")
def other_adb_key(tmp_path_factory) -> Path:
    from e2gan.deploy.adb_session import load_adb_key

    key = tmp_path_factory.mktemp("otherkey") / "adbkey"
    load_adb_key(key)
    return key


@pytest.fixture
def phone_files(tmp_path) -> tuple[Path, Path]:
    """(benchmark_model, model.tflite) to push: a fake ELF binary and some model bytes."""
    binary = write_fake_elf(tmp_path / "benchmark_model", size=200_000)
    model = tmp_path / "model.tflite"
    model.write_bytes(os.urandom(300_000))
    return binary, model


def make_run(run_dir: Path, arch: str = "e2gan", width: int = 8, resolution: int = 32,
             concepts: tuple[str, ...] = ("hue-120", "pixelate"), with_result: bool = True, seed: int = 0) -> Path:
    """A run directory as training leaves it (generator + model.json + config.json [+ result.json])."""
    import torch

    from e2gan.config import ModelConfig
    from e2gan.nets.registry import make_generator, save_generator
    from e2gan.results import make_result, write_result

    torch.manual_seed(seed)
    model = ModelConfig(arch=arch, width=width, attn_heads=2, n_tokens=2, n_blocks=2)
    generator = make_generator(model, n_concepts=len(concepts))
    save_generator(run_dir, generator, model, list(concepts), extra={"kind": "base"})
    (run_dir / "config.json").write_text(json.dumps({"preset": "tiny", "data": {"resolution": resolution}}))
    if with_result:
        write_result(run_dir, make_result(run=run_dir.name, kind="base", metrics={}, protocol={}, cost={},
                                          config={"data": {"resolution": resolution}}, env={}))
    return run_dir


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("runs") / "base-e2gan-w8")


@pytest.fixture(scope="session")
def tiny_export(tiny_run) -> dict:
    """The tiny E2GAN run exported once (slow: one litert-torch conversion)."""
    from e2gan.deploy.run_export import export_run

    return export_run(tiny_run)
