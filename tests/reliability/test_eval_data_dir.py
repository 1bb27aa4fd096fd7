"""`nnopt-eval data.dir=...` tests the checkpoint on the data in that dir (conf/eval.yaml says so; it used to need
`+data.dir`)."""

from __future__ import annotations

import json

import numpy as np

from nnopt import eval as nnopt_eval
from nnopt import train
from nnopt.metrics import summary as S
from tests.helpers import ONE_EPOCH, make_cfg
from tests.helpers.data import write_idx, write_mnist_dir
from tests.reliability.test_bad_inputs import invoke


def test_eval_data_dir_overrides_the_checkpoints(tmp_path, monkeypatch, capfd):
    trained_on = write_mnist_dir(tmp_path / "a")
    good = train.run(make_cfg(tmp_path / "run", *ONE_EPOCH, "data=mnist", f"data.dir={trained_on}"))
    assert good[S.STATUS] == S.COMPLETED
    other = write_mnist_dir(tmp_path / "b", n_test=30)
    bad = write_mnist_dir(tmp_path / "c")
    write_idx(bad / "t10k-labels-idx1-ubyte.gz", np.full(20, 200))
    logs = tmp_path / "logs"
    base = [f"ckpt_path={good[S.CKPT_BEST]}", "efficiency.latency_repeats=1", f"paths.log_dir={logs}"]

    code, err = invoke(nnopt_eval.main, [*base, f"data.dir={bad}"], monkeypatch, capfd)
    assert code == 2, err[-2000:]
    assert err.strip().splitlines()[-1].startswith(f"nnopt: error: {bad / 't10k-labels-idx1-ubyte.gz'}: label 200")

    code, err = invoke(nnopt_eval.main, [*base, f"data.dir={other}"], monkeypatch, capfd)
    assert code == 0, err[-2000:]
    [summary] = [json.loads(p.read_text()) for p in logs.rglob(S.FILENAME) if "completed" in p.read_text()]
    assert summary[S.STATUS] == S.COMPLETED
    assert summary[S.EVALUATED_CKPT] == good[S.CKPT_BEST]
