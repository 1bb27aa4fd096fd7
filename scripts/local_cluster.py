#!/usr/bin/env python3
"""A real SLURM cluster (munge, slurmctld, two slurmd nodes in network namespaces) and a PostgreSQL server on this
machine, in one folder of their own; used by tests/cluster/ and by people. Needs root, slurm-wlm, munge, PostgreSQL.

    sudo python scripts/local_cluster.py start --dir /tmp/nnopt-cluster [--no-slurm] [--no-postgres]
    source /tmp/nnopt-cluster/env.sh        # SLURM_CONF, NNOPT_PG_URL, NNOPT_PG_NODE_URL, NNOPT_CLUSTER_PARTITION
    sinfo; sbatch ...; nnopt-train -m hydra/launcher=slurm hydra.launcher.partition=debug ...
    sudo python scripts/local_cluster.py stop --dir /tmp/nnopt-cluster

What it adds and removes again (`stop`, also after a failed `start`): a bridge `nnb<id>` (10.<net>.0.1/24) and
one network namespace per node (`nn<id>n<k>`, veth `eth0` = 10.<net>.0.1<k>), one /etc/hosts line per node (marked
`# nnopt-local-cluster <id>`), and the daemons, each stopped by its PID (recorded in <dir>/state.json; the
processes left in a node's namespace, e.g. job steps, are found with `ip netns pids`). Nothing else in /etc is
touched: munged gets its own key and socket in <dir>/munge, slurm.conf lives in <dir>/slurm.conf, PostgreSQL's
data dir is <dir>/pg (listening on 127.0.0.1 and the bridge address, a free port, trust auth).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HOSTS = Path("/etc/hosts")
MARK = "# nnopt-local-cluster"
PARTITION = "debug"


class ClusterError(RuntimeError):
    """The cluster could not start (the message says what is missing)."""


# -- small helpers ---------------------------------------------------------------------------------------------
def _run(*cmd: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    res = subprocess.run(list(cmd), capture_output=True, text=True, **kw)
    if check and res.returncode != 0:
        raise ClusterError(f"{' '.join(cmd)}: {(res.stderr or res.stdout).strip()[-500:]}")
    return res


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of this process is dead too
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM, wait, SIGKILL: one process, by its PID."""
    if not _alive(pid):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        _reap(pid)
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        for _ in range(50):
            _reap(pid)
            if not _alive(pid):
                break
            time.sleep(0.1)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _wait_for(what: str, check, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    tail = log.read_text()[-1500:] if log is not None and log.exists() else ""
    raise ClusterError(f"{what} did not come up within {timeout:.0f} s. {tail}")


def missing() -> str | None:
    """Why this machine cannot start the cluster (None: it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, munged as user munge, PostgreSQL as user postgres)"
    for tool in ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "ip", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install -y slurm-wlm munge iproute2)"
    if pg_bin() is None:
        return "PostgreSQL is not installed (apt-get install -y postgresql)"
    return None


def pg_bin() -> Path | None:
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists():
            return cand
    return None


# -- state -----------------------------------------------------------------------------------------------------
class Cluster:
    """One local cluster in `root`; `state.json` records everything `stop` must undo."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self.state_file = self.root / "state.json"
        self.state: dict[str, Any] = json.loads(self.state_file.read_text()) if self.state_file.exists() else {}

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_file)

    def add_pid(self, name: str, pid: int) -> None:
        self.state.setdefault("pids", {})[name] = pid
        self.save()

    # -- environment for clients ----------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if "slurm_conf" in self.state:
            env["SLURM_CONF"] = self.state["slurm_conf"]
            env["NNOPT_CLUSTER_PARTITION"] = PARTITION
        if "pg_port" in self.state:
            port = self.state["pg_port"]
            env["NNOPT_PG_URL"] = f"postgresql+psycopg://nnopt@127.0.0.1:{port}/optuna"
            if "bridge_ip" in self.state:  # what jobs on the nodes use (127.0.0.1 there is the node's own)
                env["NNOPT_PG_NODE_URL"] = f"postgresql+psycopg://nnopt@{self.state['bridge_ip']}:{port}/optuna"
        return env

    def write_env_sh(self) -> None:
        lines = [f"export {k}={v}" for k, v in self.env().items()]
        (self.root / "env.sh").write_text("\n".join(lines) + "\n")

    # -- network ----------------------------------------------------------------------------------------------
    def _network(self, nodes: int) -> None:
        ident = self.state["id"]
        net = self.state["net"]
        bridge, bridge_ip = f"nnb{ident}", f"10.{net}.0.1"
        self.state.update(bridge=bridge, bridge_ip=bridge_ip, netns=[], hosts_mark=f"{MARK} {ident}")
        self.save()
        _run("ip", "link", "add", bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{bridge_ip}/24", "dev", bridge)
        _run("ip", "link", "set", bridge, "up")
        lines = []
        for k in range(1, nodes + 1):
            ns, host, peer = f"nn{ident}n{k}", f"nn{ident}h{k}", f"nn{ident}p{k}"
            addr = f"10.{net}.0.{10 + k}"
            _run("ip", "netns", "add", ns)
            self.state["netns"].append(ns)
            self.save()
            _run("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
            _run("ip", "link", "set", host, "master", bridge)
            _run("ip", "link", "set", host, "up")
            _run("ip", "link", "set", peer, "netns", ns)
            _run("ip", "-n", ns, "link", "set", peer, "name", "eth0")
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", "eth0")
            _run("ip", "-n", ns, "link", "set", "eth0", "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
            _run("ip", "-n", ns, "route", "add", "default", "via", bridge_ip)
            self.state.setdefault("nodes", []).append({"name": f"node{k}", "addr": addr, "netns": ns})
            lines.append(f"{addr} node{k} {self.state['hosts_mark']}")
        self.save()
        with HOSTS.open("a") as f:
            f.write("".join(line + "\n" for line in lines))

    def _unnetwork(self) -> None:
        mark = self.state.get("hosts_mark")
        if mark and HOSTS.exists():
            text = HOSTS.read_text().splitlines(keepends=True)
            kept = [line for line in text if not line.rstrip().endswith(mark)]
            if len(kept) != len(text):
                HOSTS.write_text("".join(kept))
        for ns in self.state.get("netns", []):
            if Path(f"/run/netns/{ns}").exists():
                _run("ip", "netns", "del", ns, check=False)
        bridge = self.state.get("bridge")
        if bridge and Path(f"/sys/class/net/{bridge}").exists():
            _run("ip", "link", "del", bridge, check=False)

    # -- munge + slurm --------------------------------------------------------------------------------------
    def _munge(self) -> None:
        mdir = self.root / "munge"
        mdir.mkdir(mode=0o700, exist_ok=True)
        key = mdir / "munge.key"
        if not key.exists():
            _run("mungekey", "--create", f"--keyfile={key}")
        munge = pwd.getpwnam("munge")
        for path in (mdir, key):
            os.chown(path, munge.pw_uid, munge.pw_gid)
        key.chmod(0o600)
        sock = mdir / "munge.socket"
        log = self.root / "munged.log"
        proc = subprocess.Popen(
            [
                "munged",
                "--foreground",
                "--force",
                f"--socket={sock}",
                f"--key-file={key}",
                f"--pid-file={mdir / 'munged.pid'}",
                f"--seed-file={mdir / 'munged.seed'}",
                f"--log-file={log}",
            ],
            user="munge",
            group="munge",
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "munged.out").open("w"),
            start_new_session=True,
        )
        self.add_pid("munged", proc.pid)
        self.state["munge_socket"] = str(sock)
        self.save()
        _wait_for("munged", sock.exists, 20, self.root / "munged.out")

    def _slurm_conf(self, cpus: int) -> Path:
        ctld_port, slurmd_port = free_port(), free_port()
        nodes = self.state["nodes"]
        spool = self.root / "spool"
        spool.mkdir(exist_ok=True)
        (self.root / "state").mkdir(exist_ok=True)
        conf = self.root / "slurm.conf"
        text = f"""# written by scripts/local_cluster.py
ClusterName=nnopt{self.state["id"]}
SlurmctldHost={socket.gethostname()}({self.state["bridge_ip"]})
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={self.state["munge_socket"]}
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
ReturnToService=2
JobRequeue=1
KillWait=10
MinJobAge=600
InactiveLimit=0
SlurmdTimeout=60
SlurmctldTimeout=30
MessageTimeout=20
SlurmdParameters=config_overrides
StateSaveLocation={self.root / "state"}
SlurmdSpoolDir={spool}/%n
SlurmctldPidFile={self.root / "slurmctld.pid"}
SlurmdPidFile={self.root / "slurmd-%n.pid"}
SlurmctldLogFile={self.root / "slurmctld.log"}
SlurmdLogFile={self.root / "slurmd-%n.log"}
SlurmctldDebug=info
SlurmdDebug=info
"""
        for node in nodes:
            text += f"NodeName={node['name']} NodeAddr={node['addr']} CPUs={cpus} RealMemory=3000 State=UNKNOWN\n"
        names = ",".join(n["name"] for n in nodes)
        text += f"PartitionName={PARTITION} Nodes={names} Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO\n"
        conf.write_text(text)
        for node in nodes:
            (spool / node["name"]).mkdir(exist_ok=True)
        self.state["slurm_conf"] = str(conf)
        self.save()
        return conf

    def _slurm(self, cpus: int) -> None:
        conf = self._slurm_conf(cpus)
        env = {**os.environ, "SLURM_CONF": str(conf)}
        ctld = subprocess.Popen(
            ["slurmctld", "-D", "-i", "-f", str(conf)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(self.root / "slurmctld.out").open("w"),
            start_new_session=True,
        )
        self.add_pid("slurmctld", ctld.pid)
        for node in self.state["nodes"]:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{node['netns']}", "slurmd", "-D", "-N", node["name"], "-f", str(conf)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(self.root / f"slurmd-{node['name']}.out").open("w"),
                start_new_session=True,
            )
            self.add_pid(f"slurmd-{node['name']}", proc.pid)

        def idle() -> bool:
            res = _run("sinfo", "-h", "-N", "-o", "%N %t", check=False, env=env, timeout=20)
            states = dict(line.split() for line in res.stdout.splitlines() if line.strip())
            return len(states) == len(self.state["nodes"]) and all(s.startswith("idle") for s in states.values())

        _wait_for("slurm nodes (sinfo idle)", idle, 60, self.root / "slurmctld.log")

    # -- postgres -----------------------------------------------------------------------------------------------
    def _postgres(self) -> None:
        binary = pg_bin()
        assert binary is not None
        data = self.root / "pg"
        data.mkdir(mode=0o700, exist_ok=True)
        pg = pwd.getpwnam("postgres")
        os.chown(data, pg.pw_uid, pg.pw_gid)
        log = self.root / "postgres.log"
        log.touch()
        os.chown(log, pg.pw_uid, pg.pw_gid)
        _run("runuser", "-u", "postgres", "--", str(binary / "initdb"), "-D", str(data), "-A", "trust", "-U", "nnopt")
        listen = "127.0.0.1" + (f",{self.state['bridge_ip']}" if "bridge_ip" in self.state else "")
        if "bridge_ip" in self.state:
            with (data / "pg_hba.conf").open("a") as f:
                f.write(f"host all all 10.{self.state['net']}.0.0/24 trust\n")
        port = free_port()
        opts = f"-p {port} -k {data} -c listen_addresses={listen} -c max_connections=100 -c fsync=off"
        _run("runuser", "-u", "postgres", "--", str(binary / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(log),
             "-w", "-t", "60", "start")  # fmt: skip
        pid = int((data / "postmaster.pid").read_text().split()[0])
        self.add_pid("postgres", pid)
        self.state["pg_port"] = port
        self.save()
        _run("runuser", "-u", "postgres", "--", str(binary / "createdb"), "-h", "127.0.0.1", "-p", str(port),
             "-U", "nnopt", "optuna")  # fmt: skip

    # -- start / stop -------------------------------------------------------------------------------------------
    def start(self, slurm: bool = True, postgres: bool = True, nodes: int = 2, cpus: int = 1) -> dict[str, str]:
        why = missing()
        if why:
            raise ClusterError(why)
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        if self.state.get("pids"):
            raise ClusterError(f"{self.root} already holds a cluster (stop it first)")
        for old in ("state", "spool", "pg", "munge"):  # a fresh cluster: nothing from an earlier one in this folder
            shutil.rmtree(self.root / old, ignore_errors=True)
        ident = f"{os.getpid() % 10000:04d}"
        self.state = {"id": ident, "net": 100 + os.getpid() % 150, "pids": {}}
        self.save()
        try:
            if slurm:
                self._network(nodes)
                self._munge()
                self._slurm(cpus)
            if postgres:
                self._postgres()
        except BaseException:
            self.stop()
            raise
        self.write_env_sh()
        return self.env()

    def stop(self) -> None:
        """Undo everything `start` did, in reverse: jobs, daemons, namespaces, bridge, /etc/hosts lines."""
        pids = self.state.get("pids", {})
        env = {**os.environ, **({"SLURM_CONF": self.state["slurm_conf"]} if "slurm_conf" in self.state else {})}
        if "slurmctld" in pids and _alive(pids["slurmctld"]):
            _run("scancel", "--full", "--quiet", "--user=root", check=False, env=env, timeout=30)
        if "postgres" in pids and _alive(pids["postgres"]) and pg_bin() is not None:
            _run("runuser", "-u", "postgres", "--", str(pg_bin() / "pg_ctl"), "-D", str(self.root / "pg"), "-m",
                 "fast", "-w", "-t", "20", "stop", check=False)  # fmt: skip
        for name in ("postgres", *[n for n in pids if n.startswith("slurmd-")], "slurmctld", "munged"):
            if name in pids:
                _stop_pid(int(pids[name]))
        for ns in self.state.get("netns", []):  # job steps and anything else still running inside a node
            res = _run("ip", "netns", "pids", ns, check=False)
            for pid in (int(p) for p in res.stdout.split() if p.isdigit()):
                _stop_pid(pid, timeout=3)
        self._unnetwork()
        self.state["pids"] = {}
        self.state.pop("netns", None)
        self.save()

    def processes(self) -> list[int]:
        """PIDs still alive that this cluster started (for tests: none after `stop`)."""
        alive = [int(p) for p in self.state.get("pids", {}).values() if _alive(int(p))]
        for ns in self.state.get("netns", []):
            res = _run("ip", "netns", "pids", ns, check=False)
            alive += [int(p) for p in res.stdout.split() if p.isdigit()]
        return alive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "env"])
    parser.add_argument("--dir", required=True, type=Path, help="the cluster's own folder (state, logs, data)")
    parser.add_argument("--no-slurm", action="store_true")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=1, help="CPUs each node offers to SLURM (jobs at once per node)")
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir)
    try:
        if args.action == "start":
            env = cluster.start(not args.no_slurm, not args.no_postgres, nodes=args.nodes, cpus=args.cpus)
            print("\n".join(f"{k}={v}" for k, v in env.items()))
            print(f"# source {args.dir / 'env.sh'}; stop with: python {sys.argv[0]} stop --dir {args.dir}")
        elif args.action == "stop":
            cluster.stop()
        else:
            print("\n".join(f"{k}={v}" for k, v in cluster.env().items()))
    except ClusterError as exc:
        print(f"local_cluster: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
