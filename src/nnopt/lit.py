"""Kept for code written against earlier nnopt versions: the task modules live in :mod:`nnopt.tasks`."""

from nnopt.tasks.classification import Classifier, RunningHits
from nnopt.tasks.module import TaskModule
from nnopt.tasks.regression import Regressor

__all__ = ["Classifier", "Regressor", "RunningHits", "TaskModule"]
