"""Data sources (one module each) on one shared in-memory DataModule."""

from nnopt.data.base import InMemoryDataModule
from nnopt.data.batches import TensorBatches

__all__ = ["InMemoryDataModule", "TensorBatches"]
