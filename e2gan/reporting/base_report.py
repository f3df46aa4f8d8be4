"""The report of a base-model run: per-concept quality table, cost, protocol and an image grid."""
from __future__ import annotations

import html
import json
import shutil
from pathlib import Path

from e2gan.io import atomic_write_text
from e2gan.reporting.html import image_data_uri, markdown_table_to_html, page, paragraph
from e2gan.markdown_table import to_markdown
from e2gan.results import backbone_label
from e2gan.reporting.tables import cost_table, per_concept_table, quality_decimals


def protocol_line(result: dict) -> str:
    p = result["protocol"]
    env = result["env"]
    return (f"Protocol: reference = {p.get('reference_set')}; N = {p.get('n')} images "
            f"({p.get('averaging', '')}); resolution {p.get('resolution')}²; FID/KID backbone {backbone_label(p.get('backbone'))} "
            f"({p.get('fid_mode', 'clean')} mode); perceptual = {p.get('perceptual')}; checkpoint = "
            f"{p.get('checkpoint')}; preset {p.get('preset')}; device {env.get('device')} "
            f"({env.get('torch_threads')} threads); seed {env.get('seed')}; torch {env['versions'].get('torch')}; "
            f"e2gan {env.get('e2gan')} ({env.get('commit')}).{_stand_in_clause(p)}")


def _stand_in_clause(protocol: dict) -> str:
    from e2gan.stand_in import protocol_stand_ins

    found = protocol_stand_ins(protocol)
    return (f" Random-weight stand-ins ({', '.join(found)}): these numbers test the code path, "
            "they measure no model." if found else "")


def write_base_report(result: dict, run_dir: str | Path, out_dir: str | Path) -> Path:
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    quality = per_concept_table(result)
    cost = cost_table(result)
    quality.to_csv(out_dir / "base_quality.csv")
    cost.to_csv(out_dir / "base_cost.csv")
    q_md = to_markdown(quality, quality_decimals())
    c_md = to_markdown(cost, {"value": 1})
    grid = out_dir / "base_samples.png"
    if (run_dir / "samples.png").exists():
        shutil.copyfile(run_dir / "samples.png", grid)
    mean = result["metrics"]["mean_over_concepts"]
    gain = mean.get("psnr", float("nan")) - mean.get("identity_psnr", float("nan"))
    verdict = (f"Mean set-level PSNR {mean.get('psnr', float('nan')):.2f} dB against the teacher's targets, "
               f"{gain:+.2f} dB over the identity baseline (the unedited source).")
    proto = protocol_line(result)
    md = (f"# e2gan report — preset {result['config']['preset']}\n\n## Base model ({result['run']})\n\n"
          f"{verdict}\n\n{q_md}\n{proto}\n\n## Training cost\n\n{c_md}\n"
          f"## Samples (source / teacher / model, test split)\n\n![samples](base_samples.png)\n")
    atomic_write_text(out_dir / "index.md", md)
    sections = [
        (f"Base model ({result['run']})", paragraph(verdict) + markdown_table_to_html(q_md) + paragraph(proto, "protocol")),
        ("Training cost", markdown_table_to_html(c_md)),
    ]
    if grid.exists():
        sections.append(("Samples (source / teacher / model, test split)",
                         f"<img alt='samples' src='{image_data_uri(grid)}'>"))
    sections.append(("Configuration", f"<pre>{html.escape(json.dumps(result['config'], indent=1))}</pre>"))
    atomic_write_text(out_dir / "index.html", page(f"e2gan report — preset {result['config']['preset']}", sections))
    return out_dir / "index.html"
