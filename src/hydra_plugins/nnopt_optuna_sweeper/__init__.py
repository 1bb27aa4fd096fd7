"""nnopt's Optuna sweeper for Hydra (`hydra/sweeper=nnopt_optuna`), discovered through the hydra_plugins namespace."""
