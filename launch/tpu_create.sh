#!/usr/bin/env bash
# Create a Cloud TPU VM (or a queued resource) and wait until it is ready.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/tpu_create.sh --name NAME --zone ZONE --accelerator-type TYPE [options]

Creates a TPU VM (all its workers) and waits until it is READY.

Required:
  --name NAME               TPU VM (and queued resource) name
  --zone ZONE               e.g. us-west4-a (v5e), us-central2-b (v4), us-east5-a (v6e)
  --accelerator-type TYPE   e.g. v5litepod-16, v4-32, v5p-8, v6e-16
Options:
  --project PROJECT         GCP project (default: gcloud's configured project)
  --runtime-version V       TPU software version (default per generation: v4 tpu-ubuntu2204-base,
                            v5e v2-alpha-tpuv5-lite, v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e)
  --spot                    spot capacity: cheaper, can be preempted (default)
  --on-demand               on-demand capacity
  --queued                  create through a queued resource (waits in line for capacity)
  --valid-for DURATION      queued resources only: give up waiting after e.g. 6h (default 24h)
  --network NET, --subnetwork SUB, --service-account SA   passed to gcloud when given
  --no-wait                 return right after the create request
  --wait-timeout SECONDS    how long to wait for READY/ACTIVE (default 3600)
  --poll-seconds SECONDS    seconds between state checks (default 30)
  --dry-run                 print every command instead of running it
  -h, --help                this text
EOF
}

NAME="" ZONE="${INOC_TPU_ZONE:-}" PROJECT="${INOC_TPU_PROJECT:-}" ACCELERATOR="" RUNTIME="" SPOT=1 QUEUED=0
VALID_FOR="24h" NETWORK="" SUBNETWORK="" SERVICE_ACCOUNT="" WAIT=1 WAIT_TIMEOUT=3600 POLL=30
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) require_value "$1" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) require_value "$1" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) require_value "$1" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --accelerator-type) require_value "$1" "${2:-}"; ACCELERATOR="$2"; shift 2 ;;
    --runtime-version) require_value "$1" "${2:-}"; RUNTIME="$2"; shift 2 ;;
    --spot) SPOT=1; shift ;;
    --on-demand) SPOT=0; shift ;;
    --queued) QUEUED=1; shift ;;
    --valid-for) require_value "$1" "${2:-}"; VALID_FOR="$2"; shift 2 ;;
    --network) require_value "$1" "${2:-}"; NETWORK="$2"; shift 2 ;;
    --subnetwork) require_value "$1" "${2:-}"; SUBNETWORK="$2"; shift 2 ;;
    --service-account) require_value "$1" "${2:-}"; SERVICE_ACCOUNT="$2"; shift 2 ;;
    --no-wait) WAIT=0; shift ;;
    --wait-timeout) require_value "$1" "${2:-}"; WAIT_TIMEOUT="$2"; shift 2 ;;
    --poll-seconds) require_value "$1" "${2:-}"; POLL="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
require_set NAME --name
require_set ACCELERATOR --accelerator-type
set_scope
RUNTIME="${RUNTIME:-$(default_runtime_version "${ACCELERATOR}")}"

extra=()
[[ -n "${NETWORK}" ]] && extra+=("--network=${NETWORK}")
[[ -n "${SUBNETWORK}" ]] && extra+=("--subnetwork=${SUBNETWORK}")
[[ -n "${SERVICE_ACCOUNT}" ]] && extra+=("--service-account=${SERVICE_ACCOUNT}")
[[ "${SPOT}" == 1 ]] && extra+=("--spot")

if [[ "${QUEUED}" == 1 ]]; then
  run gcloud compute tpus queued-resources create "${NAME}" "${SCOPE[@]}" "--node-id=${NAME}" \
    "--accelerator-type=${ACCELERATOR}" "--runtime-version=${RUNTIME}" "--valid-until-duration=${VALID_FOR}" \
    ${extra[@]+"${extra[@]}"}
  ready_state="ACTIVE"
else
  run gcloud compute tpus tpu-vm create "${NAME}" "${SCOPE[@]}" "--accelerator-type=${ACCELERATOR}" \
    "--version=${RUNTIME}" ${extra[@]+"${extra[@]}"}
  ready_state="READY"
fi

if [[ "${WAIT}" == 1 ]]; then
  deadline=$((SECONDS + WAIT_TIMEOUT))
  while true; do
    state="$(tpu_state "${NAME}" "${QUEUED}")"
    note "${NAME}: ${state}"
    case "${state}" in
      "${ready_state}") break ;;
      FAILED | SUSPENDED | PREEMPTED | TERMINATED) die "${NAME} is ${state}; see the gcloud output above" ;;
    esac
    ((SECONDS < deadline)) || die "${NAME} not ${ready_state} after ${WAIT_TIMEOUT}s (state ${state})"
    sleep "${POLL}"
  done
fi
note "${NAME} (${ACCELERATOR}, ${RUNTIME}, $([[ ${SPOT} == 1 ]] && echo spot || echo on-demand)) is ready"
