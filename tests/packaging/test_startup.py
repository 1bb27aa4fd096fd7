"""`--help`, `--cfg` and option errors answer without importing torch or Lightning (start-up in well under
two seconds of CPU instead of ~8), and `--help` is nnopt's own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import CLI_TIMEOUT, ROOT, cli_env

HEAVY = ("torch", "pytorch_lightning", "lightning", "lightning_fabric", "torchmetrics")
#: runs an entry point's main() and prints the heavy modules it loaded (JSON) as the last stdout line
PROBE = """
import json, sys
from nnopt.{app} import main
code = None
try:
    main()
except SystemExit as stop:
    code = stop.code
print(json.dumps({{"code": code, "heavy": sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy}))}}))
"""


def probe(app: str, *args: str) -> tuple[dict, subprocess.CompletedProcess]:
    code = PROBE.format(app=app, heavy=list(HEAVY))
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        cwd=ROOT,
        timeout=CLI_TIMEOUT,
    )
    return json.loads(result.stdout.splitlines()[-1]), result


@pytest.mark.parametrize(
    ("app", "args", "code"),
    [
        ("train", ["--help"], 0),
        ("eval", ["--help"], 0),
        ("train", ["--cfg", "job", "optimizer=sgd"], None),
        ("train", ["model=nosuch"], 2),
        ("train", ["-m", "optimizer=sgd,nosuch"], 2),
    ],
)
def test_no_torch_or_lightning_before_a_run(app, args, code):
    found, result = probe(app, *args)
    assert found == {"code": code, "heavy": []}, result.stderr[-2000:]


def test_help_is_nnopts_own():
    _, result = probe("train", "--help")
    out = result.stdout
    assert out.startswith("nnopt-train: neural-network optimization experiments")
    optimizers = ", ".join(sorted(p.stem for p in (ROOT / "conf" / "optimizer").glob("*.yaml")))
    assert f"\noptimizer: {optimizers}\n" in out
    assert "\n== Examples ==\n" in out and "nnopt-train -m optimizer=sgd,adam model=mlp,lenet5" in out
    assert "hydra/launcher" not in out and "Powered by Hydra" not in out
