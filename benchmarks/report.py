"""Markdown from a benchmark results dict: the summary table, the before/after table and a full run report
(``benchmarks.latest`` renders LATEST.md and the README block from the same pieces)."""
from __future__ import annotations

import math
from importlib import import_module


def fmt(value, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if unit == "×":
        return f"{value:.2f}×" if value < 100 else f"{value:.0f}×"
    if unit == "%":
        return f"{100 * value:.1f}%" if abs(value) < 10 else f"{100 * value:.0f}%"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.2f} ms"
    if unit:
        return f"{value:.1f} {unit}"
    return f"{value:.3g}"


def fmt_target(c: dict) -> str:
    if c["target"] is None:
        return "(reported)"
    op = "≥" if c["op"] == ">=" else "≤"
    t, u = c["target"], c["unit"]
    if u == "%":
        return f"{op} {100 * t:g}%"
    if u == "×":
        return f"{op} {t:g}×"
    return f"{op} {t:g} {u}".rstrip()


def verdict(c: dict) -> str:
    if c["met"] is None:
        return "—"
    return "met" if c["met"] else f"**missed** ({c['miss_by']})"


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def summary_table(report: dict) -> str:
    """One row per check. A composed summary (``benchmarks.latest``) adds the run each row is from."""
    run_col = bool(report.get("composed"))
    lines = ["| # | benchmark | measure | measured | target | result | paper | notes |" + (" run |" if run_col else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if run_col else "")]
    for i, (name, b) in enumerate(report["benchmarks"].items(), start=1):
        run = f" {b.get('run', '')[:15]} |" if run_col else ""   # the run's UTC minute
        if b["status"] != "ok":
            lines.append(f"| {i} | {name} | — | — | — | **error** | — | {_cell(b.get('error', ''))} |{run}")
            continue
        for c in b["checks"]:
            lines.append(f"| {i} | {name} | {_cell(c['what'])} | {fmt(c['measured'], c['unit'])} | {fmt_target(c)} | "
                         f"{verdict(c)} | {_cell(c.get('paper') or '')} | {_cell(c.get('note') or '')} |{run}")
    return "\n".join(lines)


def header(report: dict) -> str:
    from e2gan.env import cpu_text  # the CPU's extensions: the host tag hashes a hostname two machines can share

    t = report["threads"]
    env = report.get("env", {})
    versions = {**env.get("versions", {}), **report.get("versions", {})}
    load = report.get("loadavg_start"), report.get("loadavg_end")
    return (f"Preset **{report['preset']}** (scale {report['scale']}), {report['device']}, host `{report['host']}` "
            f"({report.get('cpu_count')} cores, {env.get('device_name', '?')}; {cpu_text(env.get('cpu'))}), started {report['started']}, "
            f"{report.get('seconds', 0):.0f} s in all. Threads: torch {t['torch']}, LiteRT {t['litert']}, "
            f"OMP_NUM_THREADS={t['OMP_NUM_THREADS']}, OMP_WAIT_POLICY={t.get('OMP_WAIT_POLICY')}. Load average (1/5/15 min) at start {load[0]}, end {load[1]}. "
            f"torch {versions.get('torch', '?')}, litert-torch {versions.get('litert-torch', '?')}, "
            f"ai-edge-litert {versions.get('ai-edge-litert', '?')}.")


def missed(report: dict) -> list[str]:
    out = []
    for name, b in report["benchmarks"].items():
        for c in b["checks"]:
            if c["met"] is False:
                out.append(f"- **{c['what']}** ({name}): {fmt(c['measured'], c['unit'])} vs target {fmt_target(c)}"
                           f" — {c['miss_by']}." + (f" Why: {c['cause']}" if c.get("cause") else ""))
    return out


def before_after_table(report: dict) -> str:
    """The results' before_after rows (a change measured against the path it replaced, same run)."""
    rows = report.get("before_after") or []
    if not rows:
        return ""
    lines = ["| benchmark | measure | before | after | before ÷ after | change | notes |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        name = r["benchmark"] + (f" ({r['run'][:15]})" if r.get("run") else "")   # composed: the run it is from
        lines.append(f"| {name} | {_cell(r['what'])} | {fmt(r['before'], r['unit'])} | {fmt(r['after'], r['unit'])} | "
                     f"{fmt(r.get('ratio'), '×')} | {_cell(r.get('change') or '')} | "
                     f"{_cell('; '.join(x for x in (r.get('note'), r.get('basis')) if x))} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- per-benchmark details
def _arm_label(d: dict, arm: str) -> str:
    ranks = d["sizes"][arm]["ranks"]
    return f"LoRA {'/'.join(d[arm]['groups'])} ({','.join(f'{g}={r}' for g, r in ranks.items())}) from the base"


def _arm_reach(d: dict, arm: str) -> str:
    p, lo, r = d["pix2pix"], d[arm], d["ratios" if arm == "lora" else "ratios_searched"]
    name = _arm_label(d, arm)
    if lo["reach"]:
        return (f"{name} first reached {p['final_psnr']:.2f} dB at step {lo['reach']['step']} "
                f"({lo['reach']['train_seconds']:.1f} s on the training clock); sustained over 3 checkpoints from step "
                f"{lo['reach_sustained']['step'] if lo['reach_sustained'] else '— (never)'}. Time ratio "
                f"{fmt(r['time'], '×')} (steps × interleaved step time), {fmt(r['time_raw_runs'], '×')} from the two "
                f"runs' own clocks, FLOPs ratio {fmt(r['flops'], '×')}; against the step at which pix2pix itself "
                f"first touched its final quality: {fmt(r['time_vs_pix2pix_first_touch'], '×')}.")
    b = r["bounds_if_not_reached"]
    return (f"{name} never reached {p['final_psnr']:.2f} dB within {lo['steps']} steps (best "
            f"{max(q['psnr'] for q in lo['curve']):.2f} dB): time ratio < {b['time_ratio_below']:.2f}×, "
            f"FLOPs ratio < {b['flops_ratio_below']:.2f}×.")


def _adaptation(d: dict) -> list[str]:
    p = d["pix2pix"]
    arms = [a for a in ("lora", "lora_searched") if a in d]
    out = [f"Concept `{d['concept']}`, base `{d['base_run']}`, seed {d['seed']}, {d['device']}, {d['threads']} threads. "
           f"{d['quality_metric']}; identity (unedited source) {d['identity_psnr']:.2f} dB. Target quality: "
           f"{d['target_quality']} = **{p['final_psnr']:.2f} dB**.", "",
           "| side | steps | train s | ms/step (interleaved) | GFLOP/step | trainable params | stored bytes | final PSNR |",
           "|---|---|---|---|---|---|---|---|",
           f"| pix2pix ngf={p['ngf']} from scratch | {p['steps']} | {p['train_seconds']:.1f} | "
           f"{1000 * d['step_seconds']['pix2pix']:.0f} | {p['flops_per_step'] / 1e9:.2f} | {p['params_trainable']:,} | "
           f"{p['bytes_stored']:,} | {p['final_psnr']:.2f} |"]
    for arm in arms:
        lo = d[arm]
        out.append(f"| {_arm_label(d, arm)} | {lo['steps']} | {lo['train_seconds']:.1f} | "
                   f"{1000 * d['step_seconds'][arm]:.0f} | {lo['flops_per_step'] / 1e9:.2f} | {lo['params_trainable']:,} | "
                   f"{lo['bytes_stored']:,} | {lo['final_psnr']:.2f} |")
    out.append("")
    for arm in arms:
        out += [_arm_reach(d, arm), ""]
    if "lora_searched" in d:
        out += [f"The searched ranks come from the {d['lora_searched']['searched_source']}.", ""]
    base = d["base"]
    secs = "" if base["train_seconds"] is None else f", {base['train_seconds']:.0f} s"
    out += [f"The base (trained once for all concepts): {base['steps']} steps, {base['train_flops'] / 1e12:.2f} TFLOP"
            f"{secs}; it pays for itself in FLOPs after {base['break_even_concepts'] or '—'} new concepts."
            + (f" Its own quality on its base concepts: {base['quality']['psnr']:.2f} dB vs {base['quality']['identity_psnr']:.2f} dB "
               "for the unedited sources." if base.get("quality") else ""), "",
            "PSNR curves (dB) at the checkpoints:", "",
            "| step | pix2pix | " + " | ".join(_arm_label(d, a).split(" from")[0] for a in arms) + " |",
            "|---|---|" + "---|" * len(arms)]
    curves = [{q["step"]: q["psnr"] for q in d[a]["curve"]} for a in arms]
    pc = {q["step"]: q["psnr"] for q in p["curve"]}
    steps = sorted(set(pc).union(*curves))
    stride = max(1, len(steps) // 20)
    for s in steps[::stride]:
        cells = [f"{c.get(s, float('nan')):.2f}" for c in [pc, *curves]]
        out.append(f"| {s} | " + " | ".join(cells).replace("nan", "—") + " |")
    out.append("")
    for arm in arms:
        s, s2p = d["sizes"][arm], d["sizes"]
        out.append(f"Sizes, {_arm_label(d, arm)}: E²GAN width {s['e2gan_trained']['width']} (as trained) "
                   f"{s['e2gan_trained']['generator_params']:,} params, adapter {s['e2gan_trained']['trainable_params']:,} "
                   f"trainable; width {s['e2gan_paper_width']['width']} {s['e2gan_paper_width']['generator_params']:,} params, "
                   f"adapter {s['e2gan_paper_width']['trainable_params']:,}; pix2pix ngf={p['ngf']} "
                   f"{s2p['pix2pix_trained_params']:,}, ngf={s['e2gan_paper_width']['width']} {s2p['pix2pix_paper_params']:,}.")
        out.append("")
    return out


def _speed(d: dict) -> list[str]:
    out = ["| pair | res | backend | E²GAN ms | pix2pix ms | ratio | paired ratio | MACs ratio | rounds | also timed |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        out.append(f"| {r['pair']} (w{r['width']} / ngf{r['ngf']}, {r['other']}) | {r['resolution']}² | {r['backend']} | "
                   f"{r['e2gan_ms']:.2f} | {r['other_ms']:.2f} | {r['ratio']:.2f}× | {r['ratio_paired']:.2f}× | "
                   f"{r['macs_ratio']:.2f} | {r['rounds']} | "
                   + ", ".join(f"{k} {v:.2f} ms" for k, v in r["extra_sides"].items()) + " |")
    if d.get("macs_by_group"):
        out += ["", "MACs by layer group (torch.utils.flop_counter; transposed convs at input resolution):", ""]
    for key, models in (d.get("macs_by_group") or {}).items():
        parts = []
        for name, groups in models.items():
            total = groups.get("total") or 1
            parts.append(f"{name} {total / 1e9:.2f} G (" + ", ".join(
                f"{g} {100 * v / total:.0f}%" for g, v in groups.items() if g != "total" and v) + ")")
        out.append(f"- MACs at {key}: " + "; ".join(parts))
    if d.get("quality"):
        q = d["quality"]
        out += ["", f"Quality of the preset pair ({q['what']}): E²GAN {q['e2gan']:.2f} dB, pix2pix {q['pix2pix']:.2f} dB, "
                f"identity {q['identity']:.2f} dB on `{q['concept']}`."]
    return out


def _kernel(d: dict) -> list[str]:
    out = []
    cp = d.get("cpu_peak")
    if cp:   # what the peak is made of: read, assumed, measured
        t = cp["theoretical"]
        out += [f"CPU peak {cp['gflops']:.1f} GFLOP/s ({cp['honest']['note']}). Theoretical: "
                + "; ".join(f"{k} ({how}): {what}" for k, (how, what) in t["parts"].items())
                + f". Best GEMM measured: {cp['measured_gemm_gflops']:.1f} GFLOP/s ({cp['measured_gemm_by']}).", ""]
    out += ["| model | res | MACs | peak GFLOP/s | best GEMM GFLOP/s | LiteRT ms | LiteRT % | eager ms | eager % | lone conv3x3 % |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        out.append(f"| {r['model']} ({r['pair']}) | {r['resolution']}² | {r['macs'] / 1e9:.3f} G | "
                   f"{r.get('peak_gflops', r['gemm_peak_gflops']):.1f} | {r['gemm_peak_gflops']:.1f} | "
                   f"{r['litert']['median_ms']:.2f} | {100 * r['litert']['peak_fraction']:.1f}% | {r['torch']['median_ms']:.2f} | "
                   f"{100 * r['torch']['peak_fraction']:.1f}% | {100 * r['conv3x3']['peak_fraction']:.1f}% |")
    out += ["", "Eager profiles (share of self CPU time by operator kind; top operators):", ""]
    for r in d["rows"]:
        p = r.get("profile_eager")
        if p:
            shares = ", ".join(f"{k} {100 * v:.0f}%" for k, v in sorted(p["share"].items(), key=lambda kv: -kv[1]))
            top = ", ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in p["top_ops"][:4])
            out.append(f"- {r['model']} at {r['resolution']}²: {shares}. Top: {top}.")
    return out


def _throughput(d: dict) -> list[str]:
    out = [f"Batch {d['batch_size']} at {d['resolution']}², {d['device']}, {d['threads']} threads, fp32 peak "
           f"{d.get('peak_gflops', d['gemm_peak_gflops']):.1f} GFLOP/s (best GEMM {d['gemm_peak_gflops']:.1f}).", "",
           "| model | ms/step | img/s | GFLOP/step | GFLOP/s | % of peak | vs E²GAN |", "|---|---|---|---|---|---|---|"]
    for k, s in d["steps"].items():
        out.append(f"| {k} | {1000 * s['step_seconds']:.0f} | {s['images_per_s']:.1f} | {s['flops_per_step'] / 1e9:.2f} | "
                   f"{s['achieved_gflops']:.1f} | {100 * s['peak_fraction']:.1f}% | {fmt(s.get('slower_than_e2gan'), '×')} |")
    lp = d["loop"]
    out += ["", f"Inside the Lightning loop ({lp['steps']} steps): {lp['images_per_s']:.1f} img/s, "
            f"{1000 * lp['step_seconds']:.0f} ms/step vs {1000 * lp['bare_step_seconds_around']:.0f} ms bare "
            f"({100 * lp['loop_overhead']:+.0f}%; {lp['note']})."]
    o = d.get("omp_wait_policy")
    if o:
        a, p = o["best_of"]["ACTIVE"], o["best_of"]["PASSIVE"]
        out.append(f"OpenMP wait policy (fresh processes, {o['threads']} threads, load average {o['loadavg']}): training step "
                   f"{1000 * a['step_seconds']:.0f} ms spinning vs {1000 * p['step_seconds']:.0f} ms sleeping "
                   f"({o['active_over_passive_step']:.2f}×); batch-1 forward {1000 * a['forward_seconds']:.1f} ms vs "
                   f"{1000 * p['forward_seconds']:.1f} ms ({o['active_over_passive_forward']:.1f}×).")
    if d.get("base_run"):
        b = d["base_run"]
        out.append(f"The cached base run trained at {b['images_per_s']:.1f} img/s ({b['note']}).")
    return out


def _overheads(d: dict) -> list[str]:
    out = []
    if "cli_startup" in d:
        c = d["cli_startup"]
        out += [f"`{c['command']}`: median {c['seconds']:.2f} s over {c['runs']} runs (bare python {c['python_floor_seconds']:.2f} s). "
                f"Slowest imports: " + ", ".join(f"{r['module']} {r['cumulative_ms']:.0f} ms" for r in c["slowest_imports"]) + ".", ""]
    if "study_trial" in d:
        t = d["study_trial"]
        out += [f"Study trial ({t['steps']} steps): {t['wall_seconds']:.1f} s wall, overhead {t['overhead_seconds']:.1f} s "
                f"({100 * t['overhead_fraction']:.1f}%); study setup {t['study_setup_seconds']:.1f} s (once per study).", "",
                "| phase | seconds |", "|---|---|"]
        out += [f"| {k} | {v:.2f} |" for k, v in t["breakdown_seconds"].items()]
        out.append("")
    if "wrapper" in d:
        w = d["wrapper"]
        out += [f"Diffusion wrapper: raw {w['raw_s']['median']:.3f} s vs wrapper {w['wrapper_s']['median']:.3f} s "
                f"({100 * w['overhead_median']:+.1f}%, outputs identical: {w['outputs_identical']}).", ""]
    for key in ("distill_tiny_diffusion", "distill_procedural"):
        if key not in d:
            continue
        x = d[key]
        out += [f"distill() with the {x['teacher']} teacher: {x['pairs_written']} pairs in {x['seconds']:.2f} s, "
                f"teacher {x['teacher_seconds']:.2f} s ({fmt(x['overhead'], '%')} on top; "
                f"{x['overhead_ms_per_pair']:.2f} ms/pair outside the teacher), write mode `{x.get('write_mode', '?')}`."]
        modes = x.get("modes")
        if modes:
            phases = list(next(iter(modes.values()))["breakdown_seconds"])
            out += ["", f"Write modes, medians of {x['rounds']} interleaved runs (seconds):", "",
                    "| write mode | total | ms/pair outside teacher | overhead | fsync calls | " + " | ".join(phases) + " |",
                    "|---|---|---|---|---|" + "---|" * len(phases)]
            for m, v in modes.items():
                out.append(f"| {m} | {v['seconds']:.3f} | {v['overhead_ms_per_pair']:.2f} | {fmt(v['overhead'], '%')} | "
                           f"{v['fsync']['calls']} | " + " | ".join(f"{v['breakdown_seconds'][k]:.3f}" for k in phases) + " |")
        out.append("")
    return out


def _flop(x: float) -> str:
    return f"{x / 1e12:.2f} TFLOP" if x >= 1e12 else f"{x / 1e9:.1f} GFLOP"


def _paper_cost(d: dict) -> list[str]:
    c, gib = d["counted"], 2 ** 30
    steps = {str(k): v for k, v in c["base_step"].items()}   # int keys in memory, str keys from JSON
    e = c["ip2p_edit"]
    out = [f"Counted FLOPs: base step {_flop(max(steps.values()))} at batch {max(steps, key=steps.get)} "
           f"({_flop(steps['1'])} at batch 1), LoRA step {_flop(c['lora_step'])}, generator forward "
           f"{_flop(c['generator_forward'])} per image, Inception {_flop(c['inception_forward'])} per image, "
           f"LPIPS-AlexNet {_flop(c['lpips_pair'])} per pair, one InstructPix2Pix edit {_flop(e['total'])} "
           f"({e['steps']} UNet steps of {_flop(e['unet_step'])} at {e['resolution']}²).", "",
           "| batch | peak memory | rise over models + batch | step seconds (CPU) |", "|---|---|---|---|"]
    for b, m in d["memory"].items():
        if m.get("extrapolated"):
            out.append(f"| {b} | {m['peak_bytes'] / gib:.2f} GiB (extrapolated, not run) | — | — |")
        else:
            out.append(f"| {b} | {m['peak_bytes'] / gib:.2f} GiB | {m['rise_bytes'] / gib:.2f} GiB | {m['seconds']:.1f} |")
    out += ["", f"GPU time per stage, **estimated** from counted FLOPs ({d['rate_note']}):", "",
            "| stage | FLOPs | GPU-hours (estimate) | basis |", "|---|---|---|---|"]
    for r in d["stages"]:
        out.append(f"| {r['stage']} | {r['flops']:.2e} | {r['gpu_hours_estimated']:.3g} | {r['basis']} |")
    return out


def _lora_step(d: dict) -> list[str]:
    out = [f"Batch {d['batch_size']} at {d['resolution']}², {d['device']}, {d['threads']} threads, D {d['disc']}, "
           f"{d['rounds']} rounds interleaved.", "", "| side | ms/step | generator fwd+bwd ms | trainable params |",
           "|---|---|---|---|"]
    for k, s in d["steps"].items():
        out.append(f"| {k} | {1000 * s['step_seconds']:.0f} | {1000 * d['generator_fwd_bwd'][k]['seconds']:.0f} | "
                   f"{d['trainable_params'][k]} |")
    return out


def _precision(d: dict) -> list[str]:
    if "skipped" in d:
        return [f"Not measured: {d['skipped']}."]
    out = [f"Batch {d['batch_size']} at {d['resolution']}², {d['threads']} threads, {d['rounds']} rounds interleaved.", "",
           "| arm | float32 ms/step | bf16-mixed ms/step | bf16 ÷ float32 |", "|---|---|---|---|"]
    for arm, ratio in d["bf16_over_fp32"].items():
        out.append(f"| {arm} | {1000 * d['steps'][arm + '-fp32']['step_seconds']:.0f} | "
                   f"{1000 * d['steps'][arm + '-bf16']['step_seconds']:.0f} | {ratio:.2f}× |")
    return out


def _chaos(d: dict) -> list[str]:
    out = [f"{d['workers']} workers (one coordinator), {d['cells']} cells, kills every ~{d['kill_every_s']:.0f} s for "
           f"{d['seconds_asked']:.0f} s plus one PostgreSQL restart; heartbeat {d['heartbeat_s']} s, grace {d['grace_s']} s.", "",
           "| fleet | wall s | cells/min | kills | failed attempts | lost | COMPLETE twice | RUNNING twice at once | tracebacks |",
           "|---|---|---|---|---|---|---|---|---|"]
    for arm in ("clean", "chaos"):
        a = d[arm]
        out.append(f"| {arm} | {a['wall_s']:.0f} | {a['cells_per_min']:.2f} | {a['kills']} | {a['failed_attempts']} | "
                   f"{a['lost']} | {a['duplicated']} | {a['twice_at_once']} | {a['tracebacks']} |")
    r = d["chaos"].get("restart")
    if r:
        out += ["", f"Restart at {r['at_s']:.0f} s with {r['running']} cells training; the server was down {r['down_s']:.1f} s."]
    return out


def _eval_share(d: dict) -> list[str]:
    e, sides = d["evaluation_seconds"], d.get("sides", {})
    return [f"One LoRA cell on {d['concept']} ({d['steps']} steps, training clock {d['train_seconds']:.1f} s), "
            f"`evaluate_run` on {d['n_test']} test images with a warm feature cache; {d['device']}, {d['threads']} threads, "
            f"{d['rounds']} rounds interleaved. The concept's first evaluation (fills the cache): "
            f"{d['first_evaluation_seconds']:.1f} s.", "", "| side | evaluation s | share of the cell |", "|---|---|---|",
            f"| before: {sides.get('before', 'as before')} | {e['before']:.1f} | {d['share_before']:.1%} |",
            f"| after: {sides.get('after', 'now')} | {e['after']:.1f} | {d['share']:.1%} |", "",
            f"Metrics of the two paths agree to {d['max_relative_metric_difference']:.1e} relative."]


def _cell_rate(d: dict) -> list[str]:
    w, r, t = d["wall_seconds"], d["cells_per_minute"], d["threads"]
    return [f"{d['cells']} cells ({', '.join(d['arms'])} on {d['concept']}, seeds {d['seeds']}), each side in a fresh runs "
            "folder sharing the data and base model, cold feature cache.", "",
            "| side | threads per process | wall s | cells/min |", "|---|---|---|---|",
            f"| one process | {t['one_process']} | {w['one_process']:.0f} | {r['one_process']:.2f} |",
            f"| two workers | {t['two_workers']} | {w['two_workers']:.0f} | {r['two_workers']:.2f} |",
            *([f"| one process, bf16-mixed training | {t['one_process']} | {b['wall_seconds']:.0f} | "
               f"{b['cells_per_minute']:.2f} |"] if (b := d.get("one_process_bf16")) else []), "",
            f"One process ÷ two workers: {d['speedup']:.2f}×."
            + (f" float32 ÷ bf16-mixed: {w['one_process'] / b['wall_seconds']:.2f}×." if b else "")]


DETAILS = {"adaptation": _adaptation, "speed": _speed, "kernel": _kernel, "throughput": _throughput,
           "lora_step": _lora_step, "precision": _precision, "overheads": _overheads, "paper_cost": _paper_cost, "chaos": _chaos,
           "eval_share": _eval_share, "cell_rate": _cell_rate}


def findings_sections(report: dict) -> list[str]:
    """The "Before / after" and "Missed targets" sections, each only when it has rows (a run's page
    and LATEST.md both show them)."""
    parts = []
    ba = before_after_table(report)
    if ba:
        parts += ["## Before / after", "", ba, ""]
    miss = missed(report)
    if miss:
        parts += ["## Missed targets", "", *miss, ""]
    return parts


def render_run(report: dict) -> str:
    parts = [f"# Benchmarks {report['started']} ({report['host']})", "", header(report), "", summary_table(report), "",
             *findings_sections(report)]
    for name, b in report["benchmarks"].items():
        parts += [f"## {b['title']}", "", f"{b['seconds']:.0f} s; load average {b.get('loadavg_start')} → {b.get('loadavg_end')}.", ""]
        if b["status"] != "ok":
            parts += [f"**error**: {b.get('error')}", ""]
            continue
        try:
            details = DETAILS.get(name) or import_module(f"benchmarks.{name}").details  # a benchmark's own page
            parts += [*details(b["data"]), ""]
        except (KeyError, TypeError, ValueError, AttributeError, ImportError) as exc:  # details are a courtesy; the JSON has the numbers
            parts += [f"(details not rendered: {type(exc).__name__}: {exc})", ""]
    return "\n".join(parts)
