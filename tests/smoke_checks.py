"""What `make smoke-paper` holds after its stages ran: the paper configuration really ran at 256².

``check(out, values)`` raises ``AssertionError`` on the first failed check and returns the list of
checks that held, in words (written into ``smoke-paper.json``).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from PIL import Image

from e2gan.config import CRUCIAL


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _check_labels(result: dict, where: str) -> None:
    p = result["protocol"]
    assert p["backbone"]["name"] == "inception", f"{where}: backbone {p['backbone']['name']}"
    assert p["backbone"].get("stand_in", "").startswith("stand-in, random weights"), f"{where}: Inception unlabelled"
    assert p["perceptual"] == "lpips-alex", f"{where}: perceptual {p['perceptual']}"
    assert p["perceptual_weights"].get("stand_in", "").startswith("stand-in"), f"{where}: AlexNet unlabelled"
    assert p.get("teacher_stand_in", "").startswith("stand-in"), f"{where}: teacher unlabelled"
    assert p["resolution"] == 256, f"{where}: resolution {p['resolution']}"
    m = result["metrics"]["mean_over_concepts"]
    for key in ("fid", "kid_mean", "perceptual", "psnr", "ssim"):
        assert m.get(key) is not None and math.isfinite(m[key]), f"{where}: {key} = {m.get(key)}"


def _check_paper_model(cfg: dict, where: str) -> None:
    model, disc = cfg["model"], cfg["disc"]
    assert (model["arch"], model["width"], model["norm"], model["lowres_skip"]) == ("e2gan", 64, "instance", False), \
        f"{where}: model {model}"
    assert (disc["ndf"], disc["n_layers"]) == (64, 3), f"{where}: discriminator {disc} (70x70 PatchGAN: ndf 64, 3 layers)"
    assert cfg["data"]["resolution"] == 256 and cfg["preset"] == "paper", f"{where}: {cfg['preset']} at {cfg['data']['resolution']}"


def check(out: str | Path, values: dict) -> list[str]:
    from tests.smoke_paper import BASE_CONCEPTS, CONCEPT, REDUCED

    out, runs = Path(out), Path(values["RUNS"])
    done = []

    data = next((runs / "data").glob("paper-*"))
    teacher = _json(data / "teacher.json")
    assert teacher["name"] == "diffusers" and teacher["resolution"] == 256, teacher
    assert teacher.get("stand_in", "").startswith("stand-in"), "teacher.json does not label the stand-in teacher"
    pairs = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines() if line.strip()]
    n_sources = len(list(Path(values["SOURCES"]).glob("*.png")))
    concepts = sorted({p["concept"] for p in pairs})
    assert concepts == sorted(BASE_CONCEPTS + [CONCEPT]) and len(pairs) == n_sources * len(concepts), \
        (concepts, len(pairs), n_sources)
    sizes = {Image.open(data / p["target"]).size for p in pairs}
    assert sizes == {(256, 256)}, f"target sizes {sizes}"
    assert not list(data.glob("manifest-shard-*")) or (data / "manifest.jsonl").is_file()
    done.append(f"distilled {len(pairs)} pairs at 256² in two shards, merged, by the labelled stand-in teacher")

    base = next(runs.glob("base-paper-*"))
    train = _json(base / "train.json")
    steps, batch = REDUCED["train"]["steps"], REDUCED["train"]["batch_size"]
    assert (train["world_size"], train["gan_step"], train["images_seen"]) == (2, steps, steps * batch * 2), train
    base_result = _json(base / "result.json")
    _check_paper_model(base_result["config"], "base")
    _check_labels(base_result, "base result.json")
    assert base_result["cost"]["params_total"] > 6_000_000, base_result["cost"]["params_total"]
    done.append(f"base: width-64 instance-norm E²GAN ({base_result['cost']['params_total']:,} params), "
                f"70×70 PatchGAN, {steps} DDP steps on 2 gloo processes; Inception, LPIPS and teacher labelled stand-ins")

    adapt = runs / f"{CONCEPT}-lora"
    result = _json(adapt / "result.json")
    _check_paper_model(result["config"], "adapt")
    _check_labels(result, "adapt result.json")
    adapter = _json(adapt / "adapter.json")
    assert sorted(adapter["ranks"]) == sorted(CRUCIAL), adapter["ranks"]
    cost = result["cost"]
    assert result["method"] == "lora" and cost["params_trainable"] < 0.02 * cost["params_total"], cost
    done.append(f"LoRA on {','.join(CRUCIAL)}: {cost['params_trainable']:,} of {cost['params_total']:,} params trained")

    export = result["export"]["model"]
    assert export["resolution"] == [256, 256] and export["parity_max_abs_diff"] <= export["parity_tol"], export
    assert Path(export["path"]).is_file()
    done.append(f"exported at 256², parity max |diff| {export['parity_max_abs_diff']:.1e} (tolerance {export['parity_tol']:g})")

    lat = result["latency"]
    for backend in ("torch", "litert"):
        assert lat[backend]["median_ms"] > 0, lat[backend]
    done.append(f"latency at 256²: torch {lat['torch']['median_ms']:.0f} ms, LiteRT {lat['litert']['median_ms']:.0f} ms")

    index = Path(values["REPORTS"]) / "paper" / "index.html"
    page = (index.parent / "base" / "index.html").read_text()
    assert index.is_file() and "stand-in" in page, "report missing or the stand-ins unlabelled in it"
    done.append(f"report written: {index}")
    return done
