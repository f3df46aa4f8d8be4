"""The study page rendered by headless Chromium: tables and figures show, markup stays text."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from e2gan.reporting.study_report import write_study_report

from .conftest import EVIL

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--disable-dev-shm-usage"]
TAB_BLUE = np.array([31, 119, 180])   # the figures' first colour (matplotlib tab:blue); nothing else uses it


def chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def run_chromium(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [binary, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def browser():
    binary = chromium()
    if binary is None:
        pytest.skip("no Chromium binary on PATH (install Debian's 'chromium' package to run the page test)")
    return binary


def test_page_renders_tables_and_figures(browser, main_study, tmp_path):
    spec, df = main_study
    df = df.copy()
    df.loc[df["concept"] == "sketch", "concept"] = EVIL
    index = write_study_report(spec, df, tmp_path / "report", concepts=["hue-60", EVIL], grids=False)
    url = index.resolve().as_uri()

    dom = run_chromium(browser, tmp_path, "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    for part in ("Quality per method", "67.00 ± 4.97 (N=3)", "missing (N=0/3)", "paper FID (Flickr-Scenery)",
                 "Training cost per concept", "Protocol: preset tiny", "Figures"):
        assert part in text, part
    assert text.count("<table") >= 5 and text.count("<img") == 3
    # the concept's markup is text in the DOM, never an element
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>alert(1)" not in text

    shot = tmp_path / "top.png"
    res = run_chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1200,2000", url)
    assert shot.exists(), res.stderr[-2000:]
    grey = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert grey.shape == (2000, 1200)
    assert grey.std() > 20 and (grey < 128).mean() > 0.01                 # text and tables, not a blank page

    tall = tmp_path / "all.png"
    run_chromium(browser, tmp_path, f"--screenshot={tall}", "--window-size=1200,9000", url)
    rgb = np.asarray(Image.open(tall).convert("RGB"), dtype=np.int32)
    blue = (np.abs(rgb - TAB_BLUE).sum(axis=-1) < 30).sum()
    assert blue > 200                                                       # the embedded figures were drawn
