#!/bin/bash
# Run a whole nnopt sweep inside ONE SLURM allocation (alternative to `hydra/launcher=slurm`, which submits
# one SLURM job per sweep job). Jobs run one after another on the allocated GPU; a re-submission of this
# script continues the same sweep (resume=true skips completed jobs, continues killed ones from last.ckpt).
#
#   sbatch scripts/sbatch_sweep.sh                       # the default study below
#   sbatch scripts/sbatch_sweep.sh experiment=batch_lr_scaling
#
#SBATCH --job-name=nnopt-sweep
#SBATCH --partition=gpu            # your cluster's partition (sinfo -s)
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=04:00:00
#SBATCH --output=logs/slurm/%x-%j.out
#SBATCH --requeue                  # preempted: requeued, and the sweep resumes
set -euo pipefail
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/..}"
mkdir -p logs/slurm
source .venv/bin/activate
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-8}" WANDB_MODE="${WANDB_MODE:-offline}"
ARGS=("$@")
[ ${#ARGS[@]} -eq 0 ] && ARGS=(experiment=study_optimizer_compression)
# One sweep dir per submission name: the same stamp on requeue, so resume=true re-enters it.
export NNOPT_RUN_STAMP="${NNOPT_RUN_STAMP:-slurm_${SLURM_JOB_NAME:-sweep}_${SLURM_JOB_ID:-local}}"
exec nnopt-train -m trainer=gpu resume=true "${ARGS[@]}"
