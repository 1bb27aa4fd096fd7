"""nnopt's config tree, importable as `nnopt.conf` (the wheel ships it there; src/nnopt/conf links here).

The package marker lets Hydra read it as `pkg://nnopt.conf`, e.g. from your own project's `hydra.searchpath`.
"""
