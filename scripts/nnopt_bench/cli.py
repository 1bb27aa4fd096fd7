"""`scripts/bench.py`'s command line: parse, check the inputs, measure the sections, write results.json, render.

The measuring modules (torch, Lightning, nnopt's runs) are imported only when something is measured, so
`--render-only` starts in well under a second.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from nnopt_bench import ROOT
from nnopt_bench import results as R
from nnopt_bench.config import FASHION, GROUPS, MODES
from nnopt_bench.render import FILENAME as MARKDOWN
from nnopt_bench.render import render

DESCRIPTION = "`make bench`: nnopt against a bare PyTorch loop, a per-sample data path, and the compression targets."


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION)
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quick", action="store_true", help="~3 min check on Fashion-MNIST (few batches)")
    group.add_argument("--smoke", action="store_true", help="seconds, on digits: wiring check for the tests")
    p.add_argument("--out", type=Path, default=ROOT / "bench", help="where results.json/RESULTS.md go")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for every variant (default 1: stable ratios on a shared machine)",
    )
    p.add_argument("--only", nargs="*", default=None, choices=list(GROUPS))
    p.add_argument(
        "--template-dir",
        type=Path,
        default=None,
        help="a lightning-hydra-template checkout: measure its default job live in section 2",
    )
    p.add_argument(
        "--template-python",
        default="",
        help="the Python that runs the template (its own environment; default: this one)",
    )
    p.add_argument("--keep", action="store_true", help="keep the runs' output dir")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite <out>/RESULTS.md from <out>/results.json",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.render_only:
        if not (args.out / R.FILENAME).is_file():
            print(f"bench: error: --render-only: {args.out / R.FILENAME} missing", file=sys.stderr)
            return 2
        print(f"bench: wrote {render(args.out)}", file=sys.stderr)
        return 0
    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if "fashion_mnist" in " ".join(mode.data) and not Path(FASHION).is_dir():
        print(f"bench: error: {FASHION} missing (apt-get install dataset-fashion-mnist); try --smoke", file=sys.stderr)
        return 2
    template_dir = args.template_dir.expanduser().resolve() if args.template_dir else None
    if template_dir is not None and not (template_dir / "src" / "train.py").is_file():
        print(
            f"bench: error: --template-dir={template_dir} has no src/train.py (a lightning-hydra-template "
            "checkout is expected)",
            file=sys.stderr,
        )
        return 2
    import torch

    from nnopt_bench import sections
    from nnopt_bench.runner import Bench

    torch.set_num_threads(args.threads)
    os.environ.setdefault("WANDB_MODE", "offline")
    work = Path(tempfile.mkdtemp(prefix="nnopt-bench-"))
    os.environ["NNOPT_ROOT"] = str(work)  # any stray run output lands in the temp dir, never in the repo
    start, load_start = time.perf_counter(), os.getloadavg()
    try:
        results = sections.run(Bench(mode, work, args.threads, template_dir, args.template_python), args.only)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    command = "python scripts/bench.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    elapsed = time.perf_counter() - start
    results["meta"] = R.meta(command, mode, elapsed, args.threads, load_start, str(work) if args.keep else None)
    if args.only is not None:
        R.carry_over(results, args.out / R.FILENAME)
    written = R.write(args.out, results)
    render(args.out)  # from the file just written: what --render-only would write for it
    print(f"bench: wrote {written} and {args.out / MARKDOWN}", file=sys.stderr)
    return 1 if any("error" in v for v in results.values() if isinstance(v, dict)) else 0
