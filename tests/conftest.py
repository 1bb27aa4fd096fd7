"""Fixtures only; shared helpers live in tests/helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.helpers import make_cfg


@pytest.fixture
def digits_cfg(tmp_path: Path) -> DictConfig:
    return make_cfg(tmp_path)
