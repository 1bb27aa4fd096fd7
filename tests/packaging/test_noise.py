"""A run prints what is news about the run: the libraries' routine chatter is gone, genuine warnings still show.

Each run is the CLI as a subprocess; stdout and stderr together are searched for the texts users saw on every run.
(Lightning's `srun` hint has its own test.)"""

from __future__ import annotations

import warnings

import pytest
import pytorch_lightning as pl

from tests.helpers import QUIET, run_cli

#: what users saw on every run, and where it came from
NOISE = {
    "The anonymous setting has no effect": "W&B 0.31, for Lightning's anonymous=None",
    "not found. Creating it": "Lightning's MLFlowLogger, for a new experiment",
    "torch.ao.quantization is deprecated": "torch 2.13, for eager-mode quantization",
    "quantized tensor creation functions": "torch 2.13, for int8 tensors (PTQ/QAT convert)",
    "reduce_range will be deprecated": "torch 2.13, for its own default QAT qconfig",
    "Tip:": "Lightning's product tips",
    "smaller than the logging interval": "Lightning, for epochs shorter than log_every_n_steps",
}
GENUINE = "nnopt-test: a genuine warning from the user's callback"


class LoudCallback(pl.Callback):
    """A user's callback with something to say (the kind of warning that must stay visible)."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        warnings.warn(GENUINE, UserWarning, stacklevel=1)


def _noise_in(text: str) -> list[str]:
    return [f"{needle!r} ({why})" for needle, why in NOISE.items() if needle in text]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["trainer.max_epochs=2"], id="default"),  # with its progress bar and model table
        # 3 batches an epoch: shorter than the default log_every_n_steps=10
        pytest.param(
            [
                *QUIET,
                "logger=many",
                "trainer.max_epochs=1",
                "trainer.limit_train_batches=3",
                "trainer.limit_val_batches=2",
            ],
            id="logger_many",
        ),
        pytest.param([*QUIET, "compression=qat", "debug=fast"], id="qat"),  # torch.ao's deprecations
    ],
)
def test_runs_print_no_library_chatter_but_genuine_warnings(tmp_path, args) -> None:
    loud = "+callbacks.loud._target_=tests.packaging.test_noise.LoudCallback"
    result = run_cli("train", *args, loud, f"hydra.run.dir={tmp_path / 'run'}", log_dir=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, result.stderr[-3000:]
    assert _noise_in(output) == []
    assert GENUINE in output


def test_quantization_deprecation_is_quiet_after_configure() -> None:
    import torch

    from nnopt import runtime

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # as `python -W always`: everything shows unless nnopt quiets it
        runtime.configure()
        torch.ao.quantization.quantize_dynamic(torch.nn.Sequential(torch.nn.Linear(4, 2)), {torch.nn.Linear})
        warnings.warn(GENUINE, UserWarning, stacklevel=1)
    texts = [str(w.message) for w in caught]
    assert _noise_in("\n".join(texts)) == []
    assert GENUINE in texts
