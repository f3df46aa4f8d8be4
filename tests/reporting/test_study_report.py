"""The study report on disk: files, escaping, deterministic figures, image grids and the index page."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from e2gan.reporting.study_report import build_figures, slug, summary_line, write_index, write_study_report
from e2gan.reporting.study_context import study_context

from .conftest import EVIL, MAIN_SPEC, grid_cells, make_trials


def _evil(df):
    df = df.copy()
    df.loc[df["concept"] == "sketch", "concept"] = EVIL
    return df


def test_report_files_and_links(main_study, tmp_path):
    spec, df = main_study
    out = tmp_path / "reports" / "tiny" / "main"
    index = write_study_report(spec, df, out, grids=False)
    assert index == out / "index.html"
    for key in ("quality", "per-concept", "cost", "latency"):
        for ext in ("md", "csv", "tex"):
            assert (out / "tables" / f"{key}.{ext}").stat().st_size > 0
    for fig in ("cost-quality", "params-quality", "latency-macs"):
        assert Image.open(out / "figures" / f"{fig}.png").size[0] > 300
    page = index.read_text()
    # self-contained: every figure embedded; every link relative and present on disk
    assert page.count("src='data:image/png;base64,") == 3
    for href in re.findall(r"href='([^']+)'", page):
        assert not href.startswith(("http", "/")) and (out / href).exists(), href
    md = (out / "index.md").read_text()
    assert "67.00 ± 4.97 (N=3)" in md and "](figures/cost-quality.png)" in md
    assert "## Missing runs" in md and "| full | hue-60 | 0 |" in md          # every missing run listed
    csv = (out / "tables" / "quality.csv").read_text().splitlines()
    assert csv[0].startswith("method,fid mean,fid ci95,fid n,fid missing")
    assert (out / "trials.csv").read_text().count("\n") == len(df) + 1


def test_markup_in_a_concept_name_is_escaped(main_study, tmp_path):
    spec, df = main_study
    spec = dict(spec, title="<b>bold</b> & co")
    index = write_study_report(spec, _evil(df), tmp_path / "r", concepts=["hue-60", EVIL])
    page = index.read_text()
    md = (index.parent / "index.md").read_text() + (index.parent / "tables" / "per-concept.md").read_text()
    assert "<script>" not in md and "e2gan / &lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert "<script>" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in page


def test_figures_are_deterministic(main_study, tmp_path):
    spec, df = main_study
    ctx = study_context(spec, df)
    a = build_figures(ctx, tmp_path / "a")
    b = build_figures(ctx, tmp_path / "b")
    assert [f.key for f in a] == ["cost-quality", "params-quality", "latency-macs"]
    for fa, fb in zip(a, b):
        assert hashlib.sha256(fa.path.read_bytes()).digest() == hashlib.sha256(fb.path.read_bytes()).digest()
        pix = np.asarray(Image.open(fa.path).convert("RGB"))
        assert pix.std() > 10                                               # not a blank canvas


@pytest.mark.parametrize("kind, spec_extra, expect", [
    ("ranks", {"arms": {"uniform-1x": {}, "uniform-4x": {}}}, ["rank-budget"]),
    ("layers", {"axes": {"adapt.groups": [["down"], ["tb"]]}}, ["layers", "layers-params"]),
    ("base-model", {"arms": {"representative": {}, "single": {}}}, ["base-model"]),
    ("data-count", {"axes": {"adapt.train_pairs": [8, 16], "adapt.selection": ["random", "kmeans"]}}, ["data-count"]),
])
def test_figures_per_kind(tmp_path, kind, spec_extra, expect):
    spec = {"name": kind, "table": kind, "metric": "fid", "seeds": [0, 1], **spec_extra}
    arms = list(spec_extra.get("arms", {})) or ["default"]
    axes = spec_extra.get("axes", {})
    cells = grid_cells(arms, ["c1", "c2"], [0, 1], **axes)
    if not spec_extra.get("arms"):
        cells = [{k: v for k, v in c.items() if k != "arm"} for c in cells]
    df = make_trials(tmp_path / "runs", cells, lambda c: {"fid": 10.0 + 3 * c["seed"] + len(str(c))},
                     cost_fn=lambda c: {"params_trainable": 1000 + 10 * len(str(c))})
    figs = build_figures(study_context(spec, df), tmp_path / "fig")
    assert [f.key for f in figs] == expect
    for f in figs:
        assert np.asarray(Image.open(f.path).convert("RGB")).std() > 10


def test_summary_line_and_index(main_study, tmp_path):
    spec, df = main_study
    line = summary_line(spec, df)
    assert line.startswith("Best FID: e2gan 55.50 ± 6.35 (N=2/3") and line.endswith("11 of 18 runs complete.")
    idx = write_index("tiny", [("main", "Main <i>comparison</i>", "main/index.html", line),
                               ("bad", "x", "javascript:alert(1)", "s")], tmp_path / "tiny",
                      base_report_link="base/index.html")
    page = idx.read_text()
    assert "href='main/index.html'" in page and "href='base/index.html'" in page
    assert "href='javascript" not in page and "<td>bad</td>" in page       # a script URL is not made a link
    assert "Main &lt;i&gt;comparison&lt;/i&gt;" in page
    assert "| [main](main/index.html) |" in (tmp_path / "tiny" / "index.md").read_text()


def test_empty_study_still_reports(tmp_path):
    spec = dict(MAIN_SPEC)
    page = write_study_report(spec, None, tmp_path / "r", concepts=["hue-60"]).read_text()
    assert "No complete trials yet (0 of 9)." in page and "missing (N=0/3)" in page


# --- image grids from real (random-weight) generators on the micro data ---------------------------

@pytest.fixture
def grid_study(tmp_path, micro_data):
    import torch

    from e2gan.nets.registry import make_generator, save_generator
    from tests.conftest import micro_config

    model = micro_config().model
    concepts = ["hue-120", "pixelate", "hue-60"]
    cells = grid_cells(["scratch", "e2gan"], ["hue-60"], [0, 1])
    df = make_trials(tmp_path / "runs", cells, lambda c: {"fid": 5.0 + c["seed"]})
    from e2gan.data.dataset import PairedDataset
    from e2gan.metrics.evaluation import predict
    from e2gan.metrics.per_image import PREDICTIONS_FILE, save_predictions

    ds = PairedDataset(micro_data, ["hue-60"], "test", {c: i for i, c in enumerate(concepts)}, check_hashes=False)
    for i, rd in enumerate(df["run_dir"]):
        torch.manual_seed(i)
        gen = make_generator(model, n_concepts=len(concepts))
        save_generator(rd, gen, model, concepts, extra={"data": str(micro_data), "kind": "adapt"})
        save_predictions(f"{rd}/{PREDICTIONS_FILE}", predict(gen, ds))  # as evaluation does
    spec = {"name": "g", "title": "grid", "table": "main", "metric": "fid", "seeds": [0, 1],
            "arms": {"scratch": {}, "e2gan": {}, "full": {}}}
    return spec, df, micro_data


def test_concept_grid_shows_source_teacher_and_each_method(grid_study, tmp_path):
    from e2gan.data.dataset import PairedDataset
    from e2gan.metrics.evaluation import predict
    from e2gan.nets.registry import load_generator

    spec, df, data = grid_study
    out = tmp_path / "rep"
    page = write_study_report(spec, df, out, grid_images=2).read_text()
    grid = out / "grids" / f"{slug('hue-60')}.png"
    img = np.asarray(Image.open(grid).convert("RGB"))
    tile, pad, top, left = 96, 2, 14, 96                                   # 32² tiles shown 3x
    assert img.shape == (top + 2 * (tile + pad) + pad, left + 5 * (tile + pad) + pad, 3)
    ds = PairedDataset(data, ["hue-60"], "test", {"hue-120": 0, "pixelate": 1, "hue-60": 2}, indices=[0, 1],
                       check_hashes=False)
    run0 = df[(df["arm"] == "e2gan") & (df["seed"] == 0)]["run_dir"].iloc[0]   # seed 0 run of each arm
    pred = predict(load_generator(run0)[0], ds)

    def tile_at(row, col):
        y, x = top + pad + row * (tile + pad), left + pad + col * (tile + pad)
        return img[y:y + tile, x:x + tile]

    up = lambda t: t.numpy().transpose(1, 2, 0).repeat(3, 0).repeat(3, 1)
    assert np.array_equal(tile_at(1, 0), up(pred["sources"][1]))           # source
    assert np.array_equal(tile_at(0, 1), up(pred["targets"][0]))           # teacher target
    assert np.array_equal(tile_at(1, 3), up(pred["outputs"][1]))           # column 3: e2gan
    assert (tile_at(0, 4) == 200).all()                                    # 'full' never ran: a grey tile
    assert "full: no finished run for this concept" in page
    assert "Columns: source | teacher | scratch | e2gan | full." in page


def test_grid_of_runs_without_saved_predictions_says_so(grid_study, tmp_path):
    """Old runs (no predictions.npz) are not re-run by the report: the grid names what is missing."""
    spec, df, _ = grid_study
    for rd in df["run_dir"]:
        (Path(rd) / "predictions.npz").unlink()
    page = write_study_report(spec, df, tmp_path / "rep2", grid_images=2).read_text()
    assert "no predictions.npz in the run (evaluated before predictions were saved): rerun its evaluation" in page
