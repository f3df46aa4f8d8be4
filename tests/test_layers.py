"""The import order of the house, checked: a module may import only from its own layer or below.

    foundations -> data -> teachers and distillation -> nets -> metrics, evaluation, deploy
    -> lightning_modules -> pipeline (the cached stages) -> studies -> reporting -> cli

Every import counts, the ones inside functions too: a lazy import is still a dependency."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("e2gan", "lightning_modules", "studies")

# (layer, module prefixes), lowest first. A module belongs to the longest prefix that matches it;
# "e2gan" alone is the package's own __init__, not everything under it.
LAYERS = [
    ("foundations", ("e2gan", "e2gan.errors", "e2gan.io", "e2gan.env", "e2gan.quiet", "e2gan.progress",
                     "e2gan.stand_in", "e2gan.config", "e2gan.presets", "e2gan.results", "e2gan.image_grid",
                     "e2gan.markdown_table")),
    ("data", ("e2gan.data",)),  # sources, manifest, dataset, selection: what the pairs are
    ("teachers", ("e2gan.teachers", "e2gan.data.distill")),  # what produces them
    ("nets", ("e2gan.nets",)),
    ("metrics", ("e2gan.metrics", "e2gan.deploy")),
    ("training", ("lightning_modules",)),
    ("pipeline", ("e2gan.pipeline",)),
    ("studies", ("studies",)),
    ("reporting", ("e2gan.reporting",)),
    ("cli", ("e2gan.cli", "e2gan.__main__")),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str | None:
    best = None
    for name, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or (p != "e2gan" and module.startswith(p + "."))) and (best is None or len(p) > len(best[1])):
                best = (name, p)
    return best[0] if best else None


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def imports_in(text: str, filename: str = "<source>") -> set[str]:
    """Every project module named by an import statement anywhere in the text."""
    out = set()
    for node in ast.walk(ast.parse(text, filename)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return {m for m in out if m.split(".")[0] in PACKAGES}


def violations_of(module: str, text: str) -> list[str]:
    mine = layer_of(module)
    return [f"{module} ({mine}) imports {dep} ({layer_of(dep)})" for dep in sorted(imports_in(text, module))
            if RANK[layer_of(dep) or "cli"] > RANK[mine]]


def import_graph() -> dict[str, set[str]]:
    graph = {module_name(p): imports_in(p.read_text(), str(p)) for p in source_files()}
    # `from e2gan.data import x` may name a package or a module: keep the names that are modules.
    return {m: {d for d in deps if d in graph and d != m} for m, deps in graph.items()}


def cycles_in(graph: dict[str, set[str]]) -> list[str]:
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = 1
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_every_module_has_a_layer():
    files = source_files()
    assert len(files) > 80
    assert [module_name(p) for p in files if layer_of(module_name(p)) is None] == []


def test_imports_point_down_the_layers():
    assert [v for p in source_files() for v in violations_of(module_name(p), p.read_text())] == []


def test_no_import_cycles_between_modules():
    assert cycles_in(import_graph()) == []


@pytest.mark.parametrize("module, text", [
    ("e2gan.metrics.evaluation", "from studies.prerequisites import data_dir"),  # core -> study layer
    ("e2gan.config", "from e2gan.teachers.base import load_concepts"),          # foundations -> data
    ("e2gan.data.dataset", "from e2gan.data.distill import verify_manifest"),   # dataset -> its producer
    ("lightning_modules.gan_module", "from e2gan.reporting.grids import save_triplet_grid"),
    ("studies.spec", "def f():\n    from e2gan.reporting.study_tables import label_value\n"),  # lazy counts
])
def test_the_check_fails_on_an_upward_import(module, text):
    assert violations_of(module, text) != []


def test_the_check_finds_a_cycle_within_a_layer():
    # config <-> presets: both foundations, so only the cycle check can see it
    assert cycles_in({"e2gan.config": {"e2gan.presets"}, "e2gan.presets": {"e2gan.config"}}) != []


if __name__ == "__main__":  # python -m tests.test_layers: what is out of order now
    for p in source_files():
        if layer_of(module_name(p)) is None:
            print("no layer:", module_name(p))
        else:
            print(*violations_of(module_name(p), p.read_text()), sep="\n") if violations_of(
                module_name(p), p.read_text()) else None
    print(*("cycle: " + c for c in cycles_in(import_graph())), sep="\n")
