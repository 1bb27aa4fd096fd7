"""One Optuna study in a real PostgreSQL server, run by several sweeper processes (workers) started by hand:
exact total, no parameters twice, a kill -9 worker's trial found stale by the heartbeat and retried by another
worker; bad URLs refused in one line. (The same as a SLURM array: test_slurm.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import CLI_TIMEOUT
from tests.sweep.test_optuna_workers import (
    SURPLUS_ATTR,
    WORKER_ATTR,
    records,
    start,
    tally,
    toy_cmd,
    toy_env,
    wait_all,
    wait_for_running_trial_of,
)

pytestmark = pytest.mark.cluster


def test_four_workers_run_16_trials_exactly(tmp_path: Path, pg_url: str) -> None:
    logs = [tmp_path / f"w{i}.log" for i in range(4)]
    procs = [start(toy_cmd(pg_url, tmp_path, "sleep=0.5", n_trials=16), logs[i], worker=i) for i in range(4)]
    assert wait_all(procs, logs) == [0, 0, 0, 0], [log.read_text()[-2000:] for log in logs]
    study = optuna.load_study(study_name="toy", storage=pg_url)
    finished, running = tally(study)
    assert len(finished) == 16 and running == [] and all(t.state == TrialState.COMPLETE for t in finished)
    assert len({(t.params["x"], t.params["y"]) for t in finished}) == 16
    assert sorted(r["num"] for r in records(tmp_path / "out")) == sorted(t.number for t in finished)
    assert len({t.user_attrs[WORKER_ATTR] for t in finished}) == 4
    assert [t for t in study.trials if t.state == TrialState.FAIL and not t.user_attrs.get(SURPLUS_ATTR)] == []
    results = (tmp_path / "sweep" / "optimization_results.yaml").read_text()
    assert "n_trials: 16\n" in results and "COMPLETE: 16\n" in results


def test_kill_9_of_one_worker_its_trial_goes_stale_and_is_retried(tmp_path: Path, pg_url: str) -> None:
    logs = [tmp_path / f"w{i}.log" for i in range(3)]
    victim = start(toy_cmd(pg_url, tmp_path, "sleep=0.3", "slow=60", n_trials=8), logs[0], worker=0)
    others: list[subprocess.Popen] = []
    try:
        number = wait_for_running_trial_of({"study_name": "toy", "storage": pg_url}, victim.pid)
        others = [start(toy_cmd(pg_url, tmp_path, "sleep=0.3", n_trials=8), logs[i], worker=i) for i in (1, 2)]
        time.sleep(1.5)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert wait_all(others, logs[1:]) == [0, 0], [log.read_text()[-2000:] for log in logs[1:]]
    finally:
        for p in [victim, *others]:
            if p.poll() is None:
                p.kill()
                p.wait()
    study = optuna.load_study(study_name="toy", storage=pg_url)
    finished, running = tally(study)
    assert len(finished) == 8 and running == [] and all(t.state == TrialState.COMPLETE for t in finished)
    assert study.trials[number].state == TrialState.FAIL
    retries = [t for t in finished if t.system_attrs.get("failed_trial") == number]
    assert len(retries) == 1 and retries[0].params == study.trials[number].params
    failed = [t.number for t in study.trials if t.state == TrialState.FAIL and not t.user_attrs.get(SURPLUS_ATTR)]
    assert failed == [number]
    assert len({(t.params["x"], t.params["y"]) for t in finished}) == 8
    said = "".join(log.read_text() for log in logs[1:])
    assert said.count(f"trial {number} had no heartbeat for the grace period") == 1


def test_a_database_that_does_not_exist_is_one_line(tmp_path: Path, cluster) -> None:
    url = f"postgresql+psycopg://nnopt@127.0.0.1:{cluster.state['pg_port']}/nope"
    res = subprocess.run(toy_cmd(url, tmp_path), env=toy_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"nnopt: error: hydra.sweeper.storage={url}: cannot reach the database: ")
    assert 'database "nope" does not exist' in lines[0]
    assert not (tmp_path / "sweep").exists()
