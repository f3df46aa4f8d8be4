"""Reports read stored results and saved predictions only: no reporting module imports a path that
builds or runs a network (generators, evaluation's predict, the cached pipeline's stages, Lightning,
the study layer below)."""
import ast
from pathlib import Path

import e2gan.reporting

# "e2gan.nets" covers the generators, the model registry and the LoRA surgery.
FORBIDDEN = ("e2gan.nets", "e2gan.metrics.evaluation", "e2gan.pipeline", "lightning", "lightning_modules", "studies",
             "torch.nn")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_reporting_imports_nothing_that_runs_a_model():
    folder = Path(e2gan.reporting.__file__).parent
    files = sorted(folder.rglob("*.py"))  # the paper_tables package too
    assert len(files) > 10
    bad = {str(f.relative_to(folder)): sorted(m for m in _imports(f) if m.startswith(FORBIDDEN)) for f in files}
    assert {k: v for k, v in bad.items() if v} == {}
