"""Plain nn.Modules (no Lightning): each takes `in_shape` (C, H, W) and `num_classes`."""

from nnopt.models.cnn import SmallCNN
from nnopt.models.lenet5 import LeNet5
from nnopt.models.mlp import MLP

__all__ = ["MLP", "LeNet5", "SmallCNN"]
