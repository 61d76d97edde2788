#!/usr/bin/env bash
# Start one training run on every worker of a TPU VM, detached, with a log per worker.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/tpu_run.sh --name NAME --zone ZONE --config FILE[:PRESET] --workdir gs://BUCKET/DIR [options] [-- ARGS]

Runs `python -m MODULE --config=... --workdir=... ARGS` on all workers at once
(gcloud ... ssh --worker=all), detached with nohup so the ssh session may end. JAX joins
the workers by itself on Cloud TPU (inoc_jax.runtime.distributed). Rerunning the same
command with the same --workdir resumes from the newest checkpoint in WORKDIR/checkpoints.

On each worker: log ~/inoc_logs/RUN_ID/worker-N.log, process id in .../worker-N.pid,
exit status in .../worker-N.exit; when the process ends its log is copied to
WORKDIR/logs/worker-N.log.

Required:
  --name NAME              TPU VM name
  --zone ZONE              its zone
  --config FILE[:PRESET]   experiment config, relative to the project root on the workers
  --workdir URL            run directory every worker can reach: gs://BUCKET/DIR
Options:
  --project PROJECT        GCP project
  --run-id ID              names the log folder (default: the workdir's last component)
  --module MODULE          Python module to run (default inoc_jax.train)
  --env KEY=VALUE          environment for the run on every worker (repeatable), e.g.
                           --env LIBTPU_INIT_ARGS=--xla_tpu_enable_async_collective_fusion=true
  --restart                stop this run's previous processes on every worker first (SIGTERM to the
                           recorded process group, so the trainer checkpoints; SIGKILL after --stop-timeout)
  --stop-timeout SECONDS   how long --restart waits for a checkpointing exit (default 300)
  --dry-run                print every command instead of running it
  -h, --help               this text
  -- ARGS                  passed to the module, e.g. -- --config.optim.lr=1e-4
EOF
}

NAME="" ZONE="${INOC_TPU_ZONE:-}" PROJECT="${INOC_TPU_PROJECT:-}" CONFIG="" WORKDIR="" RUN_ID="" MODULE="inoc_jax.train"
RESTART=0 STOP_TIMEOUT=300
ENVS=()
ARGS=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) require_value "$1" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) require_value "$1" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) require_value "$1" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --config) require_value "$1" "${2:-}"; CONFIG="$2"; shift 2 ;;
    --workdir) require_value "$1" "${2:-}"; WORKDIR="$2"; shift 2 ;;
    --run-id) require_value "$1" "${2:-}"; RUN_ID="$2"; shift 2 ;;
    --module) require_value "$1" "${2:-}"; MODULE="$2"; shift 2 ;;
    --env)
      require_value "$1" "${2:-}"
      [[ "$2" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env takes KEY=VALUE, got '$2'"
      ENVS+=("$2"); shift 2 ;;
    --restart) RESTART=1; shift ;;
    --stop-timeout) require_value "$1" "${2:-}"; STOP_TIMEOUT="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; ARGS=("$@"); break ;;
    *) die "unknown argument '$1' (see --help; arguments for the run go after --)" ;;
  esac
done
require_set NAME --name
require_set CONFIG --config
require_set WORKDIR --workdir
set_scope
[[ "${WORKDIR}" == gs://* ]] || die "--workdir must be a gs:// URL so every worker (and a recreated VM) sees it"
RUN_ID="${RUN_ID:-$(basename "${WORKDIR%/}")}"
[[ "${STOP_TIMEOUT}" =~ ^[0-9]+$ ]] || die "--stop-timeout takes seconds, got '${STOP_TIMEOUT}'"
[[ "${RUN_ID}" =~ ^[A-Za-z0-9._-]+$ ]] || die "--run-id '${RUN_ID}' may only use letters, digits, '.', '_' and '-'"

logdir="${INOC_LOG_ROOT}/${RUN_ID}"
command_words="$(quote_words env ${ENVS[@]+"${ENVS[@]}"} python -m "${MODULE}" "--config=${CONFIG}" \
  "--workdir=${WORKDIR}" ${ARGS[@]+"${ARGS[@]}"})"
workdir_logs="$(quote_words "${WORKDIR%/}/logs/")"

# Each worker writes a small runner (quoted heredoc: nothing expands until it runs) and
# starts it with nohup; its index comes from the TPU metadata server (hostname elsewhere).
remote="set -euo pipefail
worker=\$(curl -sf -H Metadata-Flavor:Google http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number || hostname)
mkdir -p ${logdir}
cat > ${logdir}/run.sh <<'INOC_RUN'
#!/usr/bin/env bash
# \$1: log file, \$2: worker index
cd ${INOC_SRC_DIR} && . ${INOC_VENV_DIR}/bin/activate
${command_words} > \"\$1\" 2>&1 < /dev/null
status=\$?
echo \"\$status\" > \"\${1%.log}.exit\"
gcloud storage cp --quiet \"\$1\" ${workdir_logs}\"worker-\$2.log\" || true
exit \"\$status\"
INOC_RUN
pidfile=${logdir}/worker-\$worker.pid
if [ -f \"\$pidfile\" ] && kill -0 -- \"-\$(cat \"\$pidfile\")\" 2>/dev/null; then
  if [ ${RESTART} = 1 ]; then
    # SIGTERM to the run's process group: the trainer saves a checkpoint and exits; SIGKILL after ${STOP_TIMEOUT}s.
    group=\"-\$(cat \"\$pidfile\")\"
    kill -TERM -- \"\$group\" 2>/dev/null || true
    for _ in \$(seq ${STOP_TIMEOUT}); do kill -0 -- \"\$group\" 2>/dev/null || break; sleep 1; done
    kill -KILL -- \"\$group\" 2>/dev/null || true
  else
    echo \"worker \$worker: run ${RUN_ID} is still running (pid \$(cat \"\$pidfile\")); pass --restart to replace it\" >&2; exit 3
  fi
fi
rm -f ${logdir}/worker-\$worker.exit
# setsid: the runner leads its own process group, so --restart can stop it with its children.
setsid nohup bash ${logdir}/run.sh ${logdir}/worker-\$worker.log \"\$worker\" > /dev/null 2>&1 < /dev/null &
echo \$! > \"\$pidfile\"
echo \"worker \$worker: started pid \$!, log ${logdir}/worker-\$worker.log\""

tpu_ssh "${NAME}" all "${remote}"
note "run '${RUN_ID}' started on ${NAME}; follow it with: launch/tpu_logs.sh --name ${NAME} --zone ${ZONE} --run-id ${RUN_ID}"
