#!/usr/bin/env bash
# docs/results.md's sweep on another machine: the device machine's CPU cores (a different processor and torch
# build), every vanilla model taught there from nothing, so the comparison with docs/results.md's printed spread is
# the cross-machine check issue 11 asks for. Writes $OUT/sweep (each run's metrics.json; resumable) and $OUT/docs
# (results.md, frontier.md, the PNGs). The device tool's call: command `bash bench/device_frontier.sh`, carry
# [".whl"], timeout about 560 s; JOBS (default: every core) single-thread workers, GRID (default full), EXTRA (more
# arguments for unlearn.frontier; the CPU dry run here: GRID=fast EXTRA="--seeds 0 --base debug=fast").
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/frontier_out}
mkdir -p "$OUT"
. bench/device_env.sh "$OUT/install.log"
export CUDA_VISIBLE_DEVICES= WANDB_MODE=disabled HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
(lscpu | grep -E "Model name|^CPU\(s\)"; $PY -c "import torch, transformers; print('torch', torch.__version__, '| transformers', transformers.__version__)") \
  > "$OUT/machine.txt" 2>&1
JOBS=${JOBS:-$(env -u OMP_NUM_THREADS nproc)}
timeout "${LIMIT:-520}" $PY -m unlearn.frontier --grid "${GRID:-full}" --out "$OUT/sweep" --cache /tmp/frontier_cache \
  --jobs "$JOBS" --docs "$OUT/docs" ${EXTRA:-} > "$OUT/sweep.log" 2>&1
echo "sweep rc=$?" >> "$OUT/machine.txt"
# a sweep stopped by the limit still reports the runs it finished
[ -f "$OUT/docs/results.md" ] || $PY -m unlearn.frontier --out "$OUT/sweep" --report-only --docs "$OUT/docs" >> "$OUT/sweep.log" 2>&1
cat "$OUT/machine.txt"; tail -n 5 "$OUT/sweep.log"
