"""Select on validation, report on test: search presets' objectives, the report's ranking, presets compose."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import ListConfig, OmegaConf

from nnopt.metrics import summary as S
from nnopt.report import build_report, write_report
from nnopt.report.batch_size import batch_size_png
from nnopt.tasks import spec as tasks
from tests.helpers import ROOT, make_cfg


def fake_job(sweep: Path, job: int, overrides: list[str], **values) -> None:
    run = sweep / str(job)
    (run / ".hydra").mkdir(parents=True)
    summary = S.empty_summary()
    summary.update({S.STATUS: S.COMPLETED, S.SEED: 1, "overrides": overrides, **values})
    S.write_summary(run, summary)


def test_report_picks_the_best_configuration_on_validation_and_shows_test(tmp_path) -> None:
    # adam is best on test, sgd on validation: the report must choose sgd
    fake_job(tmp_path, 0, ["optimizer=sgd"], **{S.VAL_ACC_BEST: 0.95, S.TEST_ACC: 0.90})
    fake_job(tmp_path, 1, ["optimizer=adam"], **{S.VAL_ACC_BEST: 0.93, S.TEST_ACC: 0.92})
    report = build_report(tmp_path)
    assert report.sort_by == S.VAL_ACC_BEST
    assert [c.label for c in report.configs] == ["optimizer=sgd", "optimizer=adam"]
    write_report(report)
    md = (tmp_path / "report.md").read_text()
    assert "**optimizer=sgd**: chosen by `val/acc_best` = 0.95 (validation); `test/acc` = 0.9 (test data" in md


def test_regression_sweeps_rank_on_val_mse_lower_first(tmp_path) -> None:
    fake_job(tmp_path, 0, ["optimizer=sgd"], **{S.VAL_MSE_BEST: 3000.0, S.TEST_MSE: 2800.0, S.TEST_R2: 0.5})
    fake_job(tmp_path, 1, ["optimizer=adam"], **{S.VAL_MSE_BEST: 2500.0, S.TEST_MSE: 2900.0, S.TEST_R2: 0.48})
    report = build_report(tmp_path)
    assert report.sort_by == S.VAL_MSE_BEST
    assert [c.label for c in report.configs] == ["optimizer=adam", "optimizer=sgd"]
    write_report(report)
    md = (tmp_path / "report.md").read_text()
    assert "`test/mse` = 2900" in md and "| MSE | MAE | R² |" in md


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "hparams_search").glob("*.yaml")), ids=lambda p: p.stem)
def test_search_presets_optimise_validation_metrics(path) -> None:
    sweeper = yaml.safe_load(path.read_text())["hydra"]["sweeper"]
    objectives = sweeper["objective"] if isinstance(sweeper["objective"], list) else [sweeper["objective"]]
    assert not [o for o in objectives if o.startswith("test/")]
    assert any(o.startswith("val/") for o in objectives)
    assert not [k for k in sweeper.get("constraints") or {} if k.startswith("test/")]


PRESETS = [
    path for group in ("experiment", "hparams_search") for path in sorted((ROOT / "conf" / group).glob("*.yaml"))
]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: f"{p.parent.name}={p.stem}")
def test_no_preset_ranks_or_selects_on_test(path) -> None:
    """Composed as `nnopt-train <group>=<preset>` composes it: what its sweep optimises and its report ranks on."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"{path.parent.name}={path.stem}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    objective = OmegaConf.select(cfg, "hydra.sweeper.objective")  # only Optuna sweeps have one
    objectives = list(objective) if isinstance(objective, ListConfig) else [objective] if objective else []
    # the report ranks on sort_by, or when it is null on the task's best validation value
    ranked_on = (
        OmegaConf.select(cfg, "hydra.callbacks.sweep.sort_by")
        or tasks.get(cfg.data.get("task") or tasks.CLASSIFICATION.name).best_key
    )
    assert ranked_on.startswith("val/")
    assert [key for key in objectives if not key.startswith(("val/", "model/"))] == []  # model/: not measured on data
    if "optuna" in str(OmegaConf.select(cfg, "hydra.sweeper._target_")).lower():  # a sweep that optimises
        assert objectives[0].startswith("val/")


@pytest.mark.parametrize("preset", ["optimizer_shootout", "batch_size_study"])
def test_presets_compose(tmp_path, preset) -> None:
    cfg = make_cfg(tmp_path, f"experiment={preset}")
    assert cfg.task_name == preset and cfg.data.name == "digits"
    text = (ROOT / "conf" / "experiment" / f"{preset}.yaml").read_text()
    sweep = yaml.safe_load(text)["hydra"]["sweeper"]["params"]
    if preset == "optimizer_shootout":
        assert {"gd", "lbfgs"} <= set(sweep["optimizer"].split(","))
    else:
        sizes = [int(v) for v in str(sweep["data.batch_size"]).split(",")]
        assert sizes[0] == 16 and sizes[-1] == 1257  # 1257: digits' whole training split (full batch)


def test_batch_size_plot(tmp_path) -> None:
    for job, size in enumerate((16, 64, 1257)):
        fake_job(tmp_path, job, [f"data.batch_size={size}"], **{S.TEST_ACC: 0.9 - size / 1e4, S.TRAIN_TIME: 10 / size})
    report = build_report(tmp_path)
    path = batch_size_png(report.configs, tmp_path / "batch_size.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert tmp_path / "batch_size.png" in write_report(report)
