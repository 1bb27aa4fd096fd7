"""nnopt on one GPU in one command: throughput against a bare PyTorch loop, compile, QAT, FSDP, packing.

A lent GPU comes with a few minutes of device time, so the whole check is one call: each section runs under its own
time limit inside one overall budget, and a section that fails is recorded (status and one line) while the others
carry on. `--cpu` runs the same sections at tiny sizes on the CPU; that is how the fast test tier checks this script.

    scripts/gpu_check.sh --out "$OUT"                  # on the GPU machine (installs hydra/omegaconf from wheels)
    python scripts/gpu_check.py --cpu --out /tmp/gc     # wiring check on a CPU, ~30-60 s

Sections (keys of `sections` in gpu_check.json; gpu_check.md: the same as tables; gpu_check.log: every run's output):
- throughput: the default job (MLP 300-100) and LeNet-5, fp32 and bf16-mixed, `trainer.fused_steps=1` and 16, each
  against a bare loop on the same model, data (resident on the device), batch and optimizer; goal: fused >= 0.80x;
- packing: N copies of the MLP trained in lock-step (`torch.func` vmap, and stacked `baddbmm`) vs N sequential runs;
- qat: `compression=qat` trained on the device, ending in an int8 model (tested on CPU, as nnopt does);
- fsdp: `trainer=fsdp trainer.devices=1`: a run or its one-line refusal;
- compile: `compile=true`: compiled, or eager after its warning, and its samples/s.

nnopt runs go through its real CLI (`python -m nnopt.train`); figures come from each run's summary.json and from
epoch_times.json, written by `epoch_timer` below, which the check adds to each run as one more callback through the
config. Its per-epoch times (validation excluded, the device synchronised at each edge) give a steady rate: the
median over epochs after the first, so CUDA/cuBLAS start-up is out of both sides of the ratio.
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
EPOCH_FILE = "epoch_times.json"
BATCH = 128  # data.batch_size of every nnopt data config used here
FUSED_GOAL = 0.80  # the goal: fused steps reach at least 80 % of the bare loop's samples/s
COMPILE_FALLBACK = "compile=true: torch.compile is unavailable here"
SECTIONS = ("throughput", "packing", "qat", "fsdp", "compile")


# -- the callback nnopt runs with ----------------------------------------------------------------------------
def epoch_timer() -> Any:
    """A Lightning callback for `+callbacks.gpu_check_epochs._target_=gpu_check.epoch_timer`: writes each training
    epoch's wall time less its validation to <run dir>/epoch_times.json. The device is synchronised at every edge,
    so kernels queued in an epoch are counted in it (nnopt's own timer does not synchronise)."""
    import pytorch_lightning as pl
    from typing_extensions import override

    def sync(module: pl.LightningModule) -> None:
        if module.device.type == "cuda":
            torch.cuda.synchronize(module.device)

    class EpochTimes(pl.Callback):
        def __init__(self) -> None:
            self.epoch_s: list[float] = []
            self._start: float | None = None
            self._val_start = 0.0
            self._val = 0.0

        @override
        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            sync(pl_module)
            self._start, self._val = time.perf_counter(), 0.0

        @override
        def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            sync(pl_module)
            self._val_start = time.perf_counter()

        @override
        def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if self._start is not None:  # not the sanity check before training
                sync(pl_module)
                self._val += time.perf_counter() - self._val_start

        @override
        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if self._start is not None:
                sync(pl_module)
                self.epoch_s.append(time.perf_counter() - self._start - self._val)
                self._start = None

        @override
        def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            if trainer.is_global_zero:
                out = {"epoch_s": self.epoch_s, "steps": trainer.global_step, "device": str(pl_module.device)}
                (Path(trainer.default_root_dir) / EPOCH_FILE).write_text(json.dumps(out))

    return EpochTimes()


# -- sizes ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """How much each section does: the GPU sizes fit ~5 min on an H200, the CPU ones a test (~30-60 s)."""

    trainer: str
    epochs: int
    qat_epochs: int
    limit_batches: int | None
    compile_fused: tuple[int, ...]
    pack_ns: tuple[int, ...]
    pack_steps: int
    pack_warmup: int
    bare_repeats: int
    limits_s: dict[str, int]
    budget_s: int


def sizes_for(cpu: bool, data: str) -> Sizes:
    if cpu:
        return Sizes(
            trainer="cpu",
            epochs=2,
            qat_epochs=3,
            limit_batches=3,
            compile_fused=(1,),
            pack_ns=(1, 4),
            pack_steps=5,
            pack_warmup=2,
            bare_repeats=1,
            # generous: a loaded shared CPU is slow, and these are limits, not expected times (~30-60 s in all)
            limits_s={"throughput": 300, "packing": 120, "qat": 200, "fsdp": 120, "compile": 200},
            budget_s=840,
        )
    fashion = data == "fashion_mnist"  # 430 steps an epoch at batch 128; digits has 10
    return Sizes(
        trainer="gpu",
        epochs=4 if fashion else 30,
        qat_epochs=3 if fashion else 6,
        limit_batches=None,
        compile_fused=(1, 16),
        pack_ns=(1, 4, 16, 64),
        pack_steps=100,
        pack_warmup=10,
        bare_repeats=2,
        limits_s={"throughput": 200, "packing": 60, "qat": 90, "fsdp": 60, "compile": 150},
        budget_s=420,
    )


class Budget:
    """The overall deadline: a section gets its own limit or what is left, whichever is less."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()

    def limit(self, section_s: float) -> float:
        return max(0.0, min(section_s, self.left()))


class Skip(Exception):
    """A section that cannot run here (no time left, nothing to compare with): status `skipped`, not `failed`."""


# -- running nnopt -------------------------------------------------------------------------------------------
@dataclass
class Run:
    rc: int | None  # None: killed at its time limit
    output: str
    summaries: list[dict[str, Any]]


class Runner:
    """Starts `python -m nnopt.train` runs into the work folder, logging their output to one file."""

    def __init__(self, work: Path, log: Path, cpu: bool, data_overrides: list[str]) -> None:
        self.work, self.log, self.cpu, self.data_overrides = work, log, cpu, data_overrides
        self.count = 0

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SCRIPTS), env.get("PYTHONPATH", "")) if p)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.cpu:
            env["OMP_NUM_THREADS"] = "1"  # the bare loops run with 1 thread too: a fair ratio on a shared CPU
        env.update(extra)
        return env

    def __call__(
        self, name: str, overrides: list[str], timeout: float, multirun: bool = False, env: dict[str, str] | None = None
    ) -> Run:
        if timeout < 5:
            raise Skip("no time left in the overall budget")
        self.count += 1
        log_dir = self.work / f"{self.count:02d}_{name}"
        cmd = [sys.executable, "-m", "nnopt.train", *(["-m"] if multirun else []), *self.data_overrides]
        cmd += [*overrides, f"paths.log_dir={log_dir}", "hydra.callbacks.sweep.report=false"]
        log_dir.mkdir(parents=True)
        out_file = log_dir / "output.txt"
        with out_file.open("w") as fh:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, env=self.env(env or {}), start_new_session=True
            )
            try:
                rc: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)  # its own process group: the run and anything it started
                proc.wait()
                rc = None
        output = out_file.read_text(errors="replace")
        with self.log.open("a") as fh:
            fh.write(f"\n===== {name}: {' '.join(cmd[1:])}\n===== rc={rc}\n{output[-200_000:]}\n")
        summaries = []
        for path in sorted(log_dir.rglob("summary.json")):
            summary = json.loads(path.read_text())
            times = path.parent / EPOCH_FILE
            summary["_epochs"] = json.loads(times.read_text()) if times.exists() else None
            summaries.append(summary)
        return Run(rc, output, summaries)


def last_line(text: str, pattern: str = r"nnopt: error:|Error|error") -> str:
    """The most telling line of a run's output: its one-line nnopt error, else the last line matching `pattern`."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("nnopt: error:"):
            return ln[:300]
    for ln in reversed(lines):
        if re.search(pattern, ln):
            return ln[:300]
    return lines[-1][:300] if lines else "(no output)"


def override_value(summary: dict[str, Any], key: str, default: str) -> str:
    for item in summary.get("overrides") or []:
        if item.startswith(f"{key}="):
            return item.split("=", 1)[1]
    return default


def steady_rate(summary: dict[str, Any]) -> tuple[float | None, int, int]:
    """(samples/s over the epochs after the first, samples per epoch, optimizer steps per epoch) of a run."""
    epochs = summary.get("train/epochs") or 0
    samples = summary.get("train/samples_rank0") or 0
    steps = summary.get("train/steps") or 0
    if not epochs or not samples:
        return None, 0, 0
    per_epoch, steps_per_epoch = samples // epochs, steps // epochs
    times = (summary.get("_epochs") or {}).get("epoch_s") or []
    steady = times[1:] or times
    return (per_epoch / statistics.median(steady) if steady else None), per_epoch, steps_per_epoch


# -- data and models -----------------------------------------------------------------------------------------
def load_train_images(data: str, data_dir: Path | None) -> torch.Tensor:
    """Images of the shape nnopt trains on (N, 1, 28, 28): digits upsampled as nnopt does, or Fashion-MNIST's IDX."""
    if data == "fashion_mnist":
        assert data_dir is not None
        with gzip.open(data_dir / "train-images-idx3-ubyte.gz", "rb") as fh:
            raw = fh.read()
        images = torch.frombuffer(bytearray(raw[16:]), dtype=torch.uint8).reshape(-1, 1, 28, 28)
        return images.float() / 255.0
    from sklearn.datasets import load_digits

    images = torch.tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    return F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)


def build_net(model: str) -> nn.Module:
    """The network nnopt builds for `model=<model>`: the class and arguments from conf/model/<model>.yaml."""
    node = yaml.safe_load((ROOT / "conf" / "model" / f"{model}.yaml").read_text())
    module_name, cls_name = node.pop("_target_").rsplit(".", 1)
    node.pop("name", None)
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(in_shape=(1, 28, 28), num_classes=10, **node)


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """Lightning's bf16-mixed: autocast to bfloat16 around forward and loss, no grad scaler."""
    if precision == "bf16-mixed":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bare_epochs(
    model: str, precision: str, x: torch.Tensor, y: torch.Tensor, batch: int, steps: int, epochs: int, seed: int
) -> list[float]:
    """A hand-written loop (shuffle, slice, forward, cross-entropy, backward, Adam 1e-3): epoch times after a warm-up
    epoch, on the data's device."""
    device = x.device
    torch.manual_seed(seed)
    net = build_net(model).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for _ in range(epochs + 1):
        sync(device)
        start = time.perf_counter()
        perm = torch.randperm(len(x), device=device)
        for i in range(steps):
            idx = perm[i * batch : (i + 1) * batch]
            with autocast(device, precision):
                loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sync(device)
        times.append(time.perf_counter() - start)
    return times[1:]


# -- sections ------------------------------------------------------------------------------------------------
@dataclass
class Context:
    args: argparse.Namespace
    sizes: Sizes
    runner: Runner
    budget: Budget
    device: torch.device
    images: torch.Tensor
    common: list[str]  # overrides of every nnopt run: device, quiet callbacks, no test pass
    results: dict[str, Any]


def limit_overrides(ctx: Context) -> list[str]:
    n = ctx.sizes.limit_batches
    return [f"trainer.limit_train_batches={n}", "trainer.limit_val_batches=1"] if n else []


def section_throughput(ctx: Context) -> dict[str, Any]:
    """One multirun of the 8 nnopt variants, then the bare loop for each model and precision with the same
    samples and steps per epoch as the nnopt run."""
    over = [
        *ctx.common,
        *limit_overrides(ctx),
        f"trainer={ctx.sizes.trainer}",
        f"trainer.max_epochs={ctx.sizes.epochs}",
    ]
    over += ["model=mlp,lenet5", "trainer.precision=32-true,bf16-mixed", "trainer.fused_steps=1,16"]
    run = ctx.runner("throughput", over, ctx.budget.limit(ctx.sizes.limits_s["throughput"]), multirun=True)
    rows, bare_cache = [], {}
    for s in run.summaries:
        model = (s.get("choices") or {}).get("model", "?")
        precision = override_value(s, "trainer.precision", "32-true")
        fused = int(override_value(s, "trainer.fused_steps", "1"))
        steady, per_epoch, steps = steady_rate(s)
        row = {"model": model, "precision": precision, "fused_steps": fused, "status": s.get("status")}
        row.update(nnopt_samples_per_s=steady, nnopt_summary_samples_per_s=s.get("train/samples_per_s"))
        row.update(epochs=s.get("train/epochs"), samples_per_epoch=per_epoch, steps_per_epoch=steps)
        row["error"] = s.get("error")
        if s.get("status") == "completed" and steady and steps:
            key = (model, precision)
            if key not in bare_cache:
                bare_cache[key] = bare_rate(ctx, model, precision, per_epoch, steps)
            row.update(bare_cache[key])
            row["ratio"] = steady / row["bare_samples_per_s"]
            row["goal_met"] = row["ratio"] >= FUSED_GOAL if fused > 1 else None
        rows.append(row)
    ok = [r for r in rows if r["status"] == "completed" and r.get("ratio")]
    status = "ok" if len(ok) == 8 else ("partial" if ok else ("timeout" if run.rc is None else "failed"))
    fused = [r for r in ok if r["fused_steps"] > 1]
    note = f"fused_steps=16 at >= {FUSED_GOAL:.2f}x the bare loop: {sum(r['goal_met'] for r in fused)} of {len(fused)}"
    error = None if status == "ok" else last_line(run.output)
    return {"status": status, "error": error, "note": note, "rows": rows}


def bare_rate(ctx: Context, model: str, precision: str, per_epoch: int, steps: int) -> dict[str, Any]:
    """Bare loop samples/s on the first `per_epoch` images (nnopt's train split size), `steps` batches an epoch."""
    x = ctx.images[:per_epoch].to(ctx.device)
    y = torch.randint(0, 10, (len(x),), device=ctx.device)
    rates = []
    for rep in range(ctx.sizes.bare_repeats):  # batches of BATCH, the last one partial, as nnopt slices them
        times = bare_epochs(model, precision, x, y, BATCH, steps, ctx.sizes.epochs, seed=rep)
        rates.append(per_epoch / statistics.median(times))
    return {"bare_samples_per_s": statistics.median(rates), "bare_repeats": rates}


class Clock:
    """Accumulated wall time of the timed stretches, the device synchronised at each edge."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.seconds, self._t = device, 0.0, 0.0

    def start(self) -> None:
        sync(self.device)
        self._t = time.perf_counter()

    def stop(self) -> None:
        sync(self.device)
        self.seconds += time.perf_counter() - self._t


def flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().flatten() for t in tensors])


def pack_sequential(init: list[nn.Module], xs: torch.Tensor, ys: torch.Tensor, warm: int, clock: Clock) -> list:
    """Each model on its own, one after another: its first `warm` steps untimed, the rest timed."""
    finals = []
    for start in init:
        net = build_net("mlp").to(xs.device)
        net.load_state_dict(start.state_dict())
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        m = len(finals)
        for s in range(len(xs)):
            if s == warm:
                clock.start()
            loss = F.cross_entropy(net(xs[s, m]), ys[s, m])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        clock.stop()
        finals.append(flat(net.parameters()))
    return finals


def pack_vmap(init: list[nn.Module], xs: torch.Tensor, ys: torch.Tensor, warm: int, clock: Clock) -> list:
    """All models in one step: `torch.func.stack_module_state` + `vmap(functional_call)`, one Adam on the stacks."""
    from torch.func import functional_call, stack_module_state, vmap

    params, buffers = stack_module_state(init)
    base = build_net("mlp").to("meta")

    def loss_one(p: dict, b: dict, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(functional_call(base, (p, b), (xb,)), yb)

    step_loss = vmap(loss_one)
    opt = torch.optim.Adam(params.values(), lr=1e-3)  # elementwise: the same as one Adam per model
    for s in range(len(xs)):
        if s == warm:
            clock.start()
        loss = step_loss(params, buffers, xs[s], ys[s]).sum()  # a sum of independent losses: independent gradients
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    clock.stop()
    names = [name for name, _ in init[0].named_parameters()]
    return [flat(params[name][m] for name in names) for m in range(len(init))]


def pack_bmm(init: list[nn.Module], xs: torch.Tensor, ys: torch.Tensor, warm: int, clock: Clock) -> list:
    """All models in one step with stacked weights and `torch.baddbmm` (no torch.func)."""
    layers = [[mod for mod in net.modules() if isinstance(mod, nn.Linear)] for net in init]
    depth = len(layers[0])
    ws = [torch.stack([ls[i].weight.detach().t() for ls in layers]).contiguous().requires_grad_() for i in range(depth)]
    bs = [torch.stack([ls[i].bias.detach() for ls in layers]).unsqueeze(1).requires_grad_() for i in range(depth)]
    opt = torch.optim.Adam([p for pair in zip(ws, bs, strict=True) for p in pair], lr=1e-3)
    batch = xs.shape[2]
    for s in range(len(xs)):
        if s == warm:
            clock.start()
        h = xs[s]
        for i in range(depth):
            h = torch.baddbmm(bs[i], h, ws[i])
            h = h.relu() if i < depth - 1 else h
        loss = F.cross_entropy(h.reshape(-1, h.shape[-1]), ys[s].reshape(-1), reduction="sum") / batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    clock.stop()
    return [flat(t for i in range(depth) for t in (ws[i][m].t(), bs[i][m, 0])) for m in range(len(init))]


def section_packing(ctx: Context) -> dict[str, Any]:
    """N MLPs trained in lock-step vs the same N trained one after another, from the same start on the same batches
    (so the final weights must agree, up to rounding): samples/s per model and the speed-up."""
    dev, steps, warm = ctx.device, ctx.sizes.pack_steps, ctx.sizes.pack_warmup
    x_all = ctx.images.to(dev).flatten(1)
    y_all = torch.randint(0, 10, (len(x_all),), device=dev)
    methods = {"sequential": pack_sequential, "vmap": pack_vmap, "bmm": pack_bmm}
    rows: list[dict[str, Any]] = []
    for n in ctx.sizes.pack_ns:
        if ctx.budget.left() < 20:
            rows += [{"n": n, "method": m, "status": "skipped", "error": "no time left"} for m in methods]
            continue
        torch.manual_seed(n)
        idx = torch.randint(0, len(x_all), (warm + steps, n, BATCH), device=dev)
        xs, ys = x_all[idx], y_all[idx]  # (steps, N, batch, 784): the same batches for every method
        init = [build_net("mlp").to(dev) for _ in range(n)]
        finals: dict[str, list[torch.Tensor]] = {}
        for method, train in methods.items():
            row: dict[str, Any] = {"n": n, "method": method}
            try:
                clock = Clock(dev)
                finals[method] = train(init, xs, ys, warm, clock)
                total = n * steps * BATCH / clock.seconds
                row.update(status="ok", seconds=clock.seconds, samples_per_s=total, samples_per_s_per_model=total / n)
            except Exception as exc:  # noqa: BLE001 - recorded; the other methods still run
                row.update(status="failed", error=one_line(exc))
            rows.append(row)
        seq = next((r for r in rows if r["n"] == n and r["method"] == "sequential" and r["status"] == "ok"), None)
        for r in rows:
            if r["n"] == n and r["status"] == "ok" and seq:
                r["speedup_vs_sequential"] = seq["seconds"] / r["seconds"]
                if r["method"] != "sequential":
                    pairs = zip(finals["sequential"], finals[r["method"]], strict=True)
                    r["max_abs_diff_vs_sequential"] = max((a - b).abs().max().item() for a, b in pairs)
        del xs, ys, init, finals
    ok = [r for r in rows if r["status"] == "ok"]
    status = "ok" if len(ok) == len(rows) else ("partial" if ok else "failed")
    return {"status": status, "rows": rows, "batch": BATCH, "steps": steps, "warmup_steps": warm}


def section_qat(ctx: Context) -> dict[str, Any]:
    """QAT trained on the device; nnopt converts, saves and tests the int8 model on the CPU."""
    over = [
        *ctx.common,
        *limit_overrides(ctx),
        "compression=qat",
        f"trainer={ctx.sizes.trainer}",
        f"trainer.max_epochs={ctx.sizes.qat_epochs}",
    ]
    over = [o for o in over if o != "test=false"]
    if ctx.sizes.limit_batches:
        over.append(f"trainer.limit_test_batches={ctx.sizes.limit_batches}")
    run = ctx.runner("qat", over, ctx.budget.limit(ctx.sizes.limits_s["qat"]))
    if not run.summaries:
        return {"status": "timeout" if run.rc is None else "failed", "error": last_line(run.output)}
    s = run.summaries[0]
    int8_file = Path(s.get("run_dir") or "") / "checkpoints" / "model_int8.pt"
    tensors = count_int8_weights(int8_file) if int8_file.exists() else 0
    out = {
        "status": "ok" if s.get("status") == "completed" and s.get("model/int8") and tensors else "failed",
        "error": s.get("error"),
        "trained_on": (s.get("_epochs") or {}).get("device"),
        "int8": s.get("model/int8"),
        "int8_file_bytes": int8_file.stat().st_size if int8_file.exists() else None,
        "int8_weight_tensors": tensors,
        "test_acc_int8": s.get("test/acc"),
        "test_acc_float": s.get("test/acc_float"),
        "samples_per_s": steady_rate(s)[0],
        "epochs": s.get("train/epochs"),
    }
    if out["status"] != "ok" and not out["error"]:
        out["error"] = "no int8 model" if not tensors else last_line(run.output)
    return out


def count_int8_weights(path: Path) -> int:
    """qint8 weight tensors in a saved int8 model: proof that the file holds quantized layers, not float ones."""
    with warnings.catch_warnings():  # torch warns that quantized tensors are deprecated, once per tensor
        warnings.simplefilter("ignore")
        blob = torch.load(path, map_location="cpu", weights_only=True)
    values = list((blob.get("state_dict") or {}).values()) if isinstance(blob, dict) else []
    count = 0
    while values:
        v = values.pop()
        if isinstance(v, (tuple, list)):
            values.extend(v)
        elif isinstance(v, torch.Tensor) and v.dtype == torch.qint8:
            count += 1
    return count


def section_fsdp(ctx: Context) -> dict[str, Any]:
    """`trainer=fsdp` on one device: nnopt refuses it in one line (FSDP needs >= 2 ranks), or trains."""
    over = [*ctx.common, *limit_overrides(ctx), "trainer=fsdp", "trainer.devices=1", "trainer.max_epochs=1"]
    if ctx.args.cpu:
        over.append("trainer.accelerator=cpu")
    run = ctx.runner("fsdp", over, ctx.budget.limit(ctx.sizes.limits_s["fsdp"]))
    s = run.summaries[0] if run.summaries else {}
    if s.get("status") == "completed":
        return {"status": "ok", "rc": run.rc, "samples_per_s": steady_rate(s)[0], "message": None}
    message = last_line(run.output)
    refused = run.rc == 2 and message.startswith("nnopt: error:")
    return {"status": "refused" if refused else ("timeout" if run.rc is None else "failed"), "rc": run.rc,
            "message": message}  # fmt: skip


def section_compile(ctx: Context) -> dict[str, Any]:
    """`compile=true` on the default job, one process per fused-steps value (its fallback warning is per process)."""
    env = {"TORCH_COMPILE_OVERRIDE_BACKENDS": ">=0:aot_eager"} if ctx.args.cpu else {}  # CPU: no C++ build
    eager = {r["fused_steps"]: r for r in ctx.results.get("throughput", {}).get("rows", [])
             if r["model"] == "mlp" and r["precision"] == "32-true"}  # fmt: skip
    rows = []
    for fused in ctx.sizes.compile_fused:
        over = [*ctx.common, *limit_overrides(ctx), "compile=true", f"trainer={ctx.sizes.trainer}"]
        over.append(f"trainer.fused_steps={fused}")
        over.append(f"trainer.max_epochs={ctx.sizes.epochs}")
        try:
            run = ctx.runner(f"compile_k{fused}", over, ctx.budget.limit(ctx.sizes.limits_s["compile"]), env=env)
        except Skip as exc:
            rows.append({"fused_steps": fused, "status": "skipped", "error": str(exc)})
            continue
        s = run.summaries[0] if run.summaries else {}
        warning = next((ln.strip()[:300] for ln in run.output.splitlines() if COMPILE_FALLBACK in ln), None)
        row = {"fused_steps": fused, "warning": warning, "samples_per_s": steady_rate(s)[0]}
        if s.get("status") == "completed":
            row["status"] = "fallback" if warning else "ok"
        else:
            row.update(status="timeout" if run.rc is None else "failed", error=s.get("error") or last_line(run.output))
        ref = eager.get(fused) or {}
        if row["samples_per_s"] and ref.get("bare_samples_per_s"):
            row["ratio_to_bare"] = row["samples_per_s"] / ref["bare_samples_per_s"]
            row["ratio_to_eager"] = row["samples_per_s"] / ref["nnopt_samples_per_s"]
        rows.append(row)
    statuses = {r["status"] for r in rows}
    status = statuses.pop() if len(statuses) == 1 else "partial"
    return {"status": status, "backend": "aot_eager (CPU check)" if ctx.args.cpu else "inductor", "rows": rows}


# -- report --------------------------------------------------------------------------------------------------
def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:250]}" if text else type(exc).__name__


def fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def markdown(results: dict[str, Any]) -> str:
    meta, sec = results["meta"], results["sections"]
    lines = [
        "# nnopt GPU check" + (" (CPU wiring run: tiny sizes, figures mean nothing)" if meta["mode"] == "cpu" else ""),
        "",
        f"Command: `{meta['command']}`  ",
        f"Device: {meta['device_name']}; torch {meta['torch']}, Lightning {meta['lightning']}, "
        f"Python {meta['python']}; "
        f"data {meta['data']}; float32 matmul precision `{meta['float32_matmul_precision']}`; {meta['date']}; "
        f"{meta['total_s']:.0f} s in all.",
        "",
        "| section | status | s | note |",
        "|---|---|---|---|",
    ]
    for name in SECTIONS:
        s = sec.get(name, {})
        note = s.get("error") or s.get("message") or s.get("note") or ""
        lines.append(f"| {name} | {s.get('status')} | {fmt(s.get('section_s'), 1)} | {str(note)[:160]} |")
    tp = sec.get("throughput", {}).get("rows", [])
    lines += ["", "## Training pass: nnopt / bare loop (samples/s, steady: median epoch after the first)", ""]
    lines += table(
        ["model", "precision", "fused_steps", "nnopt", "bare", "nnopt / bare", f"goal ≥ {FUSED_GOAL:.2f}", "status"],
        [[r["model"], r["precision"], str(r["fused_steps"]), fmt(r.get("nnopt_samples_per_s")),
          fmt(r.get("bare_samples_per_s")), fmt(r.get("ratio"), 3), fmt(r.get("goal_met")), str(r["status"])]
         for r in tp],
    )  # fmt: skip
    pk = sec.get("packing", {}).get("rows", [])
    lines += ["", f"## Packing: N MLPs in lock-step vs one after another (batch {sec.get('packing', {}).get('batch')})"]
    lines += ["", "samples/s per model = all models' samples / wall time / N.", ""]
    lines += table(
        ["N", "method", "samples/s all", "samples/s per model", "speedup vs sequential", "max |Δw| vs seq", "status"],
        [[str(r["n"]), str(r.get("method", "–")), fmt(r.get("samples_per_s")), fmt(r.get("samples_per_s_per_model")),
          fmt(r.get("speedup_vs_sequential"), 2), fmt(r.get("max_abs_diff_vs_sequential"), 6), str(r["status"])]
         for r in pk],
    )  # fmt: skip
    q = sec.get("qat", {})
    lines += ["", "## QAT", ""]
    lines += table(
        ["trained on", "int8", "qint8 weights", "int8 file bytes", "test acc int8", "test acc float", "samples/s"],
        [[fmt(q.get("trained_on")), fmt(q.get("int8")), fmt(q.get("int8_weight_tensors")),
          fmt(q.get("int8_file_bytes")), fmt(q.get("test_acc_int8"), 4), fmt(q.get("test_acc_float"), 4),
          fmt(q.get("samples_per_s"))]],
    )  # fmt: skip
    f = sec.get("fsdp", {})
    lines += [
        "",
        "## FSDP on one device",
        "",
        f"{f.get('status')}: {f.get('message') or f.get('error') or fmt(f.get('samples_per_s'))}",
    ]
    c = sec.get("compile", {})
    lines += ["", f"## compile=true (backend {c.get('backend')})", ""]
    lines += table(
        ["fused_steps", "status", "samples/s", "/ bare", "/ eager nnopt", "warning"],
        [[str(r["fused_steps"]), r["status"], fmt(r.get("samples_per_s")), fmt(r.get("ratio_to_bare"), 3),
          fmt(r.get("ratio_to_eager"), 3), str(r.get("warning") or r.get("error") or "")[:160]]
         for r in c.get("rows", [])],
    )  # fmt: skip
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cpu", action="store_true", help="tiny sizes on the CPU (the fast test tier's wiring check)")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check_out"), help="results folder")
    p.add_argument("--work", type=Path, default=None, help="nnopt run dirs (default: a temporary folder)")
    p.add_argument("--data", choices=("digits", "fashion_mnist"), default="digits")
    p.add_argument("--data-dir", type=Path, default=None, help="folder with the four Fashion-MNIST IDX .gz files")
    p.add_argument(
        "--budget-s", type=float, default=None, help="overall time limit (default: 420 s on the GPU, 840 s with --cpu)"
    )
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="run these sections only")
    args = p.parse_args(argv)
    if args.data == "fashion_mnist" and args.data_dir is None:
        p.error("--data fashion_mnist needs --data-dir")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    sizes = sizes_for(args.cpu, args.data)
    budget = Budget(args.budget_s or sizes.budget_s)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check_"))
    log = args.out / "gpu_check.log"
    log.write_text("")
    if args.cpu:
        torch.set_num_threads(1)
    device = torch.device("cpu" if args.cpu else "cuda")
    meta = {
        "mode": "cpu" if args.cpu else "gpu",
        "command": "python scripts/gpu_check.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "lightning": metadata.version("pytorch-lightning"),
        "python": platform.python_version(),
        "data": args.data,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "device_name": torch.cuda.get_device_name(0) if torch.cuda.is_available() and not args.cpu else "cpu",
        "cuda_available": torch.cuda.is_available(),
        "cuda": torch.version.cuda,
        "gpu_memory_gib": (
            torch.cuda.get_device_properties(0).total_memory / 2**30
            if torch.cuda.is_available() and not args.cpu
            else None
        ),
        "work_dir": str(work),
    }
    data_over = ["data=fashion_mnist", f"data.dir={args.data_dir.resolve()}"] if args.data == "fashion_mnist" else []
    ctx = Context(
        args=args,
        sizes=sizes,
        runner=Runner(work, log, args.cpu, data_over),
        budget=budget,
        device=device,
        images=torch.empty(0),
        common=[
            "test=false",
            "callbacks.early_stopping=null",
            "callbacks.progress_bar=null",
            "callbacks.model_summary=null",
            "trainer.enable_progress_bar=false",
            "+callbacks.gpu_check_epochs._target_=gpu_check.epoch_timer",
        ],  # fmt: skip
        results={},
    )
    if args.cpu:  # the int8 and float latency measurements after the QAT run: a few repeats are enough here
        ctx.common += ["efficiency.latency_repeats=2", "efficiency.latency_warmup=1"]
    sections: dict[str, Callable[[Context], dict[str, Any]]] = {
        "throughput": section_throughput,
        "packing": section_packing,
        "qat": section_qat,
        "fsdp": section_fsdp,
        "compile": section_compile,
    }
    if not args.cpu and not torch.cuda.is_available():
        for name in SECTIONS:
            ctx.results[name] = {"status": "skipped", "error": "no CUDA device here (use --cpu for the CPU check)"}
    else:
        ctx.images = load_train_images(args.data, args.data_dir)
        for name in SECTIONS:
            if name not in args.only:
                ctx.results[name] = {"status": "skipped", "error": "not in --only"}
                continue
            t0 = time.monotonic()
            print(f"[gpu_check] {name} ({budget.left():.0f} s left)", flush=True)
            try:
                ctx.results[name] = sections[name](ctx)
            except Skip as exc:
                ctx.results[name] = {"status": "skipped", "error": str(exc)}
            except Exception as exc:  # noqa: BLE001 - one section's failure must not cost the others
                ctx.results[name] = {"status": "failed", "error": one_line(exc)}
                with log.open("a") as fh:
                    fh.write(f"\n===== {name} raised\n{traceback.format_exc()}\n")
            ctx.results[name]["section_s"] = time.monotonic() - t0
            if device.type == "cuda":
                torch.cuda.empty_cache()
    meta["total_s"] = time.monotonic() - started
    results = {"meta": meta, "sections": ctx.results}
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    md = markdown(results)
    (args.out / "gpu_check.md").write_text(md)
    print(md, flush=True)
    if not args.cpu and not torch.cuda.is_available():
        return 2  # nothing was checked
    bad = [n for n, s in ctx.results.items() if s["status"] in ("failed", "timeout", "partial")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
