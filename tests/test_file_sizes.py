"""One job per file: no source file of the library, the training modules or the studies is over 450
lines (the target is about 400; past that a file is doing two things)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 450


def test_no_source_file_is_over_the_limit():
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for pkg in ("e2gan", "lightning_modules", "studies") for p in (ROOT / pkg).rglob("*.py")}
    assert len(sizes) > 80
    assert {f: n for f, n in sizes.items() if n > LIMIT} == {}


def test_package_inits_hold_no_logic():
    """A package's __init__ names what it exports; functions and classes live in modules."""
    import ast
    bad = {}
    for pkg in ("e2gan", "lightning_modules", "studies"):
        for p in (ROOT / pkg).rglob("__init__.py"):
            defs = [n.name for n in ast.parse(p.read_text()).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
            if defs:
                bad[str(p.relative_to(ROOT))] = defs
    assert bad == {}
