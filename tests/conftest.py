"""Fixtures only; shared helpers live in tests/helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import DictConfig

from tests.helpers import make_cfg


@pytest.fixture
def digits_cfg(tmp_path: Path) -> DictConfig:
    return make_cfg(tmp_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`make test` runs two pytest-xdist workers with `--dist loadgroup`: each test file stays on one worker (its
    module fixtures are built once), and all of tests/cluster shares one worker, so only one local SLURM cluster
    and one PostgreSQL server run at a time."""
    for item in items:
        path = item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group("cluster" if path.startswith("tests/cluster/") else path))
