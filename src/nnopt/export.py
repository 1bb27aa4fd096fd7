"""`nnopt-export <run dir | checkpoint>`: ONNX files for a run's model, checked in onnxruntime.

Writes `model.onnx` (the float model; a pruned model is a float model with zeros) and, when the run saved
one (`checkpoints/model_int8.pt`, from compression=qat/prune_qat/ptq_static/ptq_dynamic), `model_int8.onnx`.
The int8 file goes through the TorchScript exporter (`dynamo=False`): it turns torch's quantized modules into
QuantizeLinear/DequantizeLinear around float Conv/Gemm (QDQ), which onnxruntime fuses into int8 kernels.
The dynamo exporter cannot trace eager quantized modules (torch.export fails on their packed parameters).
Each file is run on the test split in onnxruntime and its accuracy is compared with torch's (`export.json`).

The files are self-contained: the input standardisation (the training split's mean/std, stored in the checkpoint)
is part of the graph, so a model takes the data set's raw values scaled to [0, 1] (8-bit images: pixel / 255),
float32, N x C x H x W for images (N x F for tabular data, raw feature values). This input contract is written into
each file's ONNX metadata (`metadata_props`) and into `export.json` (`input`). A data module of your own that
standardises in its own transforms exports a model that takes what its test_dataloader yields.
Length: the whole export CLI (float and int8 ONNX, input contract in the graph and metadata, onnxruntime check) in
one place.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from typing_extensions import override

from nnopt.compression.quantization import INT8_FILE, load_int8
from nnopt.errors import CheckpointError, NnoptError, fail
from nnopt.io import write_atomic


class Standardize(nn.Module):
    """First layer of an exported model: raw values scaled to [0, 1] -> the standardised inputs the net trained on.

    `(x * scale - mean) / std`, folded into one subtraction and one division; `mean`/`std` are scalars (images) or
    per-feature vectors (tabular).
    """

    def __init__(self, mean: Any, std: Any, scale: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("shift", torch.as_tensor(mean, dtype=torch.float32) / scale)
        self.register_buffer("divisor", torch.as_tensor(std, dtype=torch.float32) / scale)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.divisor


def standardized(model: nn.Module, info: dict[str, Any]) -> nn.Module:
    """`model` behind its input standardisation when the checkpoint stores one (nnopt's in-memory data)."""
    if info.get("input_mean") is None or info.get("input_std") is None:
        return model
    return nn.Sequential(
        Standardize(info["input_mean"], info["input_std"], float(info.get("input_scale", 1.0))), model
    ).eval()


def input_contract(info: dict[str, Any]) -> dict[str, Any]:
    """What an exported model expects and returns (export.json `input`, ONNX `metadata_props`)."""
    shape = [int(v) for v in info["input_shape"]]
    scale = float(info.get("input_scale", 1.0))
    in_graph = info.get("input_mean") is not None
    if not in_graph:
        scaling = "as the data module's test_dataloader yields them (its own transforms; nothing in the graph)"
    elif len(shape) == 1:
        scaling = "raw feature values (standardised in the graph with the training split's per-feature mean/std)"
    elif scale != 1.0:
        scaling = f"raw values / {scale:g}, in [0, 1] (standardised in the graph with the training split's mean/std)"
    else:
        scaling = (
            "raw values scaled to [0, 1] (8-bit images: pixel / 255), as nnopt's data module loads them; "
            "standardised in the graph with the training split's mean/std"
        )
    return {
        "input_name": "input",
        "input_shape": ["N", *shape],
        "input_dtype": "float32",
        "input_layout": "N x C x H x W" if len(shape) == 3 else "N x " + " x ".join(str(v) for v in shape),
        "input_scaling": scaling,
        "output_name": "logits",
        "num_classes": int(info["num_classes"]),
        "data_set": str(info.get("name")),
        "standardisation_in_graph": in_graph,
    }


def add_metadata(path: str | Path, contract: dict[str, Any]) -> None:
    """Write the input contract into the ONNX file's `metadata_props` (string values; lists as JSON)."""
    import onnx

    model = onnx.load(str(path))
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in contract.items()}
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **props})
    data = model.SerializeToString()
    write_atomic(path, data)


class ExportError(NnoptError):
    """A model that cannot be exported, or an output place that cannot be written."""


def _out_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"--out {path}: cannot create it ({exc.strerror or type(exc).__name__})") from None


def export_onnx(model: nn.Module, in_shape: tuple[int, ...], path: str | Path) -> Path:
    """ONNX with a dynamic batch axis (input `input`, output `logits`), written atomically.

    Traced with a batch of 2 (a batch of 1 lets the tracer fold the batch size into reshapes), then checked in
    onnxruntime with a batch of 3 against torch: a graph that still depends on the traced batch size is refused.
    The tracer's own warnings (shape-dependent Python control flow in a model of yours) are shown, one line each.

    Raises:
        ExportError: the model does not trace, or its graph does not take another batch size.
    """
    path = Path(path)
    _out_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    model = model.cpu().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            torch.onnx.export(
                model,
                (torch.zeros(2, *in_shape),),
                str(tmp),
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
            )
        except Exception as exc:  # noqa: BLE001 - any exporter failure: one line, no partial file
            tmp.unlink(missing_ok=True)
            raise ExportError(f"{path.name}: the model does not export to ONNX ({_first_line(exc)})") from None
    for message in dict.fromkeys(str(w.message).splitlines()[0] for w in caught if _is_tracer(w.category)):
        print(f"nnopt: warning: {path.name}: {message[:300]}", file=sys.stderr)
    try:
        _check_batch_axis(model, tmp, in_shape)
    except ExportError:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _is_tracer(category: type[Warning]) -> bool:
    return category.__name__ == "TracerWarning"


@torch.inference_mode()
def _check_batch_axis(model: nn.Module, path: Path, in_shape: tuple[int, ...]) -> None:
    x = torch.linspace(0, 1, 3 * math.prod(in_shape)).reshape(3, *in_shape)
    try:
        got = onnx_logits(path, x)
    except Exception as exc:  # noqa: BLE001 - onnxruntime refusing the graph is the same failure
        raise ExportError(
            f"{path.name.split('.')[1]}: the exported graph does not run a batch of 3 ({_first_line(exc)})"
        ) from None
    want = model(x).float()
    # a graph tied to the traced batch size fails or gives other values; int8 kernels of onnxruntime and torch
    # differ by a quantization step at most, well within this tolerance
    tolerance = 0.05 * (1.0 + float(want.abs().max()))
    if tuple(got.shape) != tuple(want.shape) or float((got - want).abs().max()) > tolerance:
        raise ExportError(
            f"{path.name.split('.')[1]}: the exported graph gives other outputs for a batch of 3 than torch "
            "(it depends on the traced batch size: avoid Python control flow on tensor shapes in forward)"
        )


def onnx_logits(path: str | Path, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = [session.run(None, {"input": x[i : i + batch_size].numpy()})[0] for i in range(0, len(x), batch_size)]
    return torch.from_numpy(np.concatenate(outs))


@torch.inference_mode()
def accuracy(logits_fn, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    logits = torch.cat([logits_fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return float((logits.argmax(1) == y).float().mean())


@torch.inference_mode()
def batches_accuracy(
    logits_fn: Callable[[torch.Tensor], torch.Tensor], batches: Iterable[tuple[torch.Tensor, torch.Tensor]]
) -> float:
    correct = seen = 0
    for x, y in batches:
        correct += int((logits_fn(x).argmax(1) == y).sum())
        seen += len(y)
    return correct / seen if seen else float("nan")


def raw_inputs(x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
    """Standardised model inputs back to the exported model's contract (raw values scaled to [0, 1])."""
    if info.get("input_mean") is None:
        return x
    mean = torch.as_tensor(info["input_mean"], dtype=torch.float32)
    std = torch.as_tensor(info["input_std"], dtype=torch.float32)
    return (x * std + mean) / float(info.get("input_scale", 1.0))


def eval_batches(dm: Any, info: dict[str, Any], batch_size: int = 1024) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The test split as (model input, label) batches: nnopt's resident tensors, else the module's test_dataloader."""
    tensors = getattr(dm, "tensors", None)
    if isinstance(tensors, dict) and "test" in tensors:
        x, y = (t.cpu() for t in tensors["test"])
        return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(x), batch_size)]
    dm.prepare_data()
    dm.setup("test")
    return [(batch[0].cpu(), batch[1].cpu()) for batch in dm.test_dataloader()]


def resolve_checkpoint(target: str | Path) -> Path:
    target = Path(target)
    if target.is_dir():
        for candidate in (target / "checkpoints" / "last.ckpt", target / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{target}: no checkpoints/last.ckpt in this run dir")
    return target


def export_run(
    target: str | Path, out_dir: str | Path | None = None, verify: bool = True, config_dir: str | Path | None = None
) -> dict[str, Any]:
    """Export the run's float model and, if saved, its int8 model; returns what was written and checked.

    `config_dir`: a conf/ of your own whose configs name the run's model/data targets (they are trusted then).
    """
    from nnopt import build, checkpoint
    from nnopt.tasks import rebuild

    ckpt_path = resolve_checkpoint(target)
    ckpt, cfg = rebuild.read(ckpt_path, config_dir=config_dir)
    out = Path(out_dir) if out_dir else ckpt_path.parent.parent / "onnx"
    info = ckpt.get(checkpoint.DATA_KEY) or {}
    stored = rebuild.stored_shapes(ckpt, ckpt_path, "ckpt_path") if info else None  # checked: untrusted input
    dm = build.build_datamodule(cfg) if verify or not info else None  # data only to verify (or an older checkpoint)
    if dm is not None and not info:
        info = rebuild.data_info(dm, cfg)
    shapes = dm if dm is not None else stored
    in_shape = tuple(int(v) for v in info["input_shape"])
    contract = input_contract(info)
    batches = eval_batches(dm, info) if verify else []
    report: dict[str, Any] = {"checkpoint": str(ckpt_path), "input": contract, "models": {}}

    scorer = rebuild.restore(cfg, shapes, ckpt, ckpt_path, weights=False)  # the task's metric, no weights needed
    metric = scorer.task.best

    def record(name: str, model: nn.Module, path: Path) -> None:
        """The task's metric (accuracy, MSE, ...) of torch on the standardised test inputs and of onnxruntime on the
        same samples as the contract's raw inputs."""
        add_metadata(path, contract)
        entry: dict[str, Any] = {"path": str(path), "metric": metric}
        if verify:
            with torch.inference_mode():
                entry[f"{metric}_torch"] = scorer.evaluate_outputs((model(x), y) for x, y in batches)
            raw = [(raw_inputs(x, info), y) for x, y in batches]
            entry[f"{metric}_onnx"] = scorer.evaluate_outputs((onnx_logits(path, x), y) for x, y in raw)
        report["models"][name] = entry

    if rebuild.holds_qat_model(ckpt):  # the fake-quantized model: its deployable form is the int8 file
        module = None
        report["models"]["float"] = {"skipped": "checkpoint holds a QAT (fake-quantized) model; see int8"}
    else:
        module = rebuild.restore(cfg, shapes, ckpt, ckpt_path)
    if module is not None:
        float_net = module.net.eval()
        record("float", float_net, export_onnx(standardized(float_net, info), in_shape, out / "model.onnx"))
    int8_path = ckpt_path.parent / INT8_FILE
    if int8_path.is_file():
        float_net = rebuild.restore(cfg, shapes, ckpt, ckpt_path, weights=False).net
        int8 = load_int8(int8_path, float_net, in_shape)
        try:
            path = export_onnx(standardized(int8, info), in_shape, out / "model_int8.onnx")
        except Exception as exc:  # noqa: BLE001 - dynamic quantization (quantized::linear_dynamic) has no mapping
            float_onnx = out / "model.onnx"
            if torch.load(int8_path, weights_only=True)["kind"] != "dynamic" or not float_onnx.is_file():
                report["models"]["int8"] = {"skipped": f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"}
                return _write(report, out)
            # the same scheme in onnxruntime's own quantizer: int8 weights, activations quantized at run time
            from onnxruntime.quantization import QuantType, quantize_dynamic

            path = out / "model_int8.onnx"
            quantize_dynamic(str(float_onnx), str(path), weight_type=QuantType.QInt8)
            report["int8_via"] = "onnxruntime.quantization.quantize_dynamic of model.onnx"
        record("int8", int8, path)
    return _write(report, out)


def _write(report: dict[str, Any], out: Path) -> dict[str, Any]:
    _out_dir(out)
    write_atomic(out / "export.json", json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    from nnopt import runtime

    runtime.configure()
    parser = argparse.ArgumentParser(prog="nnopt-export", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a run dir (uses checkpoints/last.ckpt) or a checkpoint file")
    parser.add_argument("--out", default=None, help="output dir (default: <run dir>/onnx)")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime accuracy check")
    parser.add_argument(
        "-cd", "--config-dir", default=None, help="your own conf/ dir: trust the model/data targets its configs name"
    )
    args = parser.parse_args(argv)
    from nnopt.cli.extras import installed, missing_extra

    for module in ("onnx", "onnxscript", *(() if args.no_verify else ("onnxruntime",))):  # the `export` extra
        if not installed(module):
            fail(missing_extra(module, "nnopt-export"))
    try:
        report = export_run(args.target, args.out, verify=not args.no_verify, config_dir=args.config_dir)
    except NnoptError as exc:
        fail(str(exc))
    for name, entry in report["models"].items():
        if "skipped" in entry:
            print(f"{name}: skipped ({entry['skipped']})")
        elif f"{entry['metric']}_onnx" in entry:
            metric = entry["metric"]
            values = f"test {metric} torch {entry[f'{metric}_torch']:.4f}, onnxruntime {entry[f'{metric}_onnx']:.4f}"
            print(f"{name}: {entry['path']}  {values}")
        else:
            print(f"{name}: {entry['path']}")


if __name__ == "__main__":
    main()
