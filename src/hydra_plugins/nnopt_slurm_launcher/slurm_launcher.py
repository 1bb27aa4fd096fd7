"""hydra-submitit's SLURM launcher with nnopt's signal and requeue story (`hydra/launcher=slurm`).

One signal, one story, in every SLURM job this launcher submits:
- **before the time limit** SLURM sends submitit's warning signal (`--signal=USR2@<signal_delay_s>`): nnopt finishes the
  current step, saves `checkpoints/last.ckpt`, and the job requeues itself (`scontrol requeue`, at most
  `max_num_timeout` times); the requeued job continues from that checkpoint;
- **SIGTERM** (`scancel`, `scontrol requeue`, preemption, the time limit itself): the same checkpoint at the end of the
  step, the job's summary says `interrupted`; a requeued job continues from it, a cancelled one is recorded as
  interrupted in the sweep report (the other jobs go on; the sweep's exit status counts it);
- **SIGUSR1** (`--signal=USR1@...` in `additional_parameters`) stays Lightning's: `hpc_ckpt_N.ckpt` + requeue;
- **a requeued job** (SLURM_RESTART_COUNT > 0, whoever requeued it) runs its job with `resume=true`;
- **a job that never reports** (cancelled while pending, node lost, requeues spent) is a failed job, not a crash of the
  whole sweep.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger("nnopt")
#: submitit's pre-timeout signal (SUBMITIT_PREEMPT_SIGNAL, default USR2): sbatch gets --signal=<it>@signal_delay_s
PRE_TIMEOUT = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def _restarts() -> int:
    value = os.environ.get("SLURM_RESTART_COUNT", "0")
    return int(value) if value.isdigit() else 0


def with_resume(overrides: Sequence[str]) -> list[str]:
    """The job's overrides plus `resume=true` (a requeued job continues from its checkpoint)."""
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return list(overrides) if "resume" in keys else [*overrides, "resume=true"]


class _SacctOnce(logging.Filter):
    """submitit warns "Bypassing sacct error" on every status poll of a cluster without job accounting: say it once
    (nnopt's own wait reads job states with scontrol, which needs no accounting)."""

    seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if "Bypassing sacct error" not in str(record.msg):
            return True
        if _SacctOnce.seen:
            return False
        _SacctOnce.seen = True
        record.msg, record.args = "sacct failed (no job accounting here?); job states are read with scontrol", ()
        return True


SACCT_ONCE = _SacctOnce()


def sbatch_error(text: str) -> str:
    """sbatch's own reason from submitit's error text ("sbatch: error: Batch job submission failed: <reason>")."""
    reasons = [line.split("error:", 1)[1].strip() for line in text.splitlines() if "sbatch: error:" in line]
    if not reasons:
        return (text.strip().splitlines() or ["unknown error"])[-1]
    reason = reasons[-1]
    return reason.split("submission failed:", 1)[1].strip() if "submission failed:" in reason else reason


class NnoptSlurmLauncher(SlurmLauncher):
    """See the module docstring; configured by conf/hydra/launcher/slurm.yaml."""

    # -- inside the SLURM job --------------------------------------------------------------------------------
    def __call__(
        self,
        sweep_overrides: list[str],
        job_dir_key: str,
        job_num: int,
        job_id: str,
        singleton_state: dict[type, Singleton],
    ) -> JobReturn:
        from nnopt import interrupt

        restarts = _restarts()
        if restarts:
            log.info("job %d: requeued (%d time(s)); continuing with resume=true", job_num, restarts)
            sweep_overrides = with_resume(sweep_overrides)
        interrupt.reset()
        previous = interrupt.install()  # SIGTERM / SIGINT: checkpoint at the end of the step (SIGUSR1: Lightning's)
        previous[PRE_TIMEOUT] = signal.signal(PRE_TIMEOUT, interrupt.on_signal)  # replaces submitit's requeue
        try:
            return super().__call__(sweep_overrides, job_dir_key, job_num, job_id, singleton_state)
        except BaseException as exc:
            signum = interrupt.signal_of(exc)
            if signum is None:
                raise
            name = signal.Signals(signum).name
            if signum == PRE_TIMEOUT:
                budget = int(self.params.get("max_num_timeout") or 0)
                if restarts < budget:
                    self._requeue(job_num, name, restarts, budget)
                else:
                    log.warning("job %d: %s before the time limit; requeue budget (%d) spent", job_num, name, budget)
            else:
                log.warning("job %d: %s; checkpoint saved: %s", job_num, name, interrupt.saved_to())
            raise SystemExit(128 + signum) from None
        finally:
            interrupt.restore(previous)

    @staticmethod
    def _requeue(job_num: int, name: str, restarts: int, budget: int) -> None:
        array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        slurm_id = f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")
        log.warning(
            "job %d: %s before the time limit: requeue %d of %d (%s)", job_num, name, restarts + 1, budget, slurm_id
        )
        res = subprocess.run(["scontrol", "requeue", slurm_id], capture_output=True, text=True)
        if res.returncode != 0:
            log.error("job %d: scontrol requeue %s failed: %s", job_num, slurm_id, res.stderr.strip())

    # -- on the submitting side --------------------------------------------------------------------------------
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        """hydra-submitit's launch, except that a job without a result returns nothing (the sweep goes on; its summary,
        or the lack of one, makes it a failed job in the report and the exit status)."""
        import submitit

        assert self.config is not None
        assert len(job_overrides) > 0
        if SACCT_ONCE not in logging.getLogger("submitit").filters:
            logging.getLogger("submitit").addFilter(SACCT_ONCE)
        params = self.params
        init_keys = {"max_num_timeout", "submitit_folder"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=params["submitit_folder"],
            slurm_max_num_timeout=params.get("max_num_timeout", 0),
        )
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{(k if k in baseparams else f"{self._EXECUTOR}_{k}"): v for k, v in params.items() if k not in init_keys}
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info("submitit 'slurm' sweep output dir: %s", sweep_dir)
        job_params: list[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        echoed = io.StringIO()  # submitit echoes sbatch's stderr: its reason goes into nnopt's one line instead
        try:
            with contextlib.redirect_stderr(echoed):
                jobs = executor.map_array(self, *zip(*job_params, strict=True))
        except (submitit.core.utils.UncompletedJobError, submitit.core.utils.FailedSubmissionError) as exc:
            # sbatch refused (unknown partition, too many resources, ...): nothing was started
            from nnopt.errors import fail

            where = f" (hydra.launcher.partition={params['partition']})" if params.get("partition") else ""
            fail(f"sbatch refused the jobs{where}: {sbatch_error(echoed.getvalue() + chr(10) + str(exc))}")
        sys.stderr.write(echoed.getvalue())
        return [self._result(job, params) for job, params in zip(jobs, job_params, strict=True)]

    @staticmethod
    def _result(job: Any, params: tuple) -> JobReturn:
        try:
            wait_for(job)
            return job.results()[0]
        except Exception as exc:  # noqa: BLE001 - cancelled, lost, out of requeues: this job failed, not the sweep
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            log.error("job %d (SLURM %s) ended without a result: %s", params[2], job.job_id, first)
            # as nnopt's guard does for a job that raised: the job returns nothing, its summary (interrupted, or none
            # when it never ran) is what the report counts; Hydra's sweepers would re-raise a FAILED return
            return JobReturn(overrides=params[0], status=JobStatus.COMPLETED, _return_value=None)


#: SLURM job states after which no result will come (a requeued job is PENDING/REQUEUED again, not one of these)
ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"}


def slurm_state(job_id: str) -> str | None:
    """The job's state from the controller (`scontrol show job`; works without accounting, unlike sacct)."""
    try:
        res = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    for field in res.stdout.split():
        if field.startswith("JobState="):
            return field.split("=", 1)[1]
    return "PURGED" if "Invalid job id" in res.stderr else None


def wait_for(job: Any, poll: float = 2.0, grace: float = 20.0) -> None:
    """Until the job's result file exists, or SLURM says the job ended (then `grace` seconds for the file).

    submitit asks sacct, which fails on clusters without accounting: a cancelled job would be waited for forever."""
    ended_at: float | None = None
    while not job.paths.result_pickle.exists():
        state = slurm_state(str(job.job_id))
        if state in ENDED or state == "PURGED":
            ended_at = ended_at or time.monotonic()
            if time.monotonic() - ended_at > grace:
                raise RuntimeError(f"SLURM job state {state}, no result")
        else:
            ended_at = None
        time.sleep(poll)
