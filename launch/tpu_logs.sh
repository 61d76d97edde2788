#!/usr/bin/env bash
# Follow (or print) a run's per-worker logs on a TPU VM.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/tpu_logs.sh --name NAME --zone ZONE --run-id ID [options]

Prints the last lines of ~/inoc_logs/ID/worker-N.log and keeps following it (tail -F).
Worker 0 is the one that logs training progress; other workers log only warnings.

Required:
  --name NAME        TPU VM name
  --zone ZONE        its zone
  --run-id ID        the run (default name: the workdir's last component, see tpu_run.sh)
Options:
  --project PROJECT  GCP project
  --worker W         worker index or 'all' (default 0)
  --lines N          lines of history to show (default 100)
  --no-follow        print and exit instead of following
  --status           print each worker's exit status (or 'running') and exit
  --dry-run          print every command instead of running it
  -h, --help         this text
EOF
}

NAME="" ZONE="${INOC_TPU_ZONE:-}" PROJECT="${INOC_TPU_PROJECT:-}" RUN_ID="" WORKER=0 LINES=100 FOLLOW=1 STATUS=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) require_value "$1" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) require_value "$1" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) require_value "$1" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --run-id) require_value "$1" "${2:-}"; RUN_ID="$2"; shift 2 ;;
    --worker) require_value "$1" "${2:-}"; WORKER="$2"; shift 2 ;;
    --lines) require_value "$1" "${2:-}"; LINES="$2"; shift 2 ;;
    --no-follow) FOLLOW=0; shift ;;
    --status) STATUS=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
require_set NAME --name
require_set RUN_ID --run-id
set_scope
[[ "${RUN_ID}" =~ ^[A-Za-z0-9._-]+$ ]] || die "--run-id '${RUN_ID}' may only use letters, digits, '.', '_' and '-'"
[[ "${WORKER}" == all || "${WORKER}" =~ ^[0-9]+$ ]] || die "--worker takes an index or 'all', got '${WORKER}'"
[[ "${LINES}" =~ ^[0-9]+$ ]] || die "--lines takes a number, got '${LINES}'"

logdir="${INOC_LOG_ROOT}/${RUN_ID}"
if [[ "${STATUS}" == 1 ]]; then
  remote="for f in ${logdir}/worker-*.log; do w=\${f%.log}; if [ -f \"\$w.exit\" ]; then echo \"\$(hostname) \${w##*/}: exit \$(cat \"\$w.exit\")\"; else echo \"\$(hostname) \${w##*/}: running\"; fi; done"
elif [[ "${FOLLOW}" == 1 ]]; then
  remote="tail -n ${LINES} -F ${logdir}/worker-*.log"
else
  remote="tail -n ${LINES} ${logdir}/worker-*.log"
fi
tpu_ssh "${NAME}" "${WORKER}" "${remote}"
