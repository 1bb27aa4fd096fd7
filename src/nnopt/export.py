"""`nnopt-export <run dir | checkpoint>`: ONNX files for a run's model, checked in onnxruntime.

Writes `model.onnx` (the float model; a pruned model is a float model with zeros) and, when the run saved
one (`checkpoints/model_int8.pt`, from compression=qat/prune_qat/ptq_static/ptq_dynamic), `model_int8.onnx`.
The int8 file goes through the TorchScript exporter (`dynamo=False`): it turns torch's quantized modules into
QuantizeLinear/DequantizeLinear around float Conv/Gemm (QDQ), which onnxruntime fuses into int8 kernels.
The dynamo exporter cannot trace eager quantized modules (torch.export fails on their packed parameters).
Each file is run on the test split in onnxruntime and its accuracy is compared with torch's (`export.json`).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nnopt.compression.quantization import INT8_FILE, load_int8
from nnopt.errors import CheckpointError, NnoptError
from nnopt.io import write_atomic


def export_onnx(model: nn.Module, in_shape: tuple[int, ...], path: str | Path) -> Path:
    """ONNX with a dynamic batch axis (input `input`, output `logits`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript exporter deprecation and tracer warnings
        torch.onnx.export(
            model.cpu().eval(),
            (torch.zeros(1, *in_shape),),
            str(path),
            dynamo=False,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return path


def onnx_logits(path: str | Path, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = [session.run(None, {"input": x[i : i + batch_size].numpy()})[0] for i in range(0, len(x), batch_size)]
    return torch.from_numpy(np.concatenate(outs))


@torch.inference_mode()
def accuracy(logits_fn, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> float:
    logits = torch.cat([logits_fn(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    return float((logits.argmax(1) == y).float().mean())


def resolve_checkpoint(target: str | Path) -> Path:
    target = Path(target)
    if target.is_dir():
        for candidate in (target / "checkpoints" / "last.ckpt", target / "last.ckpt"):
            if candidate.is_file():
                return candidate
        raise CheckpointError(f"{target}: no checkpoints/last.ckpt in this run dir")
    return target


def export_run(target: str | Path, out_dir: str | Path | None = None, verify: bool = True) -> dict[str, Any]:
    """Export the run's float model and, if saved, its int8 model; returns what was written and checked."""
    from nnopt import build, checkpoint

    ckpt_path = resolve_checkpoint(target)
    ckpt = checkpoint.load(ckpt_path)
    cfg = checkpoint.trusted_config(ckpt, ckpt_path)
    out = Path(out_dir) if out_dir else ckpt_path.parent.parent / "onnx"
    dm = build.build_datamodule(cfg)
    in_shape = dm.input_shape
    x, y = dm.tensors["test"]
    x, y = x.cpu(), y.cpu()
    report: dict[str, Any] = {"checkpoint": str(ckpt_path), "models": {}}

    def record(name: str, model: nn.Module, path: Path) -> None:
        entry: dict[str, Any] = {"path": str(path)}
        if verify:
            entry["acc_torch"] = accuracy(model, x, y)
            entry["acc_onnx"] = accuracy(lambda b: onnx_logits(path, b), x, y)
        report["models"][name] = entry

    float_net = build.build_net(cfg, in_shape, dm.num_classes)
    state = checkpoint.net_state(ckpt["state_dict"])
    try:
        float_net.load_state_dict(state)
    except RuntimeError:
        # a QAT run's checkpoint holds the fake-quantized model: its deployable form is the int8 file
        report["models"]["float"] = {"skipped": "checkpoint holds a QAT (fake-quantized) model; see int8"}
    else:
        record("float", float_net.eval(), export_onnx(float_net, in_shape, out / "model.onnx"))
    int8_path = ckpt_path.parent / INT8_FILE
    if int8_path.is_file():
        int8 = load_int8(int8_path, build.build_net(cfg, in_shape, dm.num_classes), in_shape)
        try:
            path = export_onnx(int8, in_shape, out / "model_int8.onnx")
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
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / "export.json", json.dumps(report, indent=2) + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    from nnopt import runtime

    runtime.configure()
    parser = argparse.ArgumentParser(prog="nnopt-export", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="a run dir (uses checkpoints/last.ckpt) or a checkpoint file")
    parser.add_argument("--out", default=None, help="output dir (default: <run dir>/onnx)")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime accuracy check")
    args = parser.parse_args(argv)
    try:
        report = export_run(args.target, args.out, verify=not args.no_verify)
    except NnoptError as exc:
        print(f"nnopt: error: {exc}", file=sys.stderr)
        sys.exit(2)
    for name, entry in report["models"].items():
        if "skipped" in entry:
            print(f"{name}: skipped ({entry['skipped']})")
        elif "acc_onnx" in entry:
            accs = f"test acc torch {entry['acc_torch']:.4f}, onnxruntime {entry['acc_onnx']:.4f}"
            print(f"{name}: {entry['path']}  {accs}")
        else:
            print(f"{name}: {entry['path']}")


if __name__ == "__main__":
    main()
