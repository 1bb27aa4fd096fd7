"""README's config-group table names exactly the option files under conf/ (either side can fall behind)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
#: groups that are not choices a user picks per run (Hydra's own settings, paths)
NOT_IN_TABLE = {"hydra", "paths"}
#: an option name in backticks (`data.dir`, paths and overrides in the same cells are not option names)
OPTION = re.compile(r"`([A-Za-z0-9_]+)`")


def config_group_table(readme: str) -> dict[str, set[str]]:
    """{group: option names} from the table under README's "### Config groups" heading."""
    section = readme.split("### Config groups", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("|")]
    assert rows[0].replace(" ", "") == "|group|options|", rows[0]
    table: dict[str, set[str]] = {}
    for row in rows[2:]:
        group_cell, options_cell = (cell.strip() for cell in row.strip("|").split("|", 1))
        for group in OPTION.findall(group_cell):
            table[group] = set(OPTION.findall(options_cell))
    return table


def option_files(group: str) -> set[str]:
    return {path.stem for path in (CONF / group).glob("*.yaml")}


TABLE = config_group_table((ROOT / "README.md").read_text())


def test_the_table_lists_every_config_group() -> None:
    groups = {path.name for path in CONF.iterdir() if path.is_dir() and not path.name.startswith("_")}
    assert sorted(groups - NOT_IN_TABLE - set(TABLE)) == []
    assert sorted(set(TABLE) - groups) == []


@pytest.mark.parametrize("group", sorted(TABLE))
def test_the_table_row_names_exactly_the_groups_option_files(group: str) -> None:
    assert sorted(option_files(group) - TABLE[group]) == [], f"conf/{group}/ options missing from README's table"
    assert sorted(TABLE[group] - option_files(group)) == [], f"README's table names options conf/{group}/ lacks"


def test_the_parser_sees_a_missing_and_an_extra_option() -> None:
    row = "| `model` | `mlp` (`model.hidden=[64]`), `lenet5`, `rnn` |"
    readme = f"### Config groups\n\n| group | options |\n|---|---|\n{row}\n\n### Next\n| `data` | `x` |\n"
    table = config_group_table(readme)
    assert table == {"model": {"mlp", "lenet5", "rnn"}}
    assert option_files("model") - table["model"] == {"cnn"}
    assert table["model"] - option_files("model") == {"rnn"}
