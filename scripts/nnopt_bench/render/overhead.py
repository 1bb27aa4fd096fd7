"""The headline, section 1 (framework overhead) and the per-step breakdown, as markdown lines."""

from __future__ import annotations

from typing import Any

from nnopt_bench.config import BREAKDOWN, FUSED_STEPS, OVERHEAD_TARGETS
from nnopt_bench.render.format import fmt_s, yes


def headline_markdown(results: dict[str, Any]) -> list[str]:
    """Each issue-15 target, met or missed, from this run's own alternated measurements: the default config
    (`trainer.fused_steps=1`) and the same with fused steps."""
    lines = [
        "",
        "## Headline: nnopt's training pass / a hand-written loop (same run, same data, model, optimizer, "
        "batch and threads)",
        "",
        f"The default config (`trainer.fused_steps=1`) and the same with `trainer.fused_steps={FUSED_STEPS}`.",
        "Each nnopt epoch is bracketed by bare-loop epochs run right before and right after it in the same process; "
        "the ratio is the median over epochs of nnopt / the mean of its two bare epochs, in process CPU time (with "
        "1 thread per process the work each variant does; met/missed is judged on it, or on wall time with more "
        "threads), with the range over epochs and, in brackets, the same in wall time.",
        "",
        "| target | limit | goal | default: nnopt / bare | met | fused: nnopt / bare | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, target in OVERHEAD_TARGETS.items():
        r = results.get(key)
        goal_cell = "–" if target["goal"] is None else f"≤ {target['goal']:.2f}"
        head = f"| {target['label']} (`{' '.join(target['overrides'])}`) | ≤ {target['max']:.2f} | {goal_cell} |"
        if not r or "error" in r:
            lines.append(f"{head} {'failed: ' + r['error'] if r else 'not run'} | – | – | – |")
            continue
        cells = []
        for prefix in ("", "fused_"):
            goal = r.get(f"{prefix}meets_goal")
            met = "met" if r[f"{prefix}meets_target"] else "**missed**"
            if goal is not None:
                met += f" (goal {'met' if goal else 'missed'})"
            cpu, wall = r[f"{prefix}bracketed_cpu_ratio"], r[f"{prefix}bracketed_ratio"]
            cells.append(
                f"{cpu['median']:.3f}× CPU ({cpu['min']:.2f}–{cpu['max']:.2f}, n={cpu['n']}; "
                f"{wall['median']:.3f}× wall) | {met}"
            )
        lines.append(f"{head} {cells[0]} | {cells[1]} |")
    return lines


def overhead_markdown(results: dict[str, Any]) -> list[str]:
    """Section 1: one row per overhead target, both nnopt variants against their bare epochs."""
    lines: list[str] = []
    lines += [
        "",
        "## 1. Framework overhead (full `nnopt-train` path vs a hand-written loop)",
        "",
        "| model | bare loop train (wall) | nnopt train (wall) | bracketed CPU / wall ratio | paired CPU | "
        "pooled CPU / wall | limit (goal) | met | ms/step added | ratio incl. validation | "
        f"fused ({FUSED_STEPS}) train | fused bracketed CPU / wall | fused paired CPU | fused pooled CPU / wall | "
        "fused met | A/A: bare after / before |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in OVERHEAD_TARGETS:
        r = results.get(key)
        if not r or "error" in r:
            lines.append(f"| {key} | {r.get('error') if r else 'not run'} |||||||||||||||")
            continue
        goal = f" ({r['target_goal']:.2f})" if r.get("target_goal") else ""
        lines.append(
            f"| {key} (`{r['model']}`, {r['steps_per_epoch']} steps) | {fmt_s(r['bare_train_s'])} | "
            f"{fmt_s(r['nnopt_train_s'])} | {r['bracketed_cpu_ratio']['median']:.3f} / "
            f"{r['bracketed_ratio']['median']:.3f} | {r['paired_cpu_ratio']['median']:.3f} | "
            f"{r['cpu_overhead_ratio']:.3f} / {r['overhead_ratio']:.3f} | ≤ {r['target_max']:.2f}{goal} | "
            f"{yes(r['meets_target'])} | {r['overhead_ms_per_step']:.2f} | {r['overhead_ratio_with_validation']:.3f} | "
            f"{fmt_s(r['fused_train_s'])} | {r['fused_bracketed_cpu_ratio']['median']:.3f} / "
            f"{r['fused_bracketed_ratio']['median']:.3f} | {r['fused_paired_cpu_ratio']['median']:.3f} | "
            f"{r['fused_cpu_overhead_ratio']:.3f} / {r['fused_overhead_ratio']:.3f} | "
            f"{yes(r['fused_meets_target'])} | {r['bare_after_over_before_cpu']['median']:.3f} "
            f"(n={r['bare_after_over_before_cpu']['n']}) |"
        )
    lines += [
        "",
        "Bracketed (what met/missed is judged on): the median over epochs of nnopt's epoch / the mean of the bare "
        "epochs run right before and right after it in the same process. Paired: the same with the bare epoch "
        "before only. Pooled: the median of all nnopt epochs / the median of all bare epochs, which machine drift "
        "between epochs widens. A/A: the bare epoch after / the bare epoch before each nnopt epoch, in CPU time "
        "(1.000 for an unbiased pairing; its distance from 1 is the order and drift error a one-sided pairing "
        "would carry).",
    ]
    lines += [
        "",
        "The nnopt run is the default config (model checkpoint, early stopping, rich progress bar, "
        "divergence check every 50 steps, model summary, CSV logger) plus a timing callback, "
        f"`trainer.threads={results['meta']['machine']['torch_threads']}`.",
    ]
    return lines


def breakdown_markdown(r: dict[str, Any] | None) -> list[str]:
    """The breakdown table (one row per added layer) and the grouped profile."""
    lines = ["", "### Where the per-step time goes", ""]
    if not r or "error" in r:
        return [*lines, f"Not run: {r.get('error') if r else 'skipped'}"]
    lines += [
        f"`{r['model']}`, {r['steps_per_epoch']} steps/epoch; each row adds one layer to the row above "
        "(alternated, medians).",
        "",
        "| variant | train pass | adds | ms/step added |",
        "|---|---|---|---|",
        f"| bare loop | {fmt_s(r['train_s']['bare'])} | | |",
    ]
    layers = r["layers"]
    for name in [k for k in BREAKDOWN if k in layers] + sorted(k for k in layers if k not in BREAKDOWN):
        layer = layers[name]
        lines.append(f"| {name} | {fmt_s(r['train_s'][name])} | {layer['adds']} | {layer['ms_per_step']:+.3f} |")
    lines += [
        "",
        f"Lightning alone costs {r['lightning_minimal_over_bare_ratio']:.3f}× the bare loop; nnopt's "
        f"default run {r['nnopt_default_over_bare_ratio']:.3f}× the bare loop and "
        f"{r['nnopt_default_over_lightning_minimal_ratio']:.3f}× minimal Lightning.",
    ]
    prof = r.get("profile")
    if prof:
        lines += [
            "",
            "cProfile of one default training pass (self time per step; profiling inflates Python-side "
            "costs, so read it for proportions):",
            "",
            "| where | ms/step |",
            "|---|---|",
        ]
        groups = sorted(prof["groups_ms_per_step"].items(), key=lambda kv: -kv[1])  # the file sorts them by name
        lines += [f"| {k} | {v:.3f} |" for k, v in groups]
        lines += [
            "",
            "Top functions by self time: "
            + "; ".join(f"`{t['fn']}` {t['ms_per_step']:.3f} ms" for t in prof["top_self_time"][:8])
            + ".",
        ]
    return lines
