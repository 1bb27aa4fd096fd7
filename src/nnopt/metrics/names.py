"""Metric names: defined once, used by the LightningModule, callbacks, summary, report and tests."""

TRAIN, VAL, TEST = "train", "val", "test"
STAGES = (TRAIN, VAL, TEST)

ACC, PRECISION, RECALL, F1, LOSS = "acc", "precision", "recall", "f1", "loss"
#: classification metrics computed by torchmetrics on val/test (macro averages for P/R/F1)
CLASS_METRICS = (ACC, PRECISION, RECALL, F1)
#: binary classification adds the area under the ROC curve
AUROC = "auroc"
#: regression metrics on val/test, in the target's original units (data.task=regression)
MSE, MAE, R2 = "mse", "mae", "r2"
REGRESSION_METRICS = (MSE, MAE, R2)


def key(stage: str, name: str) -> str:
    """'val', 'acc' -> 'val/acc' (the name logged and stored in summary.json)."""
    return f"{stage}/{name}"


VAL_ACC = key(VAL, ACC)
VAL_LOSS = key(VAL, LOSS)
VAL_ACC_BEST = key(VAL, "acc_best")
VAL_MSE = key(VAL, MSE)
VAL_MSE_BEST = key(VAL, "mse_best")
TRAIN_LOSS = key(TRAIN, LOSS)
