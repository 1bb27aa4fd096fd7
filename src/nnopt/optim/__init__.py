"""Optimizer-side training techniques: learning-rate schedule factories (Lightning steps the schedulers)."""
