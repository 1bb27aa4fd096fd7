"""nnopt: Hydra + PyTorch Lightning template for neural-network optimization experiments."""

__version__ = "0.1.0"
