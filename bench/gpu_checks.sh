#!/usr/bin/env bash
# The checks a lent GPU runs, in one call (the device tool's machine: one GPU, its own python3 and packages):
#   1. bench.train_step_memory (a full-weight step's peak memory at LLaVA-1.5-7B shape: bf16 weights, float32 weights
#      with unfused and fused AdamW, LoRA, KL's reference in float32 and in bfloat16) alone on the GPU, then bench.gpu_scale and bench.eval_memory
#      at that shape in bf16;
#   2. train.py on the GPU paths the CPU suite cannot reach, side by side: trainer=gpu (bf16-mixed; with a bfloat16 KL
#      reference and a float16 evaluation too), trainer=ddp and
#      trainer=fsdp (bf16-mixed) on the embedded model, the Qwen2-VL (bf16 weights) and LLaVA (float32, LoRA) official presets on
#      local stand-ins (bench/gpu_fixtures.py), MANU's official selection; and the whole default run (teaching
#      included) under trainer=gpu, started beside the benchmarks.
# Writes $OUT/summary.txt (each step's exit status and wall time, then the runs whose steps were lost),
# $OUT/report/results.md (unlearn.report's table of the train.py runs) and $OUT/logs.tgz (logs, run directories without
# weights). On one GPU, FSDP runs unsharded (torch switches FULL_SHARD to NO_SHARD at world size 1): the fsdp
# runs here check the wrapping, precision and unwrapping on CUDA, not the sharding across GPUs (trainer=fsdp_sim
# does that on CPU). Packages the machine lacks travel as wheels in .whl (`bash bench/gpu_wheels.sh` writes them here;
# installed there with --no-deps into /tmp/site). The device tool's call: command `bash bench/gpu_checks.sh`,
# carry [".whl", ".cache"] (.cache: the cached embedded vanilla model the method runs start from);
# BENCH=0 TRAIN_MEMORY=0 DEFAULT_RUN=0 reruns the train.py checks alone; ONLY='ga_fsdp|kl_fsdp' (a regex of run names) runs those.
# On this CPU machine the same script runs small (T_GPU=cpu T_DDP=cpu T_FSDP=cpu SHAPE=tiny DEV=cpu) to check
# that every command composes and runs before device time is spent.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_out}
L=/tmp/gpu_logs R=/tmp/gpu_runs F=/tmp/gpu_fixtures
rm -rf "$L" "$R" "$F" /tmp/gpu_cache_default  # the stand-ins too: never an older or half-built set
mkdir -p "$OUT" "$L" "$R"
PY=${PY:-python3}
T_GPU=${T_GPU:-gpu} T_DDP=${T_DDP:-ddp} T_FSDP=${T_FSDP:-fsdp} SHAPE=${SHAPE:-7b} DEV=${DEV:-cuda}
V=${VANILLA:-.cache/vanilla/tiny_llava-f109f560f1c1}  # the cached embedded vanilla model (carried)
export OMP_NUM_THREADS=1 WANDB_MODE=disabled PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
S=$OUT/summary.txt
: > "$S"
ms() { date +%s%N | cut -c1-13; }
step() {  # name timeout command...: one line in the summary, the output in $L/name.log
  local name=$1 limit=$2 start rc
  shift 2
  start=$(ms)
  timeout "$limit" "$@" > "$L/$name.log" 2>&1
  rc=$?
  printf '%-16s rc=%-4s %7.1f s\n' "$name" "$rc" "$(( $(ms) - start ))e-3" >> "$S"
}

. bench/device_env.sh "$L/install.log"
probe='import torch, transformers, huggingface_hub, datasets, hydra, peft, lightning
from transformers import LlavaForConditionalGeneration, Qwen2VLForConditionalGeneration
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0),
      "| transformers", transformers.__version__, "| hub", huggingface_hub.__version__, "| datasets", datasets.__version__,
      "| peft", peft.__version__, "| lightning", lightning.__version__)'
if ! $PY -c "$probe" >> "$S" 2>> "$L/install.log"; then  # the carried transformers fails here: the machine's own
  echo "carried transformers did not import; using the machine's" >> "$S"
  rm -rf /tmp/site/transformers* /tmp/site/huggingface_hub* /tmp/site/kernels*
  $PY -c "$probe" >> "$S" 2>> "$L/install.log"
fi
(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; nproc) >> "$S" 2>&1

step fixtures 120 $PY -m bench.gpu_fixtures "$F"  # the stand-ins (also under ONLY: the official presets read them)

# what one GPU holds of a full-weight step at 7B shape (bf16 weights, which lose their steps; float32 under bf16
# autocast, unfused and fused AdamW; LoRA over float32; KL's reference): alone on the GPU, before anything else starts
[ "${TRAIN_MEMORY:-1}" = 1 ] && [ -z "${ONLY:-}" ] && step train_memory 400 $PY -m bench.train_step_memory --shape $SHAPE --device $DEV
# the whole default run, teaching included, beside the benchmarks (its GPU load is small kernels)
[ "${DEFAULT_RUN:-1}" = 1 ] && UNLEARN_CACHE=/tmp/gpu_cache_default step default_gpu 420 $PY train.py trainer=$T_GPU logger=none \
  hydra.run.dir=$R/default_gpu &

# MMUnlearner's half-precision Fisher divided as their CPU divides (unlearn/mmunlearner/saliency.py half_fisher_add),
# float16 and bfloat16, batch counts past the half dtype's exact integers included: seconds
[ -z "${ONLY:-}" ] && step half_fisher 90 sh -c "$PY -m bench.half_fisher_check --device $DEV && $PY -m bench.half_fisher_check --device $DEV --dtype bfloat16"
if [ "${BENCH:-1}" = 1 ]; then
  # whether a padded batch moves greedy replies in float16 (eval.py generates one item at a time; the official
  # presets evaluate in float16 at eval.batch_size 64): the random tiny model (near-ties: an upper bound), then
  # the taught one
  step batch_invariance 120 sh -c "$PY -m bench.batch_invariance --device $DEV --dtypes float32 bfloat16 float16 &&
    $PY -m bench.batch_invariance --device $DEV --dtypes float32 bfloat16 float16 --model $V"
  step gpu_scale 150 $PY -m bench.gpu_scale --shape $SHAPE --device $DEV --dtype bfloat16
  step eval_memory 150 $PY -m bench.eval_memory --shape $SHAPE --device $DEV --dtype bfloat16
fi

run() {  # name timeout overrides...: train.py into $R/name
  local name=$1 limit=$2
  shift 2
  [[ -n ${ONLY:-} && ! $name =~ ^(${ONLY})$ ]] && return
  MASTER_PORT=$((29500 + RANDOM % 1000)) step "$name" "$limit" $PY train.py logger=none hydra.run.dir=$R/$name "$@"
}
tiny="model.path=$V"
bench_data="data.path=$F/mllmu data.forget_split=forget_15 eval.max_people=2 eval.max_new_tokens=4"
run ga_gpu 200 trainer=$T_GPU method=ga $tiny &
run npo_gpu 200 trainer=$T_GPU method=npo $tiny &
run mmunlearner_gpu 200 trainer=$T_GPU method=mmunlearner $tiny &
run graddiff_ddp 200 trainer=$T_DDP method=grad_diff $tiny &
run ga_fsdp 200 trainer=$T_FSDP method=ga $tiny &
run kl_fsdp 200 trainer=$T_FSDP method=kl $tiny &
run kl_gpu 200 trainer=$T_GPU method=kl $tiny &
# cast copies under bf16-mixed (since 2026-12-04): KL's reference in bfloat16, the evaluation in float16, each
# computing out of the autocast
run kl_gpu_bf16ref 200 trainer=$T_GPU method=kl method.reference_dtype=bfloat16 $tiny &
run ga_gpu_eval16 200 trainer=$T_GPU method=ga eval.dtype=float16 $tiny &
# the control for the lost-steps check: weights cast to bfloat16, where GA's steps are rounded away (it warns)
run ga_fsdp_bf16true 200 trainer=$T_FSDP trainer.precision=bf16-true method=ga $tiny &
run qwen2vl_official 200 experiment=mmunlearner_qwen2_vl_official trainer=$T_GPU $bench_data \
  model.path=$F/qwen2_vl model.portrait_size=32 &
run qwen2vl_fsdp 200 trainer=$T_FSDP model=qwen2_vl_7b data=mllmu_bench method=grad_diff $bench_data \
  model.path=$F/qwen2_vl model.portrait_size=32 &
# the 7-8B default's float32 weights under FSDP with the fused AdamW its config suggests (no lost steps, no warning)
run llava_fsdp_fused 200 trainer=$T_FSDP model=llava_1_5_7b data=mllmu_bench method=ga $bench_data model.path=$F/llava \
  +method.optimizer.fused=true &
run llava_official 200 experiment=mmunlearner_official trainer=$T_GPU $bench_data model.path=$F/llava &
run manu_official 200 experiment=manu_official trainer=$T_GPU $bench_data model.path=$F/llava \
  manu.official.layers.language=null manu.official.layers.vision=null &
wait

tar czf "$OUT/logs.tgz" --exclude='*.safetensors' --exclude='*.ckpt' --exclude='*.pt' --exclude='*.bin' \
  -C /tmp gpu_logs gpu_runs 2>/dev/null
# the runs' before/after table (unlearn.report's, into $OUT/report/results.md), and which runs could not take their
# steps (callbacks/lost_updates.py's warning)
$PY -m unlearn.report "$R"/* --out "$OUT/report" > "$L/report.log" 2>&1
grep -H "stay where they are" "$L"/*.log | cut -c1-220 >> "$S"
cat "$S"
for f in half_fisher batch_invariance gpu_scale eval_memory train_memory; do [ -f "$L/$f.log" ] && { echo "== $f"; tail -n 8 "$L/$f.log"; }; done
for f in "$L"/*.log; do
  grep -q -i -E "^(Traceback|Error)|Error:" "$f" && { echo "== $(basename "$f") (last lines)"; tail -n 6 "$f"; }
done
exit 0
