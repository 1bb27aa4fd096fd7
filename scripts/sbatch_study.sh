#!/bin/bash
# N workers of ONE Optuna study, each a SLURM array task (a sweeper process running trials one after another on its
# allocation). The study lives in a database every node can reach; hydra.sweeper.n_trials is the study's total over
# all workers. A worker that dies (node lost, kill -9) stops beating; after hydra.sweeper.grace_period another
# worker fails its trial and runs its parameters again. Every worker writes into the same sweep dir (one run stamp
# per array), and whichever ends last writes optimization_results.yaml and report.md for the whole study.
#
#   sbatch --array=0-3 scripts/sbatch_study.sh hparams_search=digits_tpe \
#     hydra.sweeper.storage=postgresql+psycopg://nnopt@dbhost:5432/optuna hydra.sweeper.n_trials=16
#
# By hand instead of SLURM (one line per worker, any machines that reach the database):
#   NNOPT_RUN_STAMP=my_study NNOPT_STUDY_WORKER=<0..N-1> nnopt-train resume=true hparams_search=digits_tpe \
#     hydra.sweeper.storage=...
#
#SBATCH --job-name=nnopt-study
#SBATCH --array=0-3                # 4 workers (sbatch --array=0-7 for 8)
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=logs/slurm/%x-%A_%a.out
#SBATCH --requeue                  # preempted: requeued; its running trial is retried after the grace period
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
mkdir -p logs/slurm
[ -f .venv/bin/activate ] && source .venv/bin/activate
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-4}" WANDB_MODE="${WANDB_MODE:-offline}"
# One sweep dir for the whole array; a different sampler seed per worker (else they propose the same points).
export NNOPT_RUN_STAMP="${NNOPT_RUN_STAMP:-study_${SLURM_ARRAY_JOB_ID:-${SLURM_JOB_ID:-local}}}"
export NNOPT_STUDY_WORKER="${SLURM_ARRAY_TASK_ID:-0}"
# resume=true: the workers that start later (or a requeued one) join the sweep dir the first one created
exec nnopt-train -m resume=true "$@"
