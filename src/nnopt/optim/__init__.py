"""Optimizer-side training techniques: learning-rate schedules as Lightning callbacks."""
