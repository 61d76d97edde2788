#!/usr/bin/env bash
# Shared helpers for the launch/ scripts; sourced, never run. Written for bash >= 3.2
# (macOS) as well as Linux: no namerefs, no empty-array expansions under `set -u`.
#
# Every external command goes through `run` (or `capture` when its output is
# needed), which prints it shell-quoted. With --dry-run (DRY_RUN=1) commands
# are printed to stdout and not executed; `capture` then returns a
# placeholder so the script's control flow can still be followed.

# The Python the workers use for the project; jax[tpu] is pinned to the project's jax.
INOC_VENV_DIR="${INOC_VENV_DIR:-\$HOME/inoc_venv}"
INOC_SRC_DIR="${INOC_SRC_DIR:-\$HOME/inoc_jax}"
INOC_LOG_ROOT="${INOC_LOG_ROOT:-\$HOME/inoc_logs}"
DRY_RUN="${DRY_RUN:-0}"
# fd 3 is the real stdout, so commands printed inside $(capture ...) still reach the user.
exec 3>&1

die() {
  echo "error: $*" >&2
  exit 2
}

note() {
  echo "[$(basename "$0")] $*" >&2
}

print_command() {
  local quoted
  quoted="$(printf ' %q' "$@")"
  if [[ "${DRY_RUN}" == 1 ]]; then
    echo "+${quoted}" >&3
  else
    echo "+${quoted}" >&2
  fi
}

# run CMD ARGS...: print, then execute unless dry-run.
run() {
  print_command "$@"
  if [[ "${DRY_RUN}" == 1 ]]; then
    return 0
  fi
  "$@"
}

# capture PLACEHOLDER CMD ARGS...: print, then execute and echo stdout; dry-run echoes PLACEHOLDER.
capture() {
  local placeholder="$1"
  shift
  print_command "$@"
  if [[ "${DRY_RUN}" == 1 ]]; then
    echo "${placeholder}"
    return 0
  fi
  "$@"
}

# require_value FLAG VALUE: dies unless VALUE is non-empty (for flags that take an argument).
require_value() {
  [[ -n "${2:-}" && "${2:0:2}" != "--" ]] || die "$1 needs a value (see --help)"
}

# require_set NAME FLAG: dies if the variable NAME is empty.
require_set() {
  [[ -n "${!1:-}" ]] || die "$2 is required (see --help)"
}

# Default TPU VM software version per accelerator generation (override with --runtime-version).
default_runtime_version() {
  case "$1" in
    v4-*) echo "tpu-ubuntu2204-base" ;;
    v5litepod-* | v5e-*) echo "v2-alpha-tpuv5-lite" ;;
    v5p-*) echo "v2-alpha-tpuv5" ;;
    v6e-*) echo "v2-alpha-tpuv6e" ;;
    *) die "no default runtime version for accelerator type '$1'; pass --runtime-version" ;;
  esac
}

# set_scope: SCOPE=(--zone=... [--project=...]), the flags every gcloud TPU command takes.
set_scope() {
  require_set ZONE --zone
  SCOPE=("--zone=${ZONE}")
  if [[ -n "${PROJECT:-}" ]]; then
    SCOPE+=("--project=${PROJECT}")
  fi
}

# tpu_ssh NAME WORKER REMOTE_COMMAND: runs a bash command on TPU VM workers ('all' or an index).
tpu_ssh() {
  run gcloud compute tpus tpu-vm ssh "$1" "${SCOPE[@]}" "--worker=$2" "--command=$3"
}

# tpu_state NAME QUEUED [DRY_RUN_STATE]: prints READY / CREATING / PREEMPTED / ... (ACTIVE / ...
# for queued resources) or NOT_FOUND; a dry run prints DRY_RUN_STATE (default: ready).
tpu_state() {
  local state
  if [[ "$2" == 1 ]]; then
    state="$(capture "${3:-ACTIVE}" gcloud compute tpus queued-resources describe "$1" "${SCOPE[@]}" \
      "--format=value(state.state)" 2>/dev/null)" || state="NOT_FOUND"
  else
    state="$(capture "${3:-READY}" gcloud compute tpus tpu-vm describe "$1" "${SCOPE[@]}" \
      "--format=value(state)" 2>/dev/null)" || state="NOT_FOUND"
  fi
  echo "${state:-NOT_FOUND}"
}

# gcs_exists URL: true if the object exists (dry-run: false, so loops are followed once).
gcs_exists() {
  print_command gcloud storage ls "$1"
  if [[ "${DRY_RUN}" == 1 ]]; then
    return 1
  fi
  gcloud storage ls "$1" >/dev/null 2>&1
}

# quote_words ARGS...: one shell-quoted string, safe to embed in a remote bash command.
quote_words() {
  local out
  out="$(printf '%q ' "$@")"
  echo "${out% }"
}
