"""The greedy rank search (its ``search.json``) as a report table, beside the paper's references."""
from __future__ import annotations

from e2gan.reporting.columns import metric_title
from e2gan.reporting.paper_tables.common import PAPER_NOTE, frame_of, paper_number
from e2gan.reporting.stats import format_number
from e2gan.reporting.table import Table


def greedy_search_table(search: dict) -> Table:
    """The greedy rank search (``search.json`` written by ``studies.rank_search``) as a report table:
    the searched allocation beside uniform 1x, uniform 4x and random at the searched budget."""
    proto, rows = search.get("protocol", {}), search.get("table", [])
    metric = proto.get("metric", "fid")
    title = metric_title(metric)
    disp, data = {}, {}
    for r in rows:
        quality = next((v for k, v in r.items() if k not in ("scheme", "ranks", "LoRA params", "seeds", "paper FID (Flickr-Scenery)",
                                                               "paper params (M)") and not k.endswith("sd over seeds")), None)
        sd = next((v for k, v in r.items() if k.endswith("sd over seeds")), None)
        paper_params = r.get("paper params (M)")
        disp[r["scheme"]] = {"ranks": r.get("ranks", "–"), title: format_number(quality, 3)
                             + (f" (sd {format_number(sd, 3)})" if sd is not None else ""),
                             "LoRA params": format_number(r.get("LoRA params"), 0), "seeds": r.get("seeds", "–"),
                             "paper FID": paper_number(r.get("paper FID (Flickr-Scenery)")),
                             "paper params": format_number(paper_params * 1e6, 0) if paper_params is not None else "–"}
        data[r["scheme"]] = {"ranks": r.get("ranks"), metric: quality, f"{metric}_sd": sd,
                             "lora_params": r.get("LoRA params"), "seeds": r.get("seeds"),
                             "paper_fid": r.get("paper FID (Flickr-Scenery)"), "paper_params_m": paper_params}
    rounds = len((search.get("search") or {}).get("rounds", []))
    notes = [f"Greedy search on {', '.join(proto.get('concepts', []))}: every group of "
             f"{', '.join(proto.get('groups', []))} starts at rank {proto.get('start_rank', 1)}; each round doubles "
             f"the group whose doubling buys the most {title} per added LoRA parameter (a gain of at least {format_number(proto.get('delta'), 3)}); "
             f"{rounds} round(s), stopped by {(search.get('search') or {}).get('stop_reason', '?')}; "
             f"{proto.get('steps')} steps per allocation; seeds {proto.get('seeds')}; "
             f"{proto.get('evaluations', '?')} allocations trained. LoRA params exclude the concept's embedding row, which every scheme "
             f"trains and the rank grid's 'trainable params' include.",
             PAPER_NOTE + " The paper's rank table is Flickr-Scenery FID, mean over 10 concepts."]
    return Table("greedy-rank-search", "Greedy rank search: searched allocation vs references", frame_of(disp, "scheme"),
                 frame_of(data, "scheme"), notes)
