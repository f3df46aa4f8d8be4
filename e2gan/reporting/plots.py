"""Study figures with matplotlib's Agg canvas: PNG, deterministic (same inputs, same bytes).

No pyplot, so nothing global changes and no display is needed. Labels are user strings: a '$'
would start matplotlib's mathtext, so it is escaped.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from e2gan.io import atomic_write
from e2gan.reporting.stats import pareto_front

RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3,
      "figure.dpi": 100, "savefig.dpi": 100, "path.simplify": False}
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf"]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


@dataclass
class Point:
    label: str
    x: float
    y: float
    xerr: float = float("nan")
    yerr: float = float("nan")
    group: str = ""


def _safe(text: str, limit: int = 40) -> str:
    text = str(text).replace("$", r"\$")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _ok(*vals: float) -> bool:
    try:
        return all(v is not None and math.isfinite(float(v)) for v in vals)
    except (TypeError, ValueError):
        return False


def _err(v: float) -> float | None:
    return float(v) if _ok(v) and float(v) > 0 else None


def _figure(size=(6.4, 4.2)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    return atomic_write(path, lambda p: fig.savefig(p, format="png", metadata={"Software": None}))


def _context():
    import matplotlib

    return matplotlib.rc_context(RC)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, _safe(text, 80), ha="center", va="center", transform=ax.transAxes)


def plot_cost_quality(points: Sequence[Point], path: str | Path, *, xlabel: str, ylabel: str, title: str,
                      maximize_y: bool = False, log_x: bool = False, annotate: bool = True,
                      front: bool = True) -> Path:
    """Quality (y) against a cost (x) with error bars, the Pareto front drawn as a step line."""
    with _context():
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        pts = [p for p in points if _ok(p.x, p.y)]
        groups = list(dict.fromkeys(p.group for p in pts))
        for gi, grp in enumerate(groups):
            sel = [p for p in pts if p.group == grp]
            for pi, p in enumerate(sel):
                color = COLORS[(gi if grp else pi) % len(COLORS)]  # ungrouped points: one colour each
                ax.errorbar([p.x], [p.y], xerr=_err(p.xerr), yerr=_err(p.yerr), fmt=MARKERS[gi % len(MARKERS)],
                            color=color, capsize=3, ms=6, label=_safe(grp) if grp and pi == 0 else None)
                if annotate:
                    ax.annotate(_safe(p.label, 24), (p.x, p.y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        on_front = pareto_front([p.x for p in pts], [p.y for p in pts], maximize_y=maximize_y) if front else []
        if on_front:
            fx, fy = [pts[i].x for i in on_front], [pts[i].y for i in on_front]
            ax.step(fx, fy, where="post", color="black", lw=1.2, alpha=0.7, label="Pareto front")
            ax.scatter(fx, fy, s=90, facecolors="none", edgecolors="black", lw=1.2)
        if not pts:
            _empty(ax, "no finished runs yet")
        if log_x and pts and all(p.x > 0 for p in pts):
            ax.set_xscale("log")
        ax.set_xlabel(_safe(xlabel, 80))
        ax.set_ylabel(_safe(ylabel, 80))
        ax.set_title(_safe(title, 90))
        if pts:
            ax.legend(loc="best", fontsize=8)
        return _save(fig, path)


def plot_lines(series: dict[str, Sequence[tuple[float, float, float]]], path: str | Path, *, xlabel: str,
               ylabel: str, title: str, log_x: bool = False) -> Path:
    """One line per series of (x, y, y-error) points, e.g. quality vs training pairs per selection."""
    with _context():
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        drawn = 0
        for i, (name, pts) in enumerate(series.items()):
            pts = sorted((float(x), float(y), e) for x, y, e in pts if _ok(x, y))
            if not pts:
                continue
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            errs = [(_err(p[2]) or 0.0) for p in pts]
            ax.errorbar(xs, ys, yerr=errs if any(errs) else None, fmt="-" + MARKERS[i % len(MARKERS)],
                        color=COLORS[i % len(COLORS)], capsize=3, label=_safe(name))
            drawn += 1
        if not drawn:
            _empty(ax, "no finished runs yet")
        else:
            ax.legend(loc="best", fontsize=8)
            if log_x:
                ax.set_xscale("log", base=2)
        ax.set_xlabel(_safe(xlabel, 80))
        ax.set_ylabel(_safe(ylabel, 80))
        ax.set_title(_safe(title, 90))
        return _save(fig, path)


def plot_grouped_bars(categories: Sequence[str], series: dict[str, Sequence[tuple[float, float]]],
                      path: str | Path, *, ylabel: str, title: str) -> Path:
    """Bars per category, one bar per series, with 95% CI whiskers (e.g. quality per LoRA group)."""
    with _context():
        fig = _figure((max(6.4, 0.7 * len(categories) * max(1, len(series)) + 2), 4.2))
        ax = fig.add_subplot(1, 1, 1)
        k = max(1, len(series))
        width = 0.8 / k
        drawn = 0
        for j, (name, vals) in enumerate(series.items()):
            xs, ys, es = [], [], []
            for i, (y, e) in enumerate(vals):
                if _ok(y):
                    xs.append(i - 0.4 + width * (j + 0.5))
                    ys.append(float(y))
                    es.append(_err(e) or 0.0)
            if xs:
                ax.bar(xs, ys, width=width * 0.95, color=COLORS[j % len(COLORS)], label=_safe(name),
                       yerr=es if any(es) else None, capsize=3)
                drawn += 1
        ax.set_xticks(list(range(len(categories))))
        ax.set_xticklabels([_safe(c, 18) for c in categories], rotation=30 if len(categories) > 5 else 0, ha="right"
                           if len(categories) > 5 else "center")
        if not drawn:
            _empty(ax, "no finished runs yet")
        elif len(series) > 1:
            ax.legend(loc="best", fontsize=8)
        ax.set_ylabel(_safe(ylabel, 80))
        ax.set_title(_safe(title, 90))
        return _save(fig, path)


def plot_latency_macs(points: Sequence[Point], path: str | Path, *, title: str = "Latency vs MACs") -> Path:
    """Latency (y, ms) against MACs per image (x), one marker style per backend (``Point.group``)."""
    return plot_cost_quality(points, path, xlabel="MACs per image", ylabel="latency ms", title=title,
                             maximize_y=False, log_x=True, front=False)
