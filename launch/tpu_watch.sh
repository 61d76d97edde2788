#!/usr/bin/env bash
# Run a config on a (spot) TPU VM to completion: recreate the VM and resume after preemptions.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

usage() {
  cat <<'EOF'
Usage: launch/tpu_watch.sh --name NAME --zone ZONE --accelerator-type TYPE --config FILE[:PRESET]
                           --workdir gs://BUCKET/DIR (--git-ref REF | --copy-tree) [options] [-- ARGS]

Creates the TPU VM if needed (tpu_create.sh), installs the project (tpu_setup.sh), starts
the run (tpu_run.sh), then polls every --poll-seconds:
  - worker 0's run exited 0, or WORKDIR/summary.json exists: done (delete the VM with --delete-when-done);
  - the VM is PREEMPTED / TERMINATED / gone: delete, recreate, set up and start the same
    command again, which resumes from the newest Orbax checkpoint in WORKDIR/checkpoints;
  - the run exited non-zero on a live VM: start it again (the same resume);
each restart uses one of --max-retries (default 3); when they are spent the script exits 1.

Required:
  --name, --zone, --accelerator-type   as for tpu_create.sh
  --config, --workdir                  as for tpu_run.sh
  --git-ref REF | --copy-tree          as for tpu_setup.sh
Options:
  --project, --runtime-version, --spot (default), --on-demand, --queued   passed to tpu_create.sh
  --repo URL, --with-smollm2                                               passed to tpu_setup.sh
  --run-id ID, --module MODULE, --env KEY=VALUE (repeatable)               passed to tpu_run.sh
  --done-marker URL    object whose existence means finished (default WORKDIR/summary.json)
  --max-retries N      restarts allowed after preemptions or crashes (default 3)
  --poll-seconds S     seconds between checks (default 120)
  --delete-when-done   delete the VM after a successful run
  --dry-run            print the commands of the first attempt and one check, run nothing
  -h, --help           this text
  -- ARGS              passed to the module
EOF
}

NAME="" ZONE="${INOC_TPU_ZONE:-}" PROJECT="${INOC_TPU_PROJECT:-}" ACCELERATOR="" RUNTIME="" CAPACITY="--spot"
QUEUED=0 CONFIG="" WORKDIR="" GIT_REF="" COPY_TREE=0 REPO="" SMOLLM2=0 RUN_ID="" MODULE="inoc_jax.train"
DONE_MARKER="" MAX_RETRIES=3 POLL=120 DELETE_WHEN_DONE=0
ENV_FLAGS=()
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) require_value "$1" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) require_value "$1" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) require_value "$1" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --accelerator-type) require_value "$1" "${2:-}"; ACCELERATOR="$2"; shift 2 ;;
    --runtime-version) require_value "$1" "${2:-}"; RUNTIME="$2"; shift 2 ;;
    --spot | --on-demand) CAPACITY="$1"; shift ;;
    --queued) QUEUED=1; shift ;;
    --config) require_value "$1" "${2:-}"; CONFIG="$2"; shift 2 ;;
    --workdir) require_value "$1" "${2:-}"; WORKDIR="$2"; shift 2 ;;
    --git-ref) require_value "$1" "${2:-}"; GIT_REF="$2"; shift 2 ;;
    --copy-tree) COPY_TREE=1; shift ;;
    --repo) require_value "$1" "${2:-}"; REPO="$2"; shift 2 ;;
    --with-smollm2) SMOLLM2=1; shift ;;
    --run-id) require_value "$1" "${2:-}"; RUN_ID="$2"; shift 2 ;;
    --module) require_value "$1" "${2:-}"; MODULE="$2"; shift 2 ;;
    --env) require_value "$1" "${2:-}"; ENV_FLAGS+=(--env "$2"); shift 2 ;;
    --done-marker) require_value "$1" "${2:-}"; DONE_MARKER="$2"; shift 2 ;;
    --max-retries) require_value "$1" "${2:-}"; MAX_RETRIES="$2"; shift 2 ;;
    --poll-seconds) require_value "$1" "${2:-}"; POLL="$2"; shift 2 ;;
    --delete-when-done) DELETE_WHEN_DONE=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; ARGS=("$@"); break ;;
    *) die "unknown argument '$1' (see --help; arguments for the run go after --)" ;;
  esac
done
for required in NAME:--name ACCELERATOR:--accelerator-type CONFIG:--config WORKDIR:--workdir; do
  require_set "${required%%:*}" "${required#*:}"
done
set_scope
if [[ -n "${GIT_REF}" && "${COPY_TREE}" == 1 ]] || [[ -z "${GIT_REF}" && "${COPY_TREE}" == 0 ]]; then
  die "give exactly one of --git-ref REF and --copy-tree"
fi
[[ "${MAX_RETRIES}" =~ ^[0-9]+$ ]] || die "--max-retries takes a number, got '${MAX_RETRIES}'"
[[ "${WORKDIR}" == gs://* ]] || die "--workdir must be a gs:// URL: a recreated VM resumes from its checkpoints"
RUN_ID="${RUN_ID:-$(basename "${WORKDIR%/}")}"
DONE_MARKER="${DONE_MARKER:-${WORKDIR%/}/summary.json}"

scope_args=(--name "${NAME}" --zone "${ZONE}")
[[ -n "${PROJECT}" ]] && scope_args+=(--project "${PROJECT}")
dry=()
[[ "${DRY_RUN}" == 1 ]] && dry=(--dry-run)
queued=()
[[ "${QUEUED}" == 1 ]] && queued=(--queued)

create_vm() {
  local runtime=()
  [[ -n "${RUNTIME}" ]] && runtime=(--runtime-version "${RUNTIME}")
  "${HERE}/tpu_create.sh" "${scope_args[@]}" --accelerator-type "${ACCELERATOR}" "${CAPACITY}" \
    ${runtime[@]+"${runtime[@]}"} ${queued[@]+"${queued[@]}"} ${dry[@]+"${dry[@]}"}
}

delete_vm() {
  "${HERE}/tpu_delete.sh" "${scope_args[@]}" ${queued[@]+"${queued[@]}"} ${dry[@]+"${dry[@]}"} || true
}

setup_vm() {
  local source=(--copy-tree)
  if [[ -n "${GIT_REF}" ]]; then
    source=(--git-ref "${GIT_REF}")
    [[ -n "${REPO}" ]] && source+=(--repo "${REPO}")
  fi
  [[ "${SMOLLM2}" == 1 ]] && source+=(--with-smollm2)
  "${HERE}/tpu_setup.sh" "${scope_args[@]}" "${source[@]}" ${dry[@]+"${dry[@]}"}
}

start_run() {
  "${HERE}/tpu_run.sh" "${scope_args[@]}" --config "${CONFIG}" --workdir "${WORKDIR}" --run-id "${RUN_ID}" \
    --module "${MODULE}" --restart ${ENV_FLAGS[@]+"${ENV_FLAGS[@]}"} ${dry[@]+"${dry[@]}"} \
    -- ${ARGS[@]+"${ARGS[@]}"}
}

# Worker 0's exit status of this run, 'running', or 'unknown' when the VM cannot be reached.
run_status() {
  local out
  out="$(capture running gcloud compute tpus tpu-vm ssh "${NAME}" "${SCOPE[@]}" --worker=0 \
    "--command=cat ${INOC_LOG_ROOT}/${RUN_ID}/worker-0.exit 2>/dev/null || echo running")" || out="unknown"
  echo "${out}" | tail -n 1 | tr -d '[:space:]'
}

finish() {
  note "run '${RUN_ID}' finished: ${WORKDIR}"
  if [[ "${DELETE_WHEN_DONE}" == 1 ]]; then
    delete_vm
  fi
  exit 0
}

# (Re)build the VM and start the run: the first attempt and every restart after a preemption.
# Fails (status 1) instead of exiting, so a VM lost again while being set up costs one retry.
provision_and_start() {
  case "$(tpu_state "${NAME}" "${QUEUED}" NOT_FOUND)" in
    READY | ACTIVE) ;;
    NOT_FOUND) create_vm || return 1 ;;
    *)
      delete_vm
      create_vm || return 1
      ;;
  esac
  setup_vm || return 1
  start_run || return 1
}

if [[ "${DRY_RUN}" == 0 ]] && gcs_exists "${DONE_MARKER}"; then
  finish
fi
provision_and_start || note "provisioning failed; the next check decides"
retries=0
while true; do
  if [[ "${DRY_RUN}" == 1 ]]; then
    run_status >/dev/null
    gcs_exists "${DONE_MARKER}" || true
    note "dry run: would check every ${POLL}s and restart at most ${MAX_RETRIES} times"
    exit 0
  fi
  sleep "${POLL}"
  state="$(tpu_state "${NAME}" "${QUEUED}")"
  case "${state}" in
    READY | ACTIVE)
      status="$(run_status)"
      case "${status}" in
        0) finish ;;
        running | unknown) continue ;;
        *)
          gcs_exists "${DONE_MARKER}" && finish
          retries=$((retries + 1))
          ((retries <= MAX_RETRIES)) || die "run '${RUN_ID}' failed with status ${status} and ${MAX_RETRIES} retries are spent; see launch/tpu_logs.sh --name ${NAME} --zone ${ZONE} --run-id ${RUN_ID}"
          note "run exited with ${status}; restart ${retries}/${MAX_RETRIES}"
          start_run || note "restart failed; the next check decides"
          ;;
      esac
      ;;
    PREEMPTED | TERMINATED | NOT_FOUND | SUSPENDED | FAILED)
      gcs_exists "${DONE_MARKER}" && finish
      retries=$((retries + 1))
      ((retries <= MAX_RETRIES)) || die "${NAME} was lost (${state}) and ${MAX_RETRIES} retries are spent; the checkpoints in ${WORKDIR} remain"
      note "${NAME} is ${state}; recreating (restart ${retries}/${MAX_RETRIES})"
      provision_and_start || note "provisioning failed; the next check decides"
      ;;
    *) note "${NAME} is ${state}; waiting" ;;
  esac
done
