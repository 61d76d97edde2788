#!/usr/bin/env bash
# Delete a TPU VM or a queued resource (and its VM).
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/tpu_delete.sh --name NAME --zone ZONE [options]

Deletes the TPU VM NAME without asking; with --queued, deletes the queued resource NAME
and the VM it created. Checkpoints and logs in gs:// stay.

Required:
  --name NAME        TPU VM / queued resource name
  --zone ZONE        its zone
Options:
  --project PROJECT  GCP project
  --queued           NAME is a queued resource
  --async            return before the deletion finishes
  --dry-run          print every command instead of running it
  -h, --help         this text
EOF
}

NAME="" ZONE="${INOC_TPU_ZONE:-}" PROJECT="${INOC_TPU_PROJECT:-}" QUEUED=0 ASYNC=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) require_value "$1" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) require_value "$1" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) require_value "$1" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --queued) QUEUED=1; shift ;;
    --async) ASYNC=(--async); shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
require_set NAME --name
set_scope

if [[ "${QUEUED}" == 1 ]]; then
  run gcloud compute tpus queued-resources delete "${NAME}" "${SCOPE[@]}" --force --quiet ${ASYNC[@]+"${ASYNC[@]}"}
else
  run gcloud compute tpus tpu-vm delete "${NAME}" "${SCOPE[@]}" --quiet ${ASYNC[@]+"${ASYNC[@]}"}
fi
note "${NAME} deleted"
