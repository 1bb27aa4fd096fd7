"""Process-wide set-up, done once at the top of each entry point's `main()` (never as an import side effect)."""

from __future__ import annotations

import logging
import os
import warnings

#: warnings that are the libraries' own business, not the user's (each would print on every run)
_QUIET = (
    # Lightning 2.6 on torch 2.13 warns about its own pytree use
    r".*isinstance\(treespec, LeafSpec\).*",
    # epoch metrics are torchmetrics results, already reduced over all ranks before `self.log`: Lightning's hint to add
    # sync_dist=True would only average identical numbers again
    r"It is recommended to use `self.log\(.*sync_dist=True",
    # torch 2.13 on every eager-mode quantization call; nnopt chose that API knowingly (nnopt.compression.quantization)
    r"torch\.ao\.quantization is deprecated",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation functions",
    r"Please use quant_min and quant_max to specify the range for observers",  # torch's own default QAT qconfig
    # small data sets have epochs shorter than log_every_n_steps: the epoch-level curves are logged all the same
    r"The number of training batches \(\d+\) is smaller than the logging interval",
)


#: Lightning's "The `srun` command is available on your system but is not used" (350 characters, on every Trainer):
#: on a login node (SLURM installed, no job) it is noise; inside a job it is kept (a missing srun there hangs DDP)
_SRUN_HINT = r"The `srun` command is available on your system but is not used"


def in_slurm_job() -> bool:
    """Whether this process runs inside a SLURM allocation (sbatch, salloc or srun set SLURM_JOB_ID)."""
    return bool(os.environ.get("SLURM_JOB_ID"))


def _no_tips(record: logging.LogRecord) -> bool:
    """Lightning's product tips ("💡 Tip: ... try installing litlogger ...") are adverts, not news about the run."""
    return "Tip:" not in str(record.msg)


def configure() -> None:
    """Warning filters, a non-interactive matplotlib backend (plots are files), nnopt's OmegaConf resolvers."""
    for message in _QUIET:
        warnings.filterwarnings("ignore", message=message)
    if not in_slurm_job():
        warnings.filterwarnings("ignore", message=_SRUN_HINT)
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_no_tips)  # same function: added once
    os.environ.setdefault("MPLBACKEND", "Agg")  # read when matplotlib is first imported: no import here
    from nnopt.config import resolvers

    resolvers.register()
