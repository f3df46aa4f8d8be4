"""No block of 10 or more source lines is written twice in the library, the training modules or the
studies: a repeated block is a function waiting to be named."""
import hashlib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("e2gan", "lightning_modules", "studies")
WINDOW = 10


def code_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for lines that carry code: blank lines, comments and docstring-only
    lines are dropped and indentation is ignored, so a copy that was re-indented still matches."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s and not s.startswith("#"):
            out.append((i, s))
    return out


def repeated_blocks(files: list[Path], window: int = WINDOW) -> list[str]:
    seen = defaultdict(list)
    for path in files:
        lines = code_lines(path.read_text())
        for k in range(len(lines) - window + 1):
            block = [s for _, s in lines[k:k + window]]
            if sum(len(s) > 12 for s in block) < window // 2:  # runs of `)` / `else:` are not code
                continue
            digest = hashlib.sha1("\n".join(block).encode()).hexdigest()
            seen[digest].append((path.relative_to(ROOT), lines[k][0]))
    copies = sorted(places for places in seen.values() if len(places) > 1)
    kept: list[list[tuple[Path, int]]] = []
    for places in copies:  # the windows of one long copy are reported once, at its first line
        if not any(len(k) == len(places) and all(a[0] == b[0] and 0 <= b[1] - a[1] < 2 * window
                                                 for a, b in zip(k, places)) for k in kept):
            kept.append(places)
    return [", ".join(f"{f}:{n}" for f, n in places) for places in kept]


def test_no_block_of_ten_lines_is_repeated():
    files = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    assert repeated_blocks(files) == []


def test_the_check_sees_a_copy(tmp_path):
    body = "\n".join(f"    value_{i} = compute_something({i}, scale=2)" for i in range(12))
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text(f"def f():\n{body}\n")
    b.write_text(f"def g():\n    # the same, re-indented\n{body.replace('    ', '        ')}\n")
    global ROOT
    old, ROOT = ROOT, tmp_path
    try:
        assert len(repeated_blocks([a, b])) == 1
    finally:
        ROOT = old
