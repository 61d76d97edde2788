#!/usr/bin/env bash
# Submit a multi-node GPU run to SLURM (sbatch launch/gpu_sbatch_job.sh with the right sizes).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'EOF'
Usage: launch/gpu_submit.sh --nodes N --config FILE[:PRESET] --workdir DIR [options] [-- ARGS]

Submits launch/gpu_sbatch_job.sh: one task per node, every GPU of the node visible to it,
rank/size/coordinator taken from SLURM by inoc_jax. DIR must be visible from every node.

Required:
  --nodes N                 nodes (JAX processes)
  --config FILE[:PRESET]    experiment config
  --workdir DIR             shared run directory (NFS, Lustre or gs://)
Options:
  --gpus-per-node G         default 8
  --cpus-per-task C         default 32
  --partition P, --account A, --qos Q, --time D-HH:MM:SS   passed to sbatch
  --job-name NAME           default inoc_jax
  --log-dir DIR             where SLURM writes <job-name>-<job id>.out (default ./slurm_logs)
  --env-setup CMD           run on each node before python, e.g. 'source ~/inoc_venv/bin/activate'
  --module MODULE           default inoc_jax.train
  --dependency SPEC         sbatch --dependency, e.g. afterany:12345 to chain a resume job
  --dry-run                 print the sbatch command instead of running it
  -h, --help                this text
  -- ARGS                   passed to the module
EOF
}

NODES="" CONFIG="" WORKDIR="" GPUS=8 CPUS=32 PARTITION="" ACCOUNT="" QOS="" TIME="" JOB_NAME="inoc_jax"
LOG_DIR="slurm_logs" ENV_SETUP="" MODULE="inoc_jax.train" DEPENDENCY=""
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --nodes) require_value "$1" "${2:-}"; NODES="$2"; shift 2 ;;
    --config) require_value "$1" "${2:-}"; CONFIG="$2"; shift 2 ;;
    --workdir) require_value "$1" "${2:-}"; WORKDIR="$2"; shift 2 ;;
    --gpus-per-node) require_value "$1" "${2:-}"; GPUS="$2"; shift 2 ;;
    --cpus-per-task) require_value "$1" "${2:-}"; CPUS="$2"; shift 2 ;;
    --partition) require_value "$1" "${2:-}"; PARTITION="$2"; shift 2 ;;
    --account) require_value "$1" "${2:-}"; ACCOUNT="$2"; shift 2 ;;
    --qos) require_value "$1" "${2:-}"; QOS="$2"; shift 2 ;;
    --time) require_value "$1" "${2:-}"; TIME="$2"; shift 2 ;;
    --job-name) require_value "$1" "${2:-}"; JOB_NAME="$2"; shift 2 ;;
    --log-dir) require_value "$1" "${2:-}"; LOG_DIR="$2"; shift 2 ;;
    --env-setup) require_value "$1" "${2:-}"; ENV_SETUP="$2"; shift 2 ;;
    --module) require_value "$1" "${2:-}"; MODULE="$2"; shift 2 ;;
    --dependency) require_value "$1" "${2:-}"; DEPENDENCY="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; ARGS=("$@"); break ;;
    *) die "unknown argument '$1' (see --help; arguments for the run go after --)" ;;
  esac
done
require_set NODES --nodes
require_set CONFIG --config
require_set WORKDIR --workdir
[[ "${NODES}" =~ ^[1-9][0-9]*$ ]] || die "--nodes takes a positive number, got '${NODES}'"
[[ "${GPUS}" =~ ^[1-9][0-9]*$ ]] || die "--gpus-per-node takes a positive number, got '${GPUS}'"

sbatch_args=("--job-name=${JOB_NAME}" "--nodes=${NODES}" --ntasks-per-node=1 "--gpus-per-node=${GPUS}"
  "--cpus-per-task=${CPUS}" "--output=${LOG_DIR}/%x-%j.out" --export=ALL)
[[ -n "${PARTITION}" ]] && sbatch_args+=("--partition=${PARTITION}")
[[ -n "${ACCOUNT}" ]] && sbatch_args+=("--account=${ACCOUNT}")
[[ -n "${QOS}" ]] && sbatch_args+=("--qos=${QOS}")
[[ -n "${TIME}" ]] && sbatch_args+=("--time=${TIME}")
[[ -n "${DEPENDENCY}" ]] && sbatch_args+=("--dependency=${DEPENDENCY}")

if [[ "${DRY_RUN}" == 0 ]]; then
  mkdir -p "${LOG_DIR}"
fi
# sbatch --export=ALL hands INOC_ENV_SETUP and INOC_MODULE to the job script.
run env "INOC_ENV_SETUP=${ENV_SETUP}" "INOC_MODULE=${MODULE}" sbatch "${sbatch_args[@]}" \
  "${HERE}/gpu_sbatch_job.sh" "--config=${CONFIG}" "--workdir=${WORKDIR}" ${ARGS[@]+"${ARGS[@]}"}
