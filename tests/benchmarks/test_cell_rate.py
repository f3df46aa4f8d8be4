"""The cells-per-minute benchmark's grid: main's arms and config, and a bf16 side on the same base."""
from __future__ import annotations


def _load(tmp_path, text):
    from studies.spec import load_spec

    p = tmp_path / "cellrate.toml"
    p.write_text(text)
    return load_spec(p)


def test_the_bf16_side_trains_the_same_cells_in_bf16_on_the_same_base(tmp_path):
    from benchmarks.cell_rate import ARMS, SEEDS, _spec_text
    from e2gan.pipeline.adapt import adapt_dir
    from e2gan.pipeline.base import base_dir

    fp32, bf16 = _load(tmp_path, _spec_text("hue-60")), _load(tmp_path, _spec_text("hue-60", "bf16-mixed"))
    cells = {s.name: [s.cell_config(c) for c in s.grid()] for s in (fp32, bf16)}
    assert [len(v) for v in cells.values()] == [len(ARMS) * len(SEEDS)] * 2
    assert {c.adapt.precision for c in cells[fp32.name]} == {""} and {c.adapt.precision for c in cells[bf16.name]} == {"bf16-mixed"}
    assert {base_dir(c) for c in cells[fp32.name]} == {base_dir(c) for c in cells[bf16.name]}
    assert not {adapt_dir(c, "hue-60") for c in cells[fp32.name]} & {adapt_dir(c, "hue-60") for c in cells[bf16.name]}


def test_the_float32_cells_are_main_s_own_cells(tmp_path):
    """Each arm as main has it (its learning rate too): the timed cells are the main comparison's."""
    from benchmarks.cell_rate import _spec_text
    from e2gan.pipeline.adapt import adapt_dir
    from studies.spec import load_spec

    def dirs(spec):
        return {adapt_dir(spec.cell_config(c), c["concept"]) for c in spec.grid()}
    assert dirs(_load(tmp_path, _spec_text("hue-60"))) <= dirs(load_spec("main"))
