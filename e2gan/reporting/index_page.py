"""The preset's top-level report page ``reports/<preset>/index.html`` (+ index.md): the paper's claims
with their computed verdicts (from each study's claims.json), then one row per study."""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Sequence

from e2gan.io import atomic_write_text
from e2gan.reporting.html import page, paragraph
from e2gan.reporting.table import md_escape


_SAFE_LINK = re.compile(r"^(?![a-zA-Z][a-zA-Z0-9+.-]*:)|^(https?|file):", re.I)


def _href(link: str) -> str | None:
    return html.escape(link, quote=True) if link and _SAFE_LINK.match(link) else None


def write_index(preset: str, studies: Sequence[tuple[str, str, str, str]], out_dir: str | Path,
                base_report_link: str | None = None) -> Path:
    """The top-level ``reports/<preset>/index.html`` (+ index.md): one row per study.

    studies: (name, title, relative link to the study's index.html, one-line summary).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = f"e2gan reports — preset {preset}"
    rows = []
    md = [f"# {md_escape(title)}\n", "Every table of the paper this suite reproduces, one report per study.\n"]
    if base_report_link:
        href = _href(base_report_link)
        md.append(f"Base model: [{base_report_link}]({base_report_link})\n")
        base_html = (f"<p>Base model report: <a href='{href}'>{html.escape(base_report_link)}</a></p>" if href
                     else paragraph(f"Base model report: {base_report_link}"))
    else:
        base_html = ""
    claims_md, claims_html = _claims_section(out_dir, [s[0] for s in studies])
    md.append(claims_md)
    md.append("## Studies\n\n| study | title | summary |\n|---|---|---|")
    for name, stitle, link, summary in studies:
        href = _href(link)
        cell = f"<a href='{href}'>{html.escape(name)}</a>" if href else html.escape(name)
        rows.append(f"<tr><td>{cell}</td><td>{html.escape(stitle)}</td><td>{html.escape(summary)}</td></tr>")
        esc = [md_escape(x).replace("|", "\\|") for x in (name, stitle, summary)]
        md.append(f"| [{esc[0]}]({link}) | {esc[1]} | {esc[2]} |")
    table = ("<table><thead><tr><th>study</th><th>title</th><th>summary</th></tr></thead><tbody>"
             + "".join(rows) + "</tbody></table>")
    intro = paragraph("Every table of the paper this suite reproduces, one report per study. Each cell is "
                      "mean ± 95% CI over seeds with N; each table states its protocol; the paper's numbers "
                      "are shown beside ours where it has them, marked as the paper's.")
    atomic_write_text(out_dir / "index.md", "\n".join(md) + "\n")
    return atomic_write_text(out_dir / "index.html", page(title, [("The paper's claims", claims_html),
                                                                  ("Studies", intro + base_html + table)]))


CLAIMS_NOTE = ("Each verdict is computed from a paired bootstrap CI of the difference between two arms (the "
               "study's comparisons table has the details): superiority holds if the CI excludes 0 in the claimed "
               "direction, non-inferiority if it lies above −δ (δ fixed in the spec); contradicted if it lies wholly "
               "on the wrong side; otherwise inconclusive at this power. A claim with several comparisons holds "
               "only if all hold; a claim decided by two studies (a compact claim-* spec and its fuller ablation) "
               "lists the comparisons of both. 'not run': no study of this run decides it (e.g. --specs main); "
               "no verdict is written by hand.")


def _claims_section(out_dir: Path, names: list[str]) -> tuple[str, str]:
    from e2gan.reporting.claims import claims_rows

    rows = claims_rows(out_dir, names)
    cols = ["claim", "measured", "paper", "verdict", "why"]
    md = ["## The paper's claims\n", "| " + " | ".join(cols) + " |", "|---|---|---|---|---|"]
    md += ["| " + " | ".join(md_escape(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    md.append(f"\n{md_escape(CLAIMS_NOTE)}\n")
    head = "".join(f"<th>{c}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{html.escape(str(r[c]))}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return "\n".join(md), f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>" + paragraph(CLAIMS_NOTE, "protocol")
