"""Helpers shared by the reliability tests: file-tree snapshots and "nothing partial" checks."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative paths)."""
    root = Path(root)
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_nothing_partial(root: Path, skip=(), allow_temps: bool = False) -> None:
    """No temp files; every .png decodes, every .json parses, every .jsonl line parses.

    ``skip``: relative paths of files a test planted on purpose (e.g. a corrupt input image).
    """
    from PIL import Image

    root = Path(root)
    skip = set(skip)
    tmp = [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name.endswith(".partial")]
    assert allow_temps or not tmp, f"temp files left behind: {tmp}"

    def files(pattern):
        return [p for p in root.rglob(pattern) if p.relative_to(root).as_posix() not in skip]

    for p in files("*.png"):
        with Image.open(p) as im:
            im.load()
    for p in files("*.json"):
        json.loads(p.read_text())
    for p in files("*.jsonl"):
        for line in p.read_text().splitlines():
            if line.strip():
                json.loads(line)


def one_error_line(capsys) -> str:
    """The single stderr line of a failed command (no traceback)."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


def copy_run(trained, tmp_path) -> tuple[Path, Path]:
    """A private copy of the trained run and its data, the run pointing at the copied data."""
    data = shutil.copytree(trained["data"], tmp_path / "data")
    run = shutil.copytree(trained["run"], tmp_path / trained["run"].name)
    meta = json.loads((run / "model.json").read_text())
    meta["data"] = str(data)
    (run / "model.json").write_text(json.dumps(meta))
    return run, data
