"""nnopt's SLURM launcher: hydra-submitit's, with one story for signals, requeues and lost jobs."""
