"""nnopt-sensitivity: the sparsity-0 row reproduces the run's metric, the files, the proposal, bad input."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from nnopt import sensitivity, train
from nnopt.checkpoint import net_state
from nnopt.compression.sensitivity import magnitude_mask
from nnopt.metrics import summary as S
from tests.helpers import make_cfg

SPARSITIES = "0,0.5,0.8,0.9,0.95"


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mlp")
    summary = train.run(make_cfg(out, "data.size=8", "trainer.max_epochs=4"))
    return out, summary


def test_sparsity_zero_row_equals_the_runs_test_metric(mlp_run, capsys) -> None:
    out, summary = mlp_run
    assert sensitivity.main([str(out), "--sparsities", SPARSITIES]) == 0
    with (out / sensitivity.CSV_NAME).open() as fh:
        rows = list(csv.DictReader(fh))
    layers = ["net.features.1", "net.features.3", "net.classifier"]
    assert sorted({r["layer"] for r in rows}) == sorted(layers)
    assert len(rows) == 3 * 5
    dense = [float(r["metric"]) for r in rows if float(r["sparsity"]) == 0]
    assert dense == [summary[S.TEST_ACC]] * 3  # exactly the reported test/acc (same checkpoint, split, metric)
    params = {r["layer"]: int(r["parameters"]) for r in rows}
    assert params == {"net.features.1": 64 * 300, "net.features.3": 300 * 100, "net.classifier": 100 * 10}
    first = [float(r["metric"]) for r in rows if r["layer"] == "net.features.1"]
    assert first[-1] < first[0]  # 95 % of the first layer gone costs accuracy
    assert (out / sensitivity.PNG_NAME).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "(= the run's summary)" in printed and "net.features.3" in printed


def test_checkpoint_argument_and_val_split(mlp_run, tmp_path) -> None:
    out, summary = mlp_run
    result = sensitivity.analyse(sensitivity.resolve(summary[S.CKPT_BEST], "val"), [0.0, 0.5], None)
    assert result["metric"] == "val/acc"
    assert result["dense"] == pytest.approx(summary[S.VAL_ACC_BEST])  # the best checkpoint's val accuracy


def test_magnitude_mask_is_exact() -> None:
    w = torch.tensor([[0.1, -3.0], [2.0, -0.05]])
    mask = magnitude_mask(w, 0.5)
    assert mask.tolist() == [[False, True], [True, False]]


def test_proposal_meets_the_overall_sparsity_and_prunes_insensitive_layers_most() -> None:
    rows = []
    for layer, params, drop in (("a", 1000, 0.5), ("b", 1000, 0.01)):  # a is sensitive, b is not
        for s in (0.0, 0.5, 0.9):
            rows.append({"layer": layer, "parameters": params, "sparsity": s, "metric": 0.9 - drop * s})
    plan = sensitivity.propose(rows, 0.6)
    assert (plan["a"] * 1000 + plan["b"] * 1000) / 2000 == pytest.approx(0.6, abs=1e-3)
    assert plan["b"] == pytest.approx(0.9) and plan["a"] == pytest.approx(0.3, abs=1e-3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "no such run dir or checkpoint"),
        (["{run}", "--sparsities", "0,abc"], "--sparsities='0,abc' is not allowed"),
        (["{run}", "--sparsities", "0,1.5"], "--sparsities='0,1.5' is out of range"),
        (["{run}", "--target", "1.2"], "--target=1.2 is out of range"),
        (["{run}", "--split", "train"], "argument --split: invalid choice: 'train'"),
    ],
)
def test_bad_input_one_line_exit_2(mlp_run, tmp_path, capsys, args, message) -> None:
    out, _ = mlp_run
    argv = [a.format(run=out, missing=tmp_path / "nope") for a in args]
    code = exit_code(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("nnopt: error:") and message in err[0]


def exit_code(argv: list[str]) -> int:
    """main() returns its status; argparse's own errors exit through SystemExit."""
    try:
        return sensitivity.main(argv)
    except SystemExit as exc:
        return int(exc.code)


def test_layer_sparsity_override_prunes_each_layer_to_its_target(tmp_path) -> None:
    plan = "{net.features.1: 0.5, net.features.3: 0.9, net.classifier: 0.2}"
    summary = train.run(
        make_cfg(
            tmp_path,
            "data.size=8",
            "trainer.max_epochs=4",
            "compression=prune",
            "compression.sparsity=0.7",
            f"compression.layer_sparsity={plan}",
        )
    )
    assert summary[S.STATUS] == S.COMPLETED
    state = net_state(torch.load(summary[S.CKPT_LAST], map_location="cpu", weights_only=True)["state_dict"])
    zeros = {
        name: float((state[f"{name}.weight"] == 0).float().mean())
        for name in ("features.1", "features.3", "classifier")
    }
    assert zeros == pytest.approx({"features.1": 0.5, "features.3": 0.9, "classifier": 0.2}, abs=2e-3)


@pytest.mark.slow  # LeNet-5 training plus 4 layers x 5 sparsities of evaluation
def test_proposal_beats_uniform_pruning_on_lenet5(tmp_path) -> None:
    summary = train.run(
        make_cfg(tmp_path, "model=lenet5", "optimizer=momentum", "optimizer.lr=0.02", "trainer.max_epochs=6")
    )
    target = sensitivity.resolve(tmp_path, None)
    result = sensitivity.analyse(target, sensitivity.parse_sparsities("0,0.2,0.4,0.6,0.8,0.9,0.95"), 0.8)
    assert result["dense"] == summary[S.TEST_ACC]
    plan, params = result["proposal"], {r["layer"]: r["parameters"] for r in result["rows"]}
    overall = sum(plan[n] * params[n] for n in plan) / sum(params.values())
    assert overall == pytest.approx(0.8, abs=1e-3)
    assert result["proposal_metric"] > result["uniform_metric"]
    (tmp_path / "lenet5_sensitivity.json").write_text(json.dumps({k: v for k, v in result.items() if k != "rows"}))
