"""A report table and its renderers: what it shows (strings), what it holds (numbers, for CSV) and
what it states (notes), as Markdown, HTML, LaTeX and CSV."""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd


@dataclass
class Table:
    key: str                  # file stem: tables/<key>.md|.csv|.tex
    title: str
    display: pd.DataFrame     # strings, as shown in Markdown / HTML / LaTeX
    data: pd.DataFrame        # numbers (mean, ci95, n, missing per column), as written to CSV
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.display.empty:
            self.display = self.display.astype(object).where(self.display.notna(), "–")

    def to_markdown(self) -> str:
        def cell(v: Any) -> str:
            return md_escape(v).replace("|", "\\|").replace("\n", " ")

        df = self.display
        head = [df.index.name or "", *map(str, df.columns)]
        lines = ["| " + " | ".join(cell(h) for h in head) + " |",
                 "|" + "|".join(["---"] + ["---:"] * len(df.columns)) + "|"]
        for idx, row in df.iterrows():
            lines.append("| " + " | ".join([cell(idx), *(cell(v) for v in row.tolist())]) + " |")
        notes = "".join(f"\n{md_escape(n)}\n" for n in self.notes)
        return "\n".join(lines) + "\n" + notes

    def to_html(self) -> str:
        df = self.display
        paper_cols = [str(c).startswith("paper") for c in df.columns]
        head = f"<th>{html.escape(str(df.index.name or ''))}</th>" + "".join(
            f"<th{' class=paper' if p else ''}>{html.escape(str(h))}</th>" for h, p in zip(df.columns, paper_cols))
        rows = []
        for idx, row in df.iterrows():
            paper_row = str(idx).startswith("paper") or "(paper only)" in str(idx)
            cells = [f"<td>{html.escape(str(idx))}</td>"]
            for v, p in zip(row.tolist(), paper_cols):
                text = str(v)
                cls = ("missing" if text.startswith("missing") or re.search(r"N=\d+/\d+", text)
                       else "paper" if p or paper_row or text.endswith("(paper)") else "")
                cells.append(f"<td{' class=' + cls if cls else ''}>{html.escape(text)}</td>")
            rows.append(f"<tr{' class=paper' if paper_row else ''}>" + "".join(cells) + "</tr>")
        notes = "".join(f"<p class='protocol'>{html.escape(n)}</p>" for n in self.notes)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>\n{notes}"

    def to_latex(self) -> str:
        body = self.display.to_latex(escape=True, caption=_latex_escape(self.title), label=f"tab:{self.key}")
        for a, b in (("±", r"$\pm$"), ("²", r"$^2$"), ("×", r"$\times$"), ("÷", r"$\div$"), ("↑", r"$\uparrow$"),
                     ("↓", r"$\downarrow$"), ("–", "--"), ("✓", r"$\checkmark$")):
            body = body.replace(a, b)
        return body

    def write(self, folder: str | Path) -> dict[str, Path]:
        from e2gan.io import atomic_write_text

        folder = Path(folder)
        out = {"md": folder / f"{self.key}.md", "csv": folder / f"{self.key}.csv", "tex": folder / f"{self.key}.tex"}
        atomic_write_text(out["md"], f"### {self.title}\n\n" + self.to_markdown())
        atomic_write_text(out["csv"], self.data.to_csv())
        atomic_write_text(out["tex"], self.to_latex())
        return out


def md_escape(text: Any) -> str:
    """User text for Markdown: '<' and '>' as entities, so no renderer turns a name into markup."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"), ("#", r"\#"),
                 ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\textasciitilde{}"), ("^", r"\^{}")):
        text = text.replace(a, b)
    return text
