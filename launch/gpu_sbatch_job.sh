#!/usr/bin/env bash
# SLURM batch script: one JAX process per node, each seeing all of its node's GPUs.
#SBATCH --job-name=inoc_jax
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=32
#SBATCH --exclusive
#SBATCH --output=inoc_jax-%j.out
#
# Submit with launch/gpu_submit.sh (which sets nodes, GPUs, time and the log path) or directly:
#   sbatch --nodes=4 launch/gpu_sbatch_job.sh --config=configs/sycophancy.py:paper_ip --workdir=/shared/runs/ip
# Arguments are passed to `python -m ${INOC_MODULE:-inoc_jax.train}` on every node. Each task finds
# its rank, the job size and the coordinator (first node, port from the job id) in SLURM's
# variables (inoc_jax.runtime.distributed), so no flag is needed. The workdir must be on a
# filesystem every node sees (NFS/Lustre/GCS) for checkpoints.
#
# Environment:
#   INOC_ENV_SETUP   command run first on every node, e.g. "source ~/inoc_venv/bin/activate" or a module load
#   INOC_MODULE      Python module to run (default inoc_jax.train; inoc_jax.sweep for sweep shards)
#   XLA_FLAGS        defaults below enable the GPU latency-hiding scheduler; set it to override
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,20p' "$0"
  exit 0
fi
[[ -n "${SLURM_JOB_ID:-}" ]] || { echo "error: run this through sbatch (see launch/gpu_submit.sh)" >&2; exit 2; }
[[ $# -gt 0 ]] || { echo "error: pass the run's arguments, e.g. --config=configs/sycophancy.py --workdir=DIR" >&2; exit 2; }

export XLA_FLAGS="${XLA_FLAGS:---xla_gpu_enable_latency_hiding_scheduler=true}"
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}"
export NCCL_DEBUG="${NCCL_DEBUG:-WARN}"

setup="${INOC_ENV_SETUP:-:}"
module="${INOC_MODULE:-inoc_jax.train}"
echo "job ${SLURM_JOB_ID}: ${SLURM_JOB_NUM_NODES:-?} nodes (${SLURM_JOB_NODELIST:-?}), module ${module}" >&2
# --kill-on-bad-exit: one failed node ends the job instead of leaving the rest waiting on collectives.
exec srun --kill-on-bad-exit=1 --label --ntasks-per-node=1 \
  bash -c "${setup} && exec python -m \"\$0\" \"\$@\"" "${module}" "$@"
