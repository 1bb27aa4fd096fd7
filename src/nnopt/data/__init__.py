"""Data sources (one module each) on one shared in-memory DataModule."""

from nnopt.data.base import InMemoryDataModule, TensorBatches

__all__ = ["InMemoryDataModule", "TensorBatches"]
