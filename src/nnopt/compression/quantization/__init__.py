"""Quantization to a real int8 model: QAT and post-training (dynamic / static), all on CPU int8 kernels.

API choice: `torch.ao.quantization` **eager mode** (`QuantWrapper` + `fuse_modules[_qat]` + `prepare[_qat]` +
`convert`). It is deprecated in favour of torchao's PT2E flow but still runs on torch 2.13, and on this
project's models it is the better deployment: LeNet-5 int8 is ~0.26x the float size and ~0.23x its batch-256
latency (fbgemm/x86 kernels), while PT2E + torch.compile measured 0.61x latency and needs exported-graph
workarounds (train/eval switch, stripping unused float weights). Eager QAT also swaps modules in place keeping
the *same* Parameter objects, so the optimizer, pruning masks and Lightning's loop carry on untouched, and the
converted model exports to ONNX (QDQ) with the TorchScript exporter. Eager mode needs fusion groups; they are
found automatically in `nn.Sequential`s (Conv[+BN][+ReLU], Linear[+BN], Linear+ReLU).

- :mod:`nnopt.compression.quantization.ops` — backends, fusion groups, prepare/convert, dynamic quantization.
- :mod:`nnopt.compression.quantization.int8_file` — the int8 model file (`model_int8.pt`): save, rebuild, load.
- :mod:`nnopt.compression.quantization.callbacks` — QAT and post-training quantization as callbacks.

The callbacks and the file helpers are importable from this package too (configs name
`nnopt.compression.quantization.QuantizationAwareTraining`).
"""

from nnopt.compression.quantization.callbacks import Int8Deploy, PostTrainingQuantization, QuantizationAwareTraining
from nnopt.compression.quantization.int8_file import INT8_FILE, KINDS, load_int8, save_int8
from nnopt.compression.quantization.ops import backends

__all__ = [
    "INT8_FILE",
    "KINDS",
    "Int8Deploy",
    "PostTrainingQuantization",
    "QuantizationAwareTraining",
    "backends",
    "load_int8",
    "save_int8",
]
