"""Metric names (one place), the summary.json contract, and efficiency measures."""
