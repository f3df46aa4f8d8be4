"""What a rank search writes and shows: the scheme table beside the paper's, its Markdown with the
trajectory, the CSV and JSON files, and the one-line summary."""
from __future__ import annotations

import json
from pathlib import Path

from e2gan.io import atomic_write_json, atomic_write_text
from studies.layer_analysis import METRIC_TITLES

# The paper's Table (its Fig. "lora_rank_compare"): FID on Flickr-Scenery, mean of 10 concepts.
PAPER_RANK_TABLE = {
    "searched": (109.37, 0.092),
    "uniform 1x": (130.98, 0.056),
    "uniform 4x": (111.42, 0.164),
    "random": (129.87, 0.100),
}


def format_ranks(ranks: dict[str, int]) -> str:
    """'down=1,ds=2,...': the form `e2gan adapt --ranks` accepts."""
    return ",".join(f"{g}={r}" for g, r in ranks.items())


def scheme_table(rows: list[dict], metric: str):
    """scheme | ranks | LoRA params | quality mean, sd | the paper's FID and params (its scale, not ours)."""
    import pandas as pd

    title = METRIC_TITLES.get(metric, metric)
    out = []
    for r in rows:
        paper = PAPER_RANK_TABLE.get(r["scheme"], (None, None))
        out.append({"scheme": r["scheme"], "ranks": format_ranks(r["ranks"]), "LoRA params": r["params"],
                    title: r["quality"], f"{title} sd over seeds": r["sd"], "seeds": r["n_seeds"],
                    f"{title} on val (searched on)": r.get("quality_val"),
                    "paper FID (Flickr-Scenery)": paper[0], "paper params (M)": paper[1]})
    return pd.DataFrame(out).set_index("scheme")


class RankSearchStudy:
    """A finished search: its result, the scheme table, the protocol and the files written."""

    def __init__(self, search, table, protocol: dict, out_dir: Path, files: dict[str, Path]):
        self.search, self.table, self.protocol, self.out_dir, self.files = search, table, protocol, out_dir, files

    def summary(self) -> str:
        p, s, t = self.protocol, self.search, self.table
        title = METRIC_TITLES.get(p["metric"], p["metric"])
        parts = [f"{name} {row[title]:.3f} @ {int(row['LoRA params']):,}" for name, row in t.iterrows()]
        return (f"rank search ({p['metric']}, {'higher' if p['higher_is_better'] else 'lower'} is better): "
                f"searched {format_ranks(s.ranks)} after {len(s.rounds)} round(s), stopped by {s.stop_reason}; "
                + "; ".join(parts) + f"; {s.evaluations} allocations evaluated -> {self.out_dir}")


def _yes_no(df):
    """Booleans as yes/no for Markdown (the table writer would print them as numbers)."""
    df = df.copy()
    for col in ("within budget", "eligible", "chosen"):
        df[col] = df[col].map(lambda v: "–" if v is None else ("yes" if v else "no")).astype(object)
    return df


def write_files(out: Path, search, table, protocol: dict, evaluator) -> dict[str, Path]:
    """table.csv, table.md (with the trajectory), trajectory.csv and search.json in ``out``."""
    from e2gan.markdown_table import to_markdown

    title = METRIC_TITLES.get(protocol["metric"], protocol["metric"])
    trajectory = search.trajectory()
    decimals = {"LoRA params": 0, title: 3, f"{title} sd over seeds": 3, "seeds": 0,
                f"{title} on val (searched on)": 3, "paper FID (Flickr-Scenery)": 2, "paper params (M)": 3}
    md = (f"# LoRA rank search ({', '.join(protocol['concepts'])})\n\n"
          f"Metric {protocol['metric']} ({'higher' if protocol['higher_is_better'] else 'lower'} is better), "
          f"groups {', '.join(protocol['groups'])}, {protocol['steps']} steps per allocation, seeds "
          f"{protocol['seeds']}, delta {protocol['delta']}, budget {protocol['budget']}. Stopped by "
          f"{search.stop_reason} after {len(search.rounds)} round(s). The search and its trajectory score "
          f"the validation split; the table's metric is the test split. The paper's columns are its own "
          f"Flickr-Scenery FID at 256² (lower is better), for orientation only.\n\n"
          + to_markdown(table, decimals)
          + "\n## Trajectory\n\n"
          + to_markdown(_yes_no(trajectory).set_index("round"), {"params": 0, "added params": 0, "quality": 3, "gain": 3,
                                                        "gain per 1k params": 4, "from rank": 0, "to rank": 0}))
    files = {"csv": out / "table.csv", "markdown": out / "table.md", "trajectory": out / "trajectory.csv",
             "json": out / "search.json"}
    atomic_write_text(files["csv"], table.to_csv())
    atomic_write_text(files["trajectory"], trajectory.to_csv(index=False))
    atomic_write_text(files["markdown"], md)
    atomic_write_json(files["json"], {"protocol": protocol, "search": search.to_dict(),
                                      "table": json.loads(table.reset_index().to_json(orient="records")),
                                      "per_seed": evaluator.per_seed, "per_seed_test": evaluator.per_seed_test,
                                      "runs": evaluator.run_dirs})
    return files
