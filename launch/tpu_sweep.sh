#!/usr/bin/env bash
# Split one sweep across several TPU VMs by run index: VM i runs shard i of K.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'EOF'
Usage: launch/tpu_sweep.sh (--vms A,B,C | --name-prefix P --num-vms K) --zone ZONE --config FILE[:PRESET]
                           --workdir gs://BUCKET/SWEEP [options] [-- ARGS]

VM i of K runs, on all its workers,
  python -m inoc_jax.sweep --config=FILE[:PRESET] --workdir=WORKDIR --num_shards=K --shard_index=i ARGS
The sweep CLI owns the contract (see launch/README.md): it enumerates the sweep's runs in a
fixed order, runs those with run_index % num_shards == shard_index one after another, each
in WORKDIR/<run name>, and skips runs that already finished, so a restarted shard resumes.

Required:
  --vms A,B,C | --name-prefix P --num-vms K   the VMs (P-0 ... P-(K-1) with a prefix)
  --zone ZONE, --config FILE[:PRESET], --workdir gs://...
Options:
  --project PROJECT
  --create --accelerator-type TYPE [--runtime-version V] [--spot (default) | --on-demand] [--queued]
                          create the VMs first (tpu_create.sh)
  --git-ref REF | --copy-tree [--repo URL] [--with-smollm2]
                          install the project on each VM first (tpu_setup.sh)
  --watch                 run tpu_watch.sh per VM in parallel (recreate and resume on preemption;
                          needs --accelerator-type and a source) and wait for all of them
  --max-retries N         with --watch (default 3)
  --poll-seconds S        with --watch: seconds between checks (default 120)
  --module MODULE         the sweep CLI (default inoc_jax.sweep)
  --env KEY=VALUE         environment on the workers (repeatable)
  --dry-run               print every command instead of running it
  -h, --help              this text
  -- ARGS                 passed to every shard
EOF
}

VMS="" PREFIX="" NUM_VMS="" ZONE="${INOC_TPU_ZONE:-}" PROJECT="${INOC_TPU_PROJECT:-}" CONFIG="" WORKDIR=""
CREATE=0 ACCELERATOR="" RUNTIME="" CAPACITY="--spot" QUEUED=0 GIT_REF="" COPY_TREE=0 REPO="" SMOLLM2=0 WATCH=0
MAX_RETRIES=3 POLL=120 MODULE="inoc_jax.sweep"
ENV_FLAGS=()
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --vms) require_value "$1" "${2:-}"; VMS="$2"; shift 2 ;;
    --name-prefix) require_value "$1" "${2:-}"; PREFIX="$2"; shift 2 ;;
    --num-vms) require_value "$1" "${2:-}"; NUM_VMS="$2"; shift 2 ;;
    --zone) require_value "$1" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) require_value "$1" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --config) require_value "$1" "${2:-}"; CONFIG="$2"; shift 2 ;;
    --workdir) require_value "$1" "${2:-}"; WORKDIR="$2"; shift 2 ;;
    --create) CREATE=1; shift ;;
    --accelerator-type) require_value "$1" "${2:-}"; ACCELERATOR="$2"; shift 2 ;;
    --runtime-version) require_value "$1" "${2:-}"; RUNTIME="$2"; shift 2 ;;
    --spot | --on-demand) CAPACITY="$1"; shift ;;
    --queued) QUEUED=1; shift ;;
    --git-ref) require_value "$1" "${2:-}"; GIT_REF="$2"; shift 2 ;;
    --copy-tree) COPY_TREE=1; shift ;;
    --repo) require_value "$1" "${2:-}"; REPO="$2"; shift 2 ;;
    --with-smollm2) SMOLLM2=1; shift ;;
    --watch) WATCH=1; shift ;;
    --max-retries) require_value "$1" "${2:-}"; MAX_RETRIES="$2"; shift 2 ;;
    --poll-seconds) require_value "$1" "${2:-}"; POLL="$2"; shift 2 ;;
    --module) require_value "$1" "${2:-}"; MODULE="$2"; shift 2 ;;
    --env) require_value "$1" "${2:-}"; ENV_FLAGS+=(--env "$2"); shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; ARGS=("$@"); break ;;
    *) die "unknown argument '$1' (see --help; arguments for the shards go after --)" ;;
  esac
done
require_set CONFIG --config
require_set WORKDIR --workdir
set_scope
[[ "${WORKDIR}" == gs://* ]] || die "--workdir must be a gs:// URL shared by every VM"
names=()
if [[ -n "${VMS}" ]]; then
  [[ -z "${PREFIX}" ]] || die "give --vms or --name-prefix/--num-vms, not both"
  IFS=',' read -r -a names <<<"${VMS}"
else
  require_set PREFIX "--vms or --name-prefix"
  [[ "${NUM_VMS}" =~ ^[1-9][0-9]*$ ]] || die "--num-vms takes a positive number, got '${NUM_VMS}'"
  for ((i = 0; i < NUM_VMS; i++)); do names+=("${PREFIX}-${i}"); done
fi
num_shards="${#names[@]}"
if [[ "${CREATE}" == 1 || "${WATCH}" == 1 ]]; then
  require_set ACCELERATOR --accelerator-type
fi
source_args=()
if [[ -n "${GIT_REF}" ]]; then
  source_args=(--git-ref "${GIT_REF}")
  [[ -n "${REPO}" ]] && source_args+=(--repo "${REPO}")
elif [[ "${COPY_TREE}" == 1 ]]; then
  source_args=(--copy-tree)
fi
[[ "${SMOLLM2}" == 1 && ${#source_args[@]} -gt 0 ]] && source_args+=(--with-smollm2)
[[ "${WATCH}" == 0 || ${#source_args[@]} -gt 0 ]] || die "--watch needs --git-ref REF or --copy-tree to set up recreated VMs"

common=(--zone "${ZONE}")
[[ -n "${PROJECT}" ]] && common+=(--project "${PROJECT}")
[[ "${DRY_RUN}" == 1 ]] && common+=(--dry-run)
create_args=(--accelerator-type "${ACCELERATOR}" "${CAPACITY}")
[[ -n "${RUNTIME}" ]] && create_args+=(--runtime-version "${RUNTIME}")
[[ "${QUEUED}" == 1 ]] && create_args+=(--queued)
sweep_name="$(basename "${WORKDIR%/}")"

pids=()
for index in "${!names[@]}"; do
  name="${names[${index}]}"
  run_id="${sweep_name}-shard${index}-of${num_shards}"
  shard_args=(-- "--num_shards=${num_shards}" "--shard_index=${index}" ${ARGS[@]+"${ARGS[@]}"})
  note "shard ${index}/${num_shards} -> ${name} (run id ${run_id})"
  if [[ "${WATCH}" == 1 ]]; then
    watch=("${HERE}/tpu_watch.sh" --name "${name}" "${common[@]}" "${create_args[@]}" "${source_args[@]}"
      --config "${CONFIG}" --workdir "${WORKDIR}" --run-id "${run_id}" --module "${MODULE}"
      --done-marker "${WORKDIR%/}/.shards/${index}-of-${num_shards}.done" --max-retries "${MAX_RETRIES}" --poll-seconds "${POLL}"
      ${ENV_FLAGS[@]+"${ENV_FLAGS[@]}"} "${shard_args[@]}")
    if [[ "${DRY_RUN}" == 1 ]]; then
      "${watch[@]}"
    else
      "${watch[@]}" &
      pids+=("$!")
    fi
    continue
  fi
  if [[ "${CREATE}" == 1 ]]; then
    "${HERE}/tpu_create.sh" --name "${name}" "${common[@]}" "${create_args[@]}"
  fi
  if [[ ${#source_args[@]} -gt 0 ]]; then
    "${HERE}/tpu_setup.sh" --name "${name}" "${common[@]}" "${source_args[@]}"
  fi
  "${HERE}/tpu_run.sh" --name "${name}" "${common[@]}" --config "${CONFIG}" --workdir "${WORKDIR}" \
    --run-id "${run_id}" --module "${MODULE}" ${ENV_FLAGS[@]+"${ENV_FLAGS[@]}"} "${shard_args[@]}"
done

failed=0
for pid in ${pids[@]+"${pids[@]}"}; do
  wait "${pid}" || failed=$((failed + 1))
done
((failed == 0)) || die "${failed} of ${num_shards} shards failed; rerun this command to resume them"
note "${num_shards} shards of ${WORKDIR} $([[ ${WATCH} == 1 ]] && echo finished || echo started)"
