"""Session fixtures that start the real engines: a SLURM cluster (munge, slurmctld, two slurmd nodes in network
namespaces) and a PostgreSQL server, through scripts/local_cluster.py (which a person can run too). Everything they
start is stopped by PID, and the namespaces, the bridge and the /etc/hosts lines are removed, also when a test fails.

Without root, SLURM or PostgreSQL the tests skip with one line saying how to run them; under CI=true they fail.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOW = "run as root with slurm-wlm, munge and PostgreSQL: sudo make test-cluster (README 'Run on a SLURM cluster')"


def _load_script():
    spec = importlib.util.spec_from_file_location("nnopt_local_cluster", ROOT / "scripts" / "local_cluster.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


local_cluster = _load_script()


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.cluster)


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"cluster tests cannot start their engines under CI: {why}", pytrace=False)
    pytest.skip(f"cluster engines unavailable ({why}); {HOW}")


@pytest.fixture(scope="session")
def cluster():
    """The running local cluster (SLURM + PostgreSQL); its `env()` has SLURM_CONF and the database URLs."""
    why = local_cluster.missing()
    if why:
        _unavailable(why)
    # a SIGTERM'd pytest must still stop the cluster: make it an interrupt, which runs the fixture's finally
    previous = signal.signal(signal.SIGTERM, _interrupt)
    root = Path(tempfile.mkdtemp(prefix="nnopt-cluster-"))
    c = local_cluster.Cluster(root)
    t0 = time.monotonic()
    try:
        c.start()
    except local_cluster.ClusterError as exc:
        shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)
        _unavailable(str(exc))
    c.started_in = time.monotonic() - t0
    try:
        yield c
    finally:
        c.stop()
        left = c.processes()
        assert left == [], f"processes the cluster started still run: {left}"
        hosts = Path("/etc/hosts").read_text().splitlines()
        assert not any(line.rstrip().endswith(c.state.get("hosts_mark", "\0")) for line in hosts)
        shutil.rmtree(root, ignore_errors=True)
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture
def pg_url(cluster, request) -> str:
    """A fresh database on the session's PostgreSQL server for one test (dropped at the end)."""
    import psycopg

    port = cluster.state["pg_port"]
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:50]
    with psycopg.connect(host="127.0.0.1", port=port, user="nnopt", dbname="optuna", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgresql+psycopg://nnopt@127.0.0.1:{port}/{name}"
    with psycopg.connect(host="127.0.0.1", port=port, user="nnopt", dbname="optuna", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
