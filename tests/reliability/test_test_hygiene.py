"""Tests that survive a loaded machine: no test may hang its verdict on a short wall-clock limit."""

from __future__ import annotations

import re

from tests.helpers import CLI_TIMEOUT, ROOT

#: `timeout=<literal seconds>` in a call, or pytest-timeout's marker (its ini option is checked separately)
SHORT_LIMIT = re.compile(r"\btimeout\s*=\s*(\d+(?:\.\d+)?)\b|pytest\.mark\.timeout")


def test_no_short_wall_clock_limits_in_tests():
    """A 2-core machine shared by many jobs runs a 30 s CLI test in minutes: limits are CLI_TIMEOUT or none."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for match in SHORT_LIMIT.finditer(path.read_text()):
            seconds = match.group(1)
            if seconds is None or float(seconds) < CLI_TIMEOUT:
                line = path.read_text()[: match.start()].count("\n") + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {match.group(0).strip()}")
    config = (ROOT / "pyproject.toml").read_text()
    pytest_ini = config.split("[tool.pytest.ini_options]", 1)[-1].split("\n[", 1)[0]
    if re.search(r"^\s*timeout\s*=", pytest_ini, re.MULTILINE):
        offenders.append("pyproject.toml: [tool.pytest.ini_options] timeout")
    assert offenders == []
