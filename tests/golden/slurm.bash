#!/bin/bash
# Written by profit's SlurmRunner: one run per job or array task.
#SBATCH --job-name=profit
#SBATCH --time=1:00:00
#SBATCH --partition=short
#SBATCH --requeue
#SBATCH --output=log/slurm-%j.out
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=4

if [ -n "${SLURM_ARRAY_TASK_ID:-}" ]; then
    export PROFIT_ARRAY_ID="$SLURM_ARRAY_TASK_ID"
fi
export PROFIT_RUNNER_ADDRESS="${PROFIT_RUNNER_ADDRESS:-$SLURM_SUBMIT_HOST}"
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"
export OMP_PLACES=threads

srun profit-worker
