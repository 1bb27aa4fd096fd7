"""Several sweeper processes (workers) run one Optuna study: exact trial count, no duplicate parameters, a dead
worker found by Optuna's heartbeat (RDB storages) or by its process id (journal file), no batch barrier, and bad
storage URLs / mismatched studies refused with one line. The trials are tests/sweep/toy_study.py jobs (no torch).
The same checks against a real PostgreSQL server: tests/cluster/test_study_postgres.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hydra_plugins.nnopt_optuna_sweeper.optuna_sweeper import SURPLUS_ATTR, WORKER_ATTR, NnoptOptunaSweeper
from tests.helpers import CLI_TIMEOUT

TOY = Path(__file__).with_name("toy_study.py")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def toy_cmd(storage: str, tmp: Path, *extra: str, n_trials: int = 6) -> list[str]:
    return [
        sys.executable,
        str(TOY),
        "-m",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=toy",
        "hydra.sweeper.objective=score",
        f"hydra.sweeper.n_trials={n_trials}",
        "hydra.sweeper.heartbeat_interval=1",
        "hydra.sweeper.grace_period=3",
        "x=interval(0,1)",
        "y=interval(0,1)",
        f"hydra.sweep.dir={tmp / 'sweep'}",
        f"out={tmp / 'out'}",
        *extra,
    ]


def toy_env(worker: int = 0) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "NNOPT_"))}
    env.update(NNOPT_STUDY_WORKER=str(worker), HYDRA_FULL_ERROR="0", OMP_NUM_THREADS="1")
    return env


def start(cmd: list[str], log: Path, worker: int = 0) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=toy_env(worker), stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_all(procs: list[subprocess.Popen], logs: list[Path], timeout: float = 180) -> list[int]:
    try:
        codes = [p.wait(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return codes


def tally(study: optuna.Study) -> tuple[list, list]:
    return NnoptOptunaSweeper._tally(study)


def records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def wait_for_running_trial_of(study_args: dict, pid: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(**study_args)
        except KeyError:  # the worker has not created the study yet
            time.sleep(0.2)
            continue
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if str(t.user_attrs.get(WORKER_ATTR, "")).split(":")[1:2] == [str(pid)]:
                return t.number
        time.sleep(0.2)
    raise AssertionError(f"worker {pid} never ran a trial")


def test_two_workers_run_one_study_exactly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    procs = [start(toy_cmd(url, tmp_path, "sleep=0.3", n_trials=8), logs[i], worker=i) for i in (0, 1)]
    assert wait_all(procs, logs) == [0, 0], [log.read_text()[-3000:] for log in logs]
    study = optuna.load_study(study_name="toy", storage=url)
    finished, running = tally(study)
    assert len(finished) == 8 and running == []
    assert all(t.state == TrialState.COMPLETE for t in finished)
    # every counted trial ran once, its own parameters; the two workers both ran trials
    params = [(t.params["x"], t.params["y"]) for t in finished]
    assert len(set(params)) == 8
    ran = records(tmp_path / "out")
    assert sorted(r["num"] for r in ran) == sorted(t.number for t in finished)
    assert len({t.user_attrs[WORKER_ATTR] for t in finished}) == 2
    # a trial asked when the last slot was already taken is marked surplus and never launched
    surplus = [t for t in study.trials if t.user_attrs.get(SURPLUS_ATTR)]
    assert len(study.trials) == 8 + len(surplus)
    assert not {t.number for t in surplus} & {r["num"] for r in ran}
    # whichever worker finished last wrote the whole study into the results file
    results = (tmp_path / "sweep" / "optimization_results.yaml").read_text()
    assert "n_trials: 8\n" in results and "COMPLETE: 8\n" in results


def test_kill_9_worker_trial_goes_stale_and_another_worker_retries_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    # worker 0's first job (job 0) runs long enough to be killed in it
    victim = start(toy_cmd(url, tmp_path, "sleep=0.3", "slow=30", n_trials=6), logs[0], worker=0)
    try:
        number = wait_for_running_trial_of({"study_name": "toy", "storage": url}, victim.pid)
        survivor = start(toy_cmd(url, tmp_path, "sleep=0.3", n_trials=6), logs[1], worker=1)
        time.sleep(1.5)  # the survivor is running its own trials next to the victim's
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert wait_all([survivor], logs[1:]) == [0], logs[1].read_text()[-3000:]
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    study = optuna.load_study(study_name="toy", storage=url)
    finished, running = tally(study)
    assert len(finished) == 6 and running == [] and all(t.state == TrialState.COMPLETE for t in finished)
    dead = study.trials[number]
    assert dead.state == TrialState.FAIL
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == dead.params
    # nothing else failed and no other parameters ran twice
    assert [t.number for t in study.trials if t.state == TrialState.FAIL and not t.user_attrs.get(SURPLUS_ATTR)] == [
        number
    ]
    assert len({(t.params["x"], t.params["y"]) for t in finished}) == 6
    assert f"trial {number} had no heartbeat for the grace period" in logs[1].read_text()


def test_journal_storage_finds_a_dead_worker_by_its_pid(tmp_path: Path) -> None:
    url = f"journal:///{tmp_path / 'study.log'}"
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.log")))
    logs = [tmp_path / "w0.log", tmp_path / "w1.log"]
    victim = start(toy_cmd(url, tmp_path, "slow=30", n_trials=4), logs[0], worker=0)
    try:
        number = wait_for_running_trial_of({"study_name": "toy", "storage": storage}, victim.pid)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        survivor = start(toy_cmd(url, tmp_path, n_trials=4), logs[1], worker=1)
        assert wait_all([survivor], logs[1:]) == [0], logs[1].read_text()[-3000:]
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    study = optuna.load_study(study_name="toy", storage=storage)
    finished, _ = tally(study)
    assert len(finished) == 4 and all(t.state == TrialState.COMPLETE for t in finished)
    assert study.trials[number].state == TrialState.FAIL
    assert [t.params for t in finished if t.system_attrs.get("failed_trial") == number] == [study.trials[number].params]
    assert f"trial {number}: its worker" in logs[1].read_text()


def test_a_slow_trial_does_not_hold_the_others_back(tmp_path: Path) -> None:
    """n_jobs=2 with joblib: while job 0 runs 8 s, the other slot runs trial after trial (no batch barrier)."""
    url = f"sqlite:///{tmp_path / 'study.db'}"
    cmd = toy_cmd(url, tmp_path, "slow=8", "sleep=0.2", "hydra/launcher=joblib", "hydra.sweeper.n_jobs=2", n_trials=5)
    log = tmp_path / "w.log"
    assert wait_all([start(cmd, log)], [log]) == [0], log.read_text()[-3000:]
    ran = {r["num"]: r for r in records(tmp_path / "out")}
    assert sorted(ran) == [0, 1, 2, 3, 4]
    during = [n for n, r in ran.items() if n != 0 and r["end"] < ran[0]["end"]]
    assert len(during) >= 2, ran  # a batch of 2 would have let only trial 1 run beside job 0


@pytest.mark.parametrize(
    ("storage", "says"),
    [
        ("not a url", "hydra.sweeper.storage=not a url: not a storage URL"),
        ("nosuchdb://x/y", "hydra.sweeper.storage=nosuchdb://x/y: unknown database kind 'nosuchdb'"),
        (
            "postgresql+psycopg://nnopt@127.0.0.1:1/optuna",
            "hydra.sweeper.storage=postgresql+psycopg://nnopt@127.0.0.1:1/optuna: cannot reach the database",
        ),
    ],
)
def test_bad_storage_is_one_line_and_starts_nothing(tmp_path: Path, storage: str, says: str) -> None:
    res = subprocess.run(toy_cmd(storage, tmp_path), env=toy_env(), capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"nnopt: error: {says}"), res.stderr[-2000:]
    assert not (tmp_path / "out").exists() and not (tmp_path / "sweep").exists()


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (["y=interval(0,2)"], "hydra.sweeper.params: study 'toy' in this storage searches another space (differs in"),
        (["hydra.sweeper.direction=minimize"], "hydra.sweeper.direction=['minimize']: study 'toy' in this storage"),
        (["hydra.sweeper.objective=other"], "hydra.sweeper.objective=['other']: study 'toy' in this storage"),
    ],
)
def test_worker_joining_a_different_study_is_refused(tmp_path: Path, change: list[str], says: str) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = subprocess.run(toy_cmd(url, tmp_path, n_trials=1), env=toy_env(), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    res = subprocess.run(
        [*toy_cmd(url, tmp_path, n_trials=2), *change],
        env=toy_env(1),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
    )
    assert res.returncode == 2, res.stderr[-2000:]
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"nnopt: error: {says}"), res.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before
    assert len(optuna.load_study(study_name="toy", storage=url).trials) == 1
