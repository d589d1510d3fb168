#!/usr/bin/env bash
# The GPU check: on one CUDA GPU, in at most 8 minutes, run the CUDA tests and a ResNet-34 sweep of
# what pin_memory, non_blocking and num_workers do, and write the figures as JSON.
#
#   bash benchmarks/gpu_check.sh              # from the repository root
#
# Stages, each under its own time limit: environment (nvidia-smi, torch) -> install only if torch is
# missing -> `pytest -m gpu` -> the sweep: ResNet-34, batch 256, synthetic CIFAR-10-shaped data,
# loader.pin_memory x loader.non_blocking x loader.num_workers {0,4}, 2 repeats (train.repeat=0,1)
# in adaptive mode: 16 jobs, each in its own process -> its summary table -> a JSON of the figures.
# Then an ImageNet-style loader (README "Tuning an ImageNet-style loader"): a generated JPEG tree
# (pinsweep.input.jpegs, 256 px), ResNet-18 at 224 px, batch 128, 4 workers, pinned,
# data.decoder=torchvision,nvjpeg x loader.device_prefetch=0,2: 4 jobs, its summary in imagefolder/.
# With at least 2 GPUs visible, a multi-rank stage: train.ranks=2 (NCCL, DDP, one GPU per rank),
# loader.num_workers=0,4 per rank, 2 repeats: 4 jobs, its summary and each job's ranks.csv in ranks/;
# with fewer GPUs it says in one line that it skipped the stage.
# The results go to $OUT/gpu-check if OUT is set, else benchmarks/gpu-results/. A failing stage does
# not stop the later ones; the script exits non-zero at the end if any stage failed.
#
# Sizes can be overridden from the environment (a dry run on a CPU uses a tiny model):
#   GPU_CHECK_MODEL=resnet34 GPU_CHECK_TRAIN_SIZE=12800 GPU_CHECK_BUDGET_S=6 GPU_CHECK_CEILING_BUDGET_S=3
#   GPU_CHECK_BATCH=256 GPU_CHECK_WORKERS=0,4 GPU_CHECK_TESTS=1 (0 skips the pytest stage)
set -euo pipefail
cd "$(dirname "$0")/.."

export MODEL=${GPU_CHECK_MODEL:-resnet34}
export TRAIN_SIZE=${GPU_CHECK_TRAIN_SIZE:-12800}  # 50 steps an epoch: adaptive mode cycles epochs, as training does
export BATCH=${GPU_CHECK_BATCH:-256}
export WORKERS=${GPU_CHECK_WORKERS:-0,4}
export BUDGET_S=${GPU_CHECK_BUDGET_S:-5}  # seconds of timed steps per job at most (fewer once its CI is within 2%)
export CEILING_BUDGET_S=${GPU_CHECK_CEILING_BUDGET_S:-2}  # per ceiling, at most
RUN_TESTS=${GPU_CHECK_TESTS:-1}
RESULTS=${OUT:+$OUT/gpu-check}
export RESULTS=${RESULTS:-benchmarks/gpu-results}
export SWEEP="$RESULTS/sweep"
mkdir -p "$RESULTS"
rm -rf "$SWEEP"  # a fixed folder: never resume into an older run's rows

DEADLINE=$((SECONDS + 470))  # 8 minutes, less the grace a killed stage gets
failed=()
stage() {  # stage NAME SECONDS FUNCTION [RESERVE]: run FUNCTION for at most SECONDS, and never past the
  # deadline less RESERVE seconds kept for the stages after it; log it, remember a failure
  local name=$1 limit=$2 function=$3 reserve=${4:-0}
  local left=$((DEADLINE - reserve - SECONDS))
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  echo "=== $name (at most ${limit}s)"
  if [ "$limit" -le 0 ]; then
    echo "=== $name: FAILED (no time left)"
    failed+=("$name")
    return
  fi
  local start=$SECONDS rc=0
  FAILED_STAGES="${failed[*]:-}" timeout --kill-after=10 "$limit" bash -euo pipefail -c "$function" || rc=$?
  if [ "$rc" -eq 0 ]; then
    echo "=== $name: ok in $((SECONDS - start))s"
  else
    echo "=== $name: FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ', time limit')) after $((SECONDS - start))s"
    failed+=("$name")
  fi
}

environment() {
  nvidia-smi || echo "nvidia-smi: not available"
  python -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), "devices", torch.cuda.device_count())'
}

install_if_missing() {
  if ! python -c "import torch" 2>/dev/null; then
    pip install torch==2.14.1 torchvision==0.29.1 -e ".[test]"  # the pins this project is tested with
  elif ! python -c "import torchvision, hydra, pandas, scipy, pytest" 2>/dev/null; then
    pip install -e ".[test]"  # keeps the torch that is there (a CUDA build)
  else
    echo "torch $(python -c 'import torch; print(torch.__version__)') and the project's dependencies are installed"
  fi
}

sweep() {
  python -m pinsweep -m \
    train.repeat=0,1 loader.pin_memory=true,false loader.non_blocking=true,false "loader.num_workers=$WORKERS" \
    data=synthetic "data.train_size=$TRAIN_SIZE" data.test_size=256 \
    "model=$MODEL" "loader.batch_size=$BATCH" \
    train.mode=adaptive "train.budget_s=$BUDGET_S" "train.ceiling_budget_s=$CEILING_BUDGET_S" train.evaluate=false \
    train.timeout_s=60 "hydra.sweep.dir=$SWEEP"
}

imagefolder_sweep() {
  local jpegs=${TMPDIR:-/tmp}/pinsweep-gpu-check-jpegs
  rm -rf "$jpegs" "$RESULTS/imagefolder"
  python -m pinsweep.make_jpegs "$jpegs" --count 2048 --size 256 --classes 10
  python -m pinsweep -m \
    data.decoder=torchvision,nvjpeg loader.device_prefetch=0,2 \
    data=imagefolder "data.root=$jpegs" data.image_size=224 model=resnet18 loader.batch_size=128 \
    loader.num_workers=4 loader.persistent_workers=true loader.pin_memory=true loader.non_blocking=true \
    train.mode=adaptive train.budget_s=4 train.ceiling_budget_s=1 train.evaluate=true \
    train.timeout_s=60 "hydra.sweep.dir=$RESULTS/imagefolder"
}

summary() {
  python -m pinsweep.summarize "$SWEEP"
}

ranks_sweep() {  # train.ranks=2 through torch's elastic agent: NCCL between the two GPUs
  rm -rf "$RESULTS/ranks"
  python -m pinsweep -m \
    train.ranks=2 train.device=cuda loader.num_workers=0,4 train.repeat=0,1 \
    data=synthetic "data.train_size=$TRAIN_SIZE" data.test_size=256 "model=$MODEL" "loader.batch_size=$BATCH" \
    loader.pin_memory=true loader.non_blocking=true train.epochs=2 train.max_steps_per_epoch=30 \
    "train.ceiling_budget_s=$CEILING_BUDGET_S" train.evaluate=false train.timeout_s=60 "hydra.sweep.dir=$RESULTS/ranks"
  cat "$RESULTS"/ranks/*/ranks.csv
}

write_json() {
  python - <<'EOF'
"""benchmarks/gpu-results/gpu_check.json: the environment, and per config its images/s, breakdown,
ceilings and verdict, from the sweep's summary.csv, effects.csv and job rows."""
import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from pinsweep.record import job_dirs, read_row

sweep = Path(os.environ["SWEEP"])
summary = pd.read_csv(sweep / "summary.csv")
effects = pd.read_csv(sweep / "effects.csv")
rows = [row for row in map(read_row, job_dirs(sweep)) if row is not None]
axes = ["loader.pin_memory", "loader.non_blocking", "loader.num_workers"]


def clean(value):
    """JSON has no NaN: empty cells become null."""
    if isinstance(value, float) and value != value:
        return None
    return value.item() if hasattr(value, "item") else value


def smi():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except OSError:
        return ""


first = rows[0] if rows else {}
configs = []
for _, config in summary.iterrows():
    configs.append({
        **{axis.split(".")[1]: clean(config[axis]) for axis in axes if axis in config},
        "jobs_ok": clean(config["n"]),
        "images_per_s": {key: clean(config[f"ips_{key}"]) for key in ("median", "geomean", "ci_low", "ci_high", "min", "max")},
        "breakdown": {part: clean(config[f"{part}_frac"]) for part in ("data_wait", "host_wait", "copy", "compute")},
        "compute_ceiling_ips": clean(config["compute_ceiling_ips"]),
        "loader_ceiling_ips": clean(config["loader_ceiling_ips"]),
        "efficiency": clean(config["efficiency"]),
        "verdict": clean(config["verdict"]),
        "speedup": {key: clean(config[key]) for key in ("speedup", "speedup_ci_low", "speedup_ci_high", "significant")},
    })
jobs = [
    {key: clean(row.get(key)) for key in [*axes, "train.repeat", "status", "error", "images_per_s", "steps_timed",
                                          "step_ci_rel", "data_wait_s", "host_wait_s", "copy_s", "compute_s", "steady_s",
                                          "compute_ceiling_ips", "compute_ceiling_ci_rel", "loader_ceiling_ips",
                                          "loader_ceiling_ci_rel", "pin_memory_active", "device"]}
    for row in rows
]
result = {
    "utc_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "failed_stages": os.environ["FAILED_STAGES"].split(),
    "environment": {"nvidia_smi": smi(), **{key: clean(value) for key, value in first.items() if key.startswith("env.")}},
    "protocol": {key: clean(first.get(key)) for key in ["model.name", "loader.batch_size", "data.name", "data.train_size",
                                                        "train.mode", "train.target_ci", "train.budget_s",
                                                        "train.ceiling_target_ci", "train.ceiling_budget_s"]},
    "configs": configs,
    "effects": [{key: clean(value) for key, value in effect.items()} for _, effect in effects.iterrows()],
    "jobs": jobs,
}
path = Path(os.environ["RESULTS"]) / "gpu_check.json"
path.write_text(json.dumps(result, indent=2) + "\n")
print(f"wrote {path}: {len(configs)} configs, {sum(job['status'] == 'ok' for job in jobs)} of {len(jobs)} jobs ok")
EOF
}

export -f environment install_if_missing sweep imagefolder_sweep summary write_json ranks_sweep
stage environment 20 environment
stage install 240 install_if_missing
# GPUs visible, counted by NVML (no CUDA context in this shell's python)
GPUS=$(PYTORCH_NVML_BASED_CUDA_CHECK=1 python -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)
RANKS_S=0
if [ "$GPUS" -ge 2 ]; then RANKS_S=90; fi  # time kept for the multi-rank stage where it runs
if [ "$RUN_TESTS" = 1 ]; then
  stage "pytest -m gpu" 120 "python -m pytest -m gpu -q -p no:cacheprovider -n 0" $((300 + RANKS_S))
fi
stage sweep 400 sweep $((170 + RANKS_S))  # the reserve keeps 2 minutes for the imagefolder stage
stage summary 30 summary $((140 + RANKS_S))
stage json 20 write_json $((120 + RANKS_S))
stage imagefolder 120 imagefolder_sweep "$RANKS_S"
if [ "$GPUS" -ge 2 ]; then
  stage "ranks (2 GPUs, NCCL)" "$RANKS_S" ranks_sweep
else
  echo "=== ranks (2 GPUs, NCCL): skipped, $GPUS GPU(s) visible and the multi-rank stage needs at least 2"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu check: failed stages: ${failed[*]}"
  exit 1
fi
echo "gpu check: all stages ok; results in $RESULTS"
