#!/usr/bin/env bash
# Training and decoding throughput of a ~1B model in bf16 on whatever accelerator JAX sees (GPU / TPU).
#
#   bash bench/accelerator.sh                       # llama3.2-1b random init, bf16; tables to stdout and
#                                                   # bench_results/accelerator-<time>.md
#   PRESET=tiny BATCH=2 SEQ_LEN=32 STEPS=1 DECODE_BATCHES=1,2 NEW_TOKENS=4 PROMPT_LEN=8 \
#     MATMUL_SIZE=256 bash bench/accelerator.sh     # CPU smoke run (what the tests do)
#
# Random init is enough for throughput: no checkpoint, no network, no torch. MFU is quoted against a
# jitted bf16 MATMUL_SIZE^2 matmul measured first in the same invocation (8192 by default, large enough
# to approach an accelerator's peak); compare with the chip's data-sheet peak in the notes.
set -euo pipefail

PRESET="${PRESET:-llama3.2-1b}"
BATCH="${BATCH:-8}"
SEQ_LEN="${SEQ_LEN:-1024}"
STEPS="${STEPS:-5}"
MODES="${MODES:-full,lora}"
REMAT="${REMAT:-}"
LOSS_CHUNK="${LOSS_CHUNK:-256}"
DECODE_BATCHES="${DECODE_BATCHES:-1,8,32}"
PROMPT_LEN="${PROMPT_LEN:-64}"
NEW_TOKENS="${NEW_TOKENS:-128}"
MATMUL_SIZE="${MATMUL_SIZE:-8192}"
RESULTS_DIR="${RESULTS_DIR:-bench_results}"

cd "$(dirname "$0")/.."
mkdir -p "$RESULTS_DIR"
report="$RESULTS_DIR/accelerator-$(date -u +%Y%m%dT%H%M%SZ).md"
python="${PYTHON:-python}"

{
  echo "# accelerator benchmark: $PRESET (random init), bfloat16 compute, fp32 master weights"
  echo
  "$python" -c "import jax; print('devices:', jax.devices())"
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true
  echo
  echo "## training ($BATCH x $SEQ_LEN)"
  echo
  "$python" bench/train.py --model= --preset="$PRESET" --skip_hf --dtypes=bfloat16 --modes="$MODES" --repeats=1 --allow_noisy \
    --batch="$BATCH" --seq_len="$SEQ_LEN" --steps="$STEPS" --remat="$REMAT" --loss_chunk="$LOSS_CHUNK" \
    --matmul_size="$MATMUL_SIZE"
  echo
  echo "## decoding (greedy, prompt $PROMPT_LEN, $NEW_TOKENS new tokens)"
  echo
  "$python" bench/decode.py --model= --preset="$PRESET" --skip_hf --dtype=bfloat16 --batches="$DECODE_BATCHES" --processes=1 --allow_noisy \
    --prompt_len="$PROMPT_LEN" --new_tokens="$NEW_TOKENS"
} 2>&1 | tee "$report"
echo "written: $report"
