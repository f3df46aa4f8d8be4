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


CLAIMS_NOTE = ("Each verdict is computed from a paired bootstrap CI of the difference Δ between two arms, "
               "oriented so that a positive Δ favours the claim (for KID, the other arm's KID minus the claimed "
               "arm's); the study's comparisons table has the details. Each CI is taken at its Holm level over the "
               "comparisons of its study. Superiority holds if the CI lies above 0, non-inferiority if it lies "
               "above −δ (δ fixed in the spec): 'holds above' names that bound. Contradicted if the CI lies wholly "
               "below it; otherwise inconclusive at this power (MDD: the smallest true difference the comparison "
               "detects, α 0.05 and 80% power). A claim with several comparisons holds only if all hold; a claim "
               "decided by two studies (a compact claim-* spec and its fuller ablation) lists the comparisons of "
               "both. 'seeds a/b on n bases': each arm's runs per concept and the base models behind them (one "
               "base leaves a base's own luck out of the CI). 'not run': no study of this run decides it (e.g. "
               "--specs main); no verdict is written by hand.")
COLUMNS = ("claim", "verdict", "measured (one line per comparison)", "paper")


def _claims_section(out_dir: Path, names: list[str]) -> tuple[str, str]:
    from e2gan.reporting.claims import NOT_RUN, claims_rows

    rows = claims_rows(out_dir, names)

    def md(text) -> str:
        return md_escape(text).replace("|", "\\|")
    cells = [(r["claim"], r["verdict"], r["comparisons"] or [NOT_RUN], r["paper"]) for r in rows]
    lines = ["## The paper's claims\n", "| " + " | ".join(COLUMNS) + " |", "|---|---|---|---|"]
    lines += [f"| {md(c)} | {md(v)} | {'<br>'.join(md(x) for x in m)} | {md(p)} |" for c, v, m, p in cells]
    reasons = _reasons(rows)
    lines += ["", f"{md_escape(CLAIMS_NOTE)}", "", "Why each metric and margin:", ""]
    lines += [f"- {md_escape(claim)}: {md_escape(why)}" for claim, why in reasons]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    body = "".join(f"<tr><td style='text-align:left'>{html.escape(c)}</td><td style='text-align:left'>"
                   f"{html.escape(v)}</td><td style='text-align:left'>{'<br>'.join(html.escape(x) for x in m)}</td>"
                   f"<td style='text-align:left'>{html.escape(p)}</td></tr>" for c, v, m, p in cells)
    why_html = "<ul>" + "".join(f"<li>{html.escape(c)}: {html.escape(w)}</li>" for c, w in reasons) + "</ul>"
    return ("\n".join(lines) + "\n", f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            + paragraph(CLAIMS_NOTE, "protocol") + paragraph("Why each metric and margin:", "protocol") + why_html)


def _reasons(rows: list[dict]) -> list[tuple[str, str]]:
    """('(a) main, main-bases', reason) once per distinct reason of each claim's comparisons, in table order."""
    return [(f"{r['claim'].split(')')[0]}) {studies}", why) for r in rows for studies, why in r["reasons"]]
