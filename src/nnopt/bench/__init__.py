"""Benchmark helpers used by `scripts/bench.py` (importable so configs can name them as `_target_`)."""
