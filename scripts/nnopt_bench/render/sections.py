"""Sections 2-7 of RESULTS.md (data path, start-up, time to accuracy, compression, sweep, GPU) as markdown lines."""

from __future__ import annotations

from typing import Any

from nnopt.metrics import summary as S
from nnopt_bench.config import COMPRESSION_MODELS
from nnopt_bench.render.format import fmt_s, num, yes


def data_path_markdown(d: dict[str, Any] | None) -> list[str]:
    """Section 2: in-memory vs per-sample batches vs nnopt (and the template, only where measured live)."""
    lines = ["", "## 2. Data path and the lightning-hydra-template comparison", ""]
    if not d or "error" in d:
        return [*lines, f"Not run: {d.get('error') if d else 'skipped'}"]
    lines += [
        f"Model `{d['model']}` (the template's default job), {d['steps_per_epoch']} steps per epoch.",
        "",
        "| measure | training pass | ratio | target | met |",
        "|---|---|---|---|---|",
        f"| bare loop, in-memory batches (nnopt's `TensorBatches` way) | {fmt_s(d['bare_in_memory_train_s'])} | 1 |||",
        f"| bare loop, per-sample `Dataset` + `DataLoader` (PIL → ToTensor → Normalize) | "
        f"{fmt_s(d['bare_per_sample_train_s'])} | {d['speedup_in_memory_vs_per_sample']:.2f}× the in-memory loop "
        f"| in-memory ≥ 1.5× faster | {yes(d['meets_data_path_target'])} |",
        f"| nnopt full path | {fmt_s(d['nnopt_train_s'])} | {d['nnopt_over_bare_ratio']:.3f}× the in-memory loop "
        f"({d['nnopt_overhead_ms_per_step']:+.2f} ms/step) |||",
    ]
    if d.get("template_measured"):
        lines += [
            f"| lightning-hydra-template, live (`{d['template_command']}`) | {fmt_s(d['template_train_s'])} | "
            f"{d['template_over_bare_ratio']:.2f}× the in-memory loop; nnopt {d['speedup_vs_template']:.2f}× "
            f"faster | nnopt ≥ 8× faster | {yes(d['meets_template_target'])} |",
        ]
    ref = d["template_external_reference"]
    lines += [
        "",
        "lightning-hydra-template: "
        + (
            "measured live above."
            if d.get("template_measured")
            else "not measured in this run (pass `--template-dir <checkout>` and, if it needs its own environment, "
            "`--template-python`)."
        )
        + f" External reference, not comparable with this run's figures and not used in "
        f"any ratio: {ref['template_train_epoch_s']} s per training epoch vs {ref['bare_in_memory_train_epoch_s']} s "
        f"for a bare in-memory loop ({ref['source']}).",
    ]
    if not d["whole_epochs"]:
        lines.append("\n(Epochs were cut to a few batches in this mode.)")
    return lines


def startup_markdown(r: dict[str, Any] | None) -> list[str]:
    """Section 3: one row per start-up measurement, in the order results.json holds them."""
    lines = ["", "## 3. Start-up", ""]
    if not r or "error" in r:
        return [*lines, f"Not run: {r.get('error') if r else 'skipped'}"]
    lines += [
        "Cold subprocesses, alternated; the first training step is stamped by a callback.",
        "",
        "| what | command → first training step | whole command |",
        "|---|---|---|",
    ]
    for row in r.values():
        if not isinstance(row, dict) or "wall_s" not in row:
            continue
        first = fmt_s(row["to_first_step_s"]) if "to_first_step_s" in row else "–"
        lines.append(f"| {row['what']} | {first} | {fmt_s(row['wall_s'])} |")
    return lines


def accuracy_markdown(t: dict[str, Any] | None) -> list[str]:
    """Section 4: seconds (and epochs) to the target test accuracy, and the accuracy curve."""
    lines = ["", "## 4. Time to accuracy", ""]
    if not t or "error" in t:
        lines.append(f"Not run: {t.get('error') if t else 'skipped'}")
    else:
        got = (
            f"**{t['seconds_to_target']:.1f} s** (epoch {t['epochs_to_target']})"
            if t["reached"]
            else f"**not reached** within {t['max_epochs']} epoch(s)"
        )
        curve = ", ".join(f"{c['epoch']}: {c['test_acc']:.4f} @ {c['elapsed_s']:.1f} s" for c in t["curve"])
        lines += [
            f"Recipe: `nnopt-train {t['recipe']}`. Test accuracy ≥ {t['target_test_acc']:.0%}: {got}; training "
            f"time with validation, test scoring excluded; whole run incl. data loading and final test "
            f"{t['run_wall_s']:.1f} s.",
            "",
            f"Test accuracy per epoch: {curve}.",
        ]
    return lines


def compression_markdown(c: dict[str, Any] | None, data: list[str]) -> list[str]:
    """Section 5: one row per model and variant, ratios to dense, with the published reference."""
    lines = ["", "## 5. Compression (ratios to the dense model of the same run)", ""]
    if not c or "error" in c:
        lines.append(f"Not run: {c.get('error') if c else 'skipped'}")
    elif not c.get("available"):
        lines.append(c["note"])
    else:
        lines += [
            f"`nnopt-train {' '.join(data)} model=... compression=... "
            f"compression.sparsity=0.9 trainer.max_epochs={c['epochs']}`.",
            "",
            "| model | variant | test acc | drop (pt) | sparsity | size | gzip size | latency b1 | latency b256 "
            "| target met |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for model in COMPRESSION_MODELS:
            for variant, row in (c.get(model) or {}).items():
                if "error" in row:
                    lines.append(f"| {model} | {variant} | failed: {row['error']} ||||||||")
                    continue
                size = f"{row[S.SIZE_BYTES] / 1024:.0f} KiB" + (
                    f" ({row['size_ratio']:.2f}×)" if row.get("size_ratio") else ""
                )
                gz = f"{row[S.SIZE_BYTES_GZIP] / 1024:.0f} KiB" + (
                    f" ({row['size_gzip_ratio']:.2f}×)" if row.get("size_gzip_ratio") else ""
                )
                l1 = f"{row[S.LATENCY_B1]:.3f} ms" + (
                    f" ({row['latency_b1_ratio']:.2f}×)" if row.get("latency_b1_ratio") else ""
                )
                l256 = f"{row[S.LATENCY_B256]:.2f} ms" + (
                    f" ({row['latency_b256_ratio']:.2f}×)" if row.get("latency_b256_ratio") else ""
                )
                lines.append(
                    f"| {model} | {variant} | {num(row[S.TEST_ACC], '.4f')} | "
                    f"{num(row.get('acc_drop_pt'), '+.2f')} | {num(row[S.SPARSITY], '.3f')} | {size} | "
                    f"{gz} | {l1} | {l256} | {yes(row.get('meets_target'))} |"
                )
        lines += [
            "",
            "Targets: pruning ≥ 90 % sparsity (biases, ~0.2 % of the parameters, stay dense: ≥ 0.895 "
            "counts) within 1 pt; int8 ≥ 3.5× smaller (size ratio ≤ 0.286), "
            "≥ 2× faster at batch 256 (ratio ≤ 0.5), within 0.5 pt.",
            "",
            "Han et al. 2015 (MNIST, for comparison): LeNet-300-100 error 1.64 → 1.59 %, 267K → 22K weights "
            "(12×); LeNet-5 0.80 → 0.77 %, 431K → 36K (12×); Deep Compression 2016 (pruning + quantization + "
            "Huffman): 40× / 39× smaller.",
        ]
    return lines


def sweep_markdown(s: dict[str, Any] | None) -> list[str]:
    """Section 6: jobs per minute with each launcher."""
    lines = ["", "## 6. Sweep throughput", ""]
    if not s or "error" in s:
        lines.append(f"Not run: {s.get('error') if s else 'skipped'}")
    else:
        lines += [
            f"{s['jobs']}-job grid: `nnopt-train -m {s['grid']}`.",
            "",
            "| launcher | threads per job | wall | jobs/min |",
            "|---|---|---|---|",
        ]
        for name in ("basic", "joblib"):
            r = s[name]
            lines.append(f"| {name} | {r['threads_per_job']} | {r['wall_s']:.1f} s | {r['jobs_per_min']:.1f} |")
        lines.append(f"\njoblib (n_jobs=2) speedup over basic: {s['joblib_speedup']:.2f}×.")
    return lines
