"""Cell formats shared by the renderer's tables."""

from __future__ import annotations

from typing import Any


def fmt_s(st: dict[str, float] | None) -> str:
    """A `results.stats` record as `median s (min–max, n=count)`."""
    if not st:
        return "–"
    return f"{st['median']:.3f} s ({st['min']:.3f}–{st['max']:.3f}, n={st['n']})"


def yes(flag: Any) -> str:
    """A target check: yes, **no** (bold, to stand out), or – where it was not judged."""
    return {True: "yes", False: "**no**", None: "–"}[flag if isinstance(flag, bool) or flag is None else bool(flag)]


def num(value: Any, spec: str = ".3g") -> str:
    return "–" if value is None else format(value, spec)
