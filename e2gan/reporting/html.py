"""A self-contained HTML page: every user string escaped, images embedded as data URIs."""
from __future__ import annotations

import base64
import html
from pathlib import Path


def image_data_uri(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def markdown_table_to_html(md: str) -> str:
    lines = [ln for ln in md.strip().splitlines() if ln.strip()]
    if len(lines) < 2:
        return ""
    cells = [[html.escape(c.strip()) for c in ln.strip().strip("|").split("|")] for ln in lines]
    head = "".join(f"<th>{c}</th>" for c in cells[0])
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in cells[2:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}img{max-width:100%;image-rendering:pixelated}
.protocol{font-size:90%;color:#444}code{background:#f4f4f4;padding:1px 3px}"""


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """``sections``: (heading, trusted HTML body built by this package from escaped parts)."""
    body = "".join(f"<h2>{html.escape(h)}</h2>\n{b}\n" for h, b in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}</body></html>\n")


def paragraph(text: str, cls: str = "") -> str:
    attr = f" class='{cls}'" if cls else ""
    return f"<p{attr}>{html.escape(text)}</p>"
