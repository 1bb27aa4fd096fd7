"""The import graph of src/nnopt flows one way: every module sits on a floor and imports only from its own floor or
below, and no two modules import each other, directly or round about (imports inside functions count; only
`if TYPE_CHECKING:` imports are exempt). docs/ARCHITECTURE.md describes the same floors."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"

#: floor of each module (a package's entry covers its submodules unless they have their own)
FLOORS: dict[str, int] = {
    # 0 foundation: standard library and third-party packages only
    "nnopt": 0,
    "nnopt._compat": 0,
    "nnopt.errors": 0,
    "nnopt.io": 0,
    "nnopt.secrets": 0,
    "nnopt.hydra_env": 0,
    "nnopt.interrupt": 0,
    "nnopt.metrics": 0,
    "nnopt.metrics.names": 0,
    # 1 contracts and config: what every layer reads
    "nnopt.metrics.summary": 1,
    "nnopt.config": 1,
    "nnopt.runtime": 1,
    "nnopt.checkpoint": 1,
    "nnopt.threads": 1,
    "nnopt.rundir": 1,
    "nnopt.tasks": 1,
    "nnopt.tasks.spec": 1,
    # 2 components: the pieces a run is made of
    "nnopt.data": 2,
    "nnopt.models": 2,
    "nnopt.optim": 2,
    "nnopt.tasks.module": 2,
    "nnopt.tasks.classification": 2,
    "nnopt.tasks.regression": 2,
    "nnopt.tasks.rebuild": 2,
    "nnopt.lit": 2,
    "nnopt.fused": 2,
    "nnopt.callbacks": 2,
    "nnopt.compression": 2,
    "nnopt.metrics.efficiency": 2,
    "nnopt.metrics.plots": 2,
    "nnopt.distributed": 2,
    "nnopt.strategies": 2,
    "nnopt.sweep.optuna_pruning": 2,
    # 3 assembly: config -> objects, one run
    "nnopt.build": 3,
    "nnopt.tracking": 3,
    "nnopt.pipeline": 3,
    # 4 reading and reporting: files only
    "nnopt.report": 4,
    # 5 entry points and Hydra hooks
    "nnopt.cli": 5,
    "nnopt.train": 5,
    "nnopt.eval": 5,
    "nnopt.export": 5,
    "nnopt.sensitivity": 5,
    "nnopt.report.cli": 5,
    "nnopt.sweep": 5,
    "nnopt.sweep.callback": 5,
}
#: floors that import less than everything below them (besides their own floor): the report reads files, so it uses
#: the contracts and the foundation only
ONLY_FROM = {4: 1}
#: Hydra plugins (outside the nnopt package) use only these floors of nnopt: never its entry points
PLUGIN_MAX_FLOOR = 1


def modules(package: str = "nnopt") -> dict[str, Path]:
    found = {}
    for path in (SRC / package.replace(".", "/")).rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def floor(module: str) -> int:
    name = module
    while name not in FLOORS:
        if "." not in name:
            raise KeyError(module)
        name = name.rsplit(".", 1)[0]
    return FLOORS[name]


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The nnopt modules `module` imports anywhere (functions included), `TYPE_CHECKING` blocks left out."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rsplit(".", 1)[0] if "." in name else ""
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = module.split(".") if is_package else module.split(".")[:-1]
                if child.level:
                    base = base[: len(base) - (child.level - 1)]
                    prefix = ".".join([*base, *([child.module] if child.module else [])])
                else:
                    prefix = child.module or ""
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in known else prefix for a in child.names]
            else:
                visit(child)
                continue
            for target in targets:
                hit = resolve(target)
                if hit and hit != module and not hit.startswith(module + "."):  # a package's own submodules
                    found.add(hit)

    visit(ast.parse(path.read_text()))
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imported(m, p, known) for m, p in mods.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in edges:
        if v not in index:
            strong(v)
    return found


def test_every_module_has_a_floor() -> None:
    missing = []
    for module in modules():
        try:
            floor(module)
        except KeyError:
            missing.append(module)
    assert missing == [], "give each new module a floor in FLOORS and a line in docs/ARCHITECTURE.md"


def test_no_import_cycles_lazy_imports_included() -> None:
    assert cycles(graph()) == []


def test_imports_only_go_down() -> None:
    upward = []
    for module, targets in graph().items():
        mine = floor(module)
        below = ONLY_FROM.get(mine, mine)
        for target in targets:
            theirs = floor(target)
            if theirs != mine and theirs > below:
                upward.append(f"{module} (floor {mine}) -> {target} (floor {theirs})")
    assert upward == []


def test_hydra_plugins_use_only_the_lower_floors() -> None:
    known = set(modules())
    used = []
    for path in (SRC / "hydra_plugins").rglob("*.py"):
        module = ".".join(path.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
        used += [(module, t) for t in imported(module, path, known | {module})]
    assert used, "the sweeper plugin imports nnopt's errors and contracts: the walk must see them"
    assert [f"{m} -> {t}" for m, t in used if floor(t) > PLUGIN_MAX_FLOOR] == []


def test_the_checker_sees_lazy_imports_and_cycles(tmp_path) -> None:
    """The walk itself: an import inside a function counts, a TYPE_CHECKING one does not, a cycle is found."""
    a = tmp_path / "a.py"
    a.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\ndef f():\n    import pkg.b\n")
    assert imported("pkg.a", a, {"pkg.a", "pkg.b", "pkg.c"}) == {"pkg.b"}
    assert cycles({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": {"x"}}) == [["x", "y", "z"]]


def test_architecture_map_names_every_module() -> None:
    text = ARCHITECTURE.read_text()
    unnamed = [m for m in sorted(modules()) if f"`{m}`" not in text]
    assert unnamed == []


def _change_table() -> dict[str, list[str]]:
    text = ARCHITECTURE.read_text().split("## To change X, edit these files", 1)[1]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2 and cells[1].startswith("`"):
            rows[cells[0]] = [p for p in re.findall(r"`([^`]+)`", cells[1]) if "/" in p]
    return rows


def test_change_table_rows_name_real_places() -> None:
    root = SRC.parent
    rows = _change_table()
    assert {"optimizer", "schedule", "compression method", "data set", "summary key", "task"} <= set(rows)
    for what, paths in rows.items():
        for path in paths:
            if "<name>" in path:
                matches = list(root.glob(path.replace("<name>", "*")))
                assert matches, f"{what}: nothing matches {path}"
            else:
                assert (root / path).exists(), f"{what}: {path} does not exist"


def test_change_table_says_where_nnopts_own_options_live() -> None:
    """Every nnopt `_target_` in a group's options is defined in a module the group's row names."""
    import yaml

    root = SRC.parent
    rows = _change_table()
    for what, group in (("compression method", "compression"), ("data set", "data"), ("task", "task")):
        modules_named = [p for p in rows[what] if p.startswith("src/")]
        for option in (root / "conf" / group).glob("*.yaml"):
            node = yaml.safe_load(option.read_text()) or {}
            targets = [str(v) for k, v in _walk(node) if k == "_target_" and str(v).startswith("nnopt.")]
            for target in targets:
                module_file = "src/" + target.rsplit(".", 1)[0].replace(".", "/") + ".py"
                assert any(Path(module_file).match(p.replace("<name>", "*")) for p in modules_named), (
                    f"{option.name}: {target} is outside {modules_named}"
                )


def _walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)
