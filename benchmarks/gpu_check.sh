#!/usr/bin/env bash
# shellcheck disable=SC2317  # the stage functions run through `bash -c NAME` (export -f), unseen by shellcheck
# The GPU check: one prepared call on the lent CUDA machine, which reaches no package registry and brings
# its own python3 and torch. In at most 400 s (a second try fits in 15 device-minutes) it runs the CUDA
# tests and a ResNet-34 sweep of what pin_memory, non_blocking and num_workers do, a JPEG loader sweep,
# and the multi-rank stage where 2 GPUs are visible, and writes every figure into ONE JSON.
#
#   python3 benchmarks/fetch_wheels.py         # HERE, first: the wheels the image lacks into benchmarks/wheels/
#   bash benchmarks/gpu_check.sh               # THERE (benchmarks/README.md has the device call and its carry)
#
# Stages, each under `timeout` and never past the deadline less what the later stages keep:
#   environment   nvidia-smi, python3, torch, CUDA, GPUs visible (NVML)
#   install       benchmarks/wheels/*.whl (hydra-core, omegaconf, antlr4) with pip --no-index --no-deps
#                 --target into a scratch folder on PYTHONPATH: nothing from a network, the image's torch
#                 untouched; then every requirement of pyproject.toml (and pytest's plugins) checked there
#   pytest -m gpu the CUDA tests, in one process; junit XML kept
#   sweep         ResNet-34, batch 256, synthetic CIFAR-10-shaped data, loader.pin_memory x non_blocking x
#                 num_workers {0,4}, 2 repeats (train.repeat=0,1), adaptive mode: 16 jobs, each in its own
#                 process; the sweep prints and writes its summary, effects, plots and report
#   summary       only if the sweep left no summary.csv (killed, not stopped): the summary of its rows
#   imagefolder   a generated JPEG tree (256 px), ResNet-18 at 224 px, batch 128, 4 workers, pinned,
#                 data.decoder=torchvision,nvjpeg x loader.device_prefetch=0,2: 4 jobs (nvjpeg left out
#                 without CUDA)
#   ranks         with 2+ GPUs: train.ranks=2 (NCCL, DDP, a GPU per rank) x num_workers {0,4} x 2 repeats:
#                 4 jobs; with fewer, one line says it is skipped (GPU_CHECK_RANKS_DEVICE=cpu runs it on the
#                 CPU with gloo, for a dry run of its plumbing)
#   results       gpu-check.json (every stage's outcome and figures), the sweep folders as one tar.gz
# pinsweep itself runs from this working tree (it travels with the call), not from a wheel.
#
# What comes back from the device machine is at most 8 files, 2 folders down: the sweep folders live in a
# scratch folder, and $OUT (or benchmarks/gpu-results/ without OUT) receives exactly three files:
#   gpu-check.json   every figure: stages, environment, tests, each sweep's configs, effects and job rows
#   gpu-check.log    this script's whole output
#   gpu-check-folders.tar.gz   the three sweep folders (rows, summary/effects CSVs, plots, reports, ranks.csv)
# A failing stage does not stop the later ones; the script exits 1 at the end if any stage failed.
#
# Sizes (environment; the defaults are the GPU's; a CPU dry run uses a tiny model, see benchmarks/README.md):
#   GPU_CHECK_MODEL=resnet34 GPU_CHECK_TRAIN_SIZE=12800 GPU_CHECK_BATCH=256 GPU_CHECK_WORKERS=0,4
#   GPU_CHECK_BUDGET_S=4 GPU_CHECK_CEILING_BUDGET_S=1.5 (per job: timed seconds at most, per ceiling at most)
#   GPU_CHECK_JPEGS=2048 GPU_CHECK_JPEG_PX=256 GPU_CHECK_IMAGE_SIZE=224 GPU_CHECK_JPEG_MODEL=resnet18
#   GPU_CHECK_JPEG_BATCH=128 GPU_CHECK_JPEG_WORKERS=4 GPU_CHECK_TESTS=1 (0 skips pytest)
#   GPU_CHECK_RANKS_DEVICE=cuda GPU_CHECK_RANKS_STEPS=30 (steps an epoch, 2 epochs) GPU_CHECK_RANKS_S=90 (its stage)
#   GPU_CHECK_PYTHON (default: python3, else python) GPU_CHECK_WHEELS=benchmarks/wheels
#   GPU_CHECK_WORK (default: $TMPDIR/pinsweep-gpu-check, scratch) GPU_CHECK_DEADLINE_S=400
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

PY=${GPU_CHECK_PYTHON:-$(command -v python3 || command -v python || echo python3)}
export PY
export MODEL=${GPU_CHECK_MODEL:-resnet34}
export TRAIN_SIZE=${GPU_CHECK_TRAIN_SIZE:-12800}  # 50 steps an epoch: adaptive mode cycles epochs, as training does
export BATCH=${GPU_CHECK_BATCH:-256}
export WORKERS=${GPU_CHECK_WORKERS:-0,4}
export BUDGET_S=${GPU_CHECK_BUDGET_S:-4}  # seconds of timed steps per job at most (fewer once its CI is within 2%)
export CEILING_BUDGET_S=${GPU_CHECK_CEILING_BUDGET_S:-1.5}  # per ceiling, at most
export JPEGS=${GPU_CHECK_JPEGS:-2048} JPEG_PX=${GPU_CHECK_JPEG_PX:-256} IMAGE_SIZE=${GPU_CHECK_IMAGE_SIZE:-224}
export JPEG_MODEL=${GPU_CHECK_JPEG_MODEL:-resnet18} JPEG_BATCH=${GPU_CHECK_JPEG_BATCH:-128}
export JPEG_WORKERS=${GPU_CHECK_JPEG_WORKERS:-4}
export RANKS_DEVICE=${GPU_CHECK_RANKS_DEVICE:-cuda} RANKS_STEPS=${GPU_CHECK_RANKS_STEPS:-30}
RANKS_S=${GPU_CHECK_RANKS_S:-90}
RUN_TESTS=${GPU_CHECK_TESTS:-1}
export WHEELS=${GPU_CHECK_WHEELS:-$REPO/benchmarks/wheels}
export WORK=${GPU_CHECK_WORK:-${TMPDIR:-/tmp}/pinsweep-gpu-check}
RESULTS=${OUT:-$REPO/benchmarks/gpu-results}
export RESULTS
export SITE="$WORK/site" SWEEP="$WORK/sweep" STAGES="$WORK/stages.tsv"
# this tree (pinsweep, hydra_plugins, conf), then the carried wheels; every job's process inherits it
export PYTHONPATH="$REPO:$SITE${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1
DEADLINE=$((SECONDS + ${GPU_CHECK_DEADLINE_S:-400}))

stage() {  # stage NAME SECONDS FUNCTION [RESERVE]: run FUNCTION for at most SECONDS, and never past the
  # deadline less RESERVE seconds kept for the stages after it; log it, remember a failure
  local name=$1 limit=$2 function=$3 reserve=${4:-0}
  local left=$((DEADLINE - reserve - SECONDS))
  if [ "$left" -lt "$limit" ]; then limit=$left; fi
  echo "=== $name (at most ${limit}s, $((SECONDS))s in)"
  if [ "$limit" -le 0 ]; then
    echo "=== $name: FAILED (no time left)"
    printf '%s\tfailed\t0\t0\tno time left\n' "$name" >>"$STAGES"
    failed+=("$name")
    return
  fi
  local start=$SECONDS rc=0
  # timeout signals the stage's whole process group; the trap keeps its bash waiting until the command it runs
  # has finished on SIGTERM (a sweep records the job it stopped and writes its summary), so no stage overlaps
  timeout --kill-after=10 "$limit" bash -euo pipefail -c "trap : TERM; $function" || rc=$?
  local took=$((SECONDS - start))
  if [ "$rc" -eq 0 ]; then
    echo "=== $name: ok in ${took}s"
    printf '%s\tok\t%s\t%s\t\n' "$name" "$took" "$limit" >>"$STAGES"
  else
    local why="exit $rc"
    if [ "$rc" -eq 124 ]; then why="$why, time limit"; fi
    echo "=== $name: FAILED ($why) after ${took}s"
    printf '%s\tfailed\t%s\t%s\t%s\n' "$name" "$took" "$limit" "$why" >>"$STAGES"
    failed+=("$name")
  fi
}

skip() {  # skip NAME REASON: one line in the log and the JSON
  echo "=== $1: skipped, $2"
  printf '%s\tskipped\t0\t0\t%s\n' "$1" "$2" >>"$STAGES"
}

environment() {
  nvidia-smi || echo "nvidia-smi: not available"
  uname -a
  echo "python: $PY ($("$PY" --version 2>&1))"
  PYTORCH_NVML_BASED_CUDA_CHECK=1 "$PY" - <<'EOF'
import os, torch, torchvision
gpus = torch.cuda.device_count()  # counted by NVML: no CUDA context in this process
info = {"torch": torch.__version__, "torchvision": torchvision.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "gpus": gpus, "cpus": os.cpu_count()}
print(" ".join(f"{key} {value}" for key, value in info.items()))
with open(os.path.join(os.environ["WORK"], "gpus"), "w") as file:
    file.write(f"{gpus}\n")
EOF
}

install_wheels() {  # the carried wheels only: --no-index, --no-deps, into a folder of our own (the image untouched)
  shopt -s nullglob
  local wheels=("$WHEELS"/*.whl)
  if [ ${#wheels[@]} -eq 0 ]; then
    echo "no wheels in $WHEELS: run python3 benchmarks/fetch_wheels.py here and carry benchmarks/wheels"
  else
    printf '  %s\n' "${wheels[@]##*/}"
    if "$PY" -m pip --version >/dev/null 2>&1; then
      "$PY" -m pip install -q --no-index --no-deps --no-cache-dir --upgrade --target "$SITE" "${wheels[@]}"
    else  # they are pure Python (fetch_wheels.py refuses others): a wheel unzipped is a wheel installed
      echo "no pip for $PY: unzipping the wheels into $SITE"
      "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$SITE" "${wheels[@]}"
    fi
  fi
  # every requirement of pinsweep, and pytest's plugins, met from the image or the carried folder
  "$PY" - <<'EOF'
import importlib.metadata, os, re, sys

try:
    from packaging.requirements import Requirement
except ImportError:  # pip's own copy
    from pip._vendor.packaging.requirements import Requirement

text = open("pyproject.toml").read()
dependencies = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M).group(1)
wanted = [Requirement(r) for r in re.findall(r'"([^"]+)"', dependencies)]
wanted += [Requirement(name) for name in ("pytest", "pytest-timeout", "pytest-xdist")]
missing = []
for requirement in wanted:
    try:
        dist = importlib.metadata.distribution(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        missing.append(f"{requirement} (not installed)")
        print(f"  {requirement.name:<16} {'MISSING':<12} wanted {requirement.specifier}")
        continue
    where = "carried" if os.path.realpath(str(dist.locate_file(""))).startswith(os.path.realpath(os.environ["SITE"])) else "image"
    ok = requirement.specifier.contains(dist.version, prereleases=True)
    if not ok:
        missing.append(f"{requirement} (found {dist.version})")
    print(f"  {requirement.name:<16} {dist.version:<12} {where:<8} {'' if ok else 'WANTED ' + str(requirement.specifier)}")
if missing:
    sys.exit("missing here: " + "; ".join(missing) + ": add them with benchmarks/fetch_wheels.py and carry them")
import hydra, omegaconf, pinsweep
print(f"hydra {hydra.__version__} from {os.path.dirname(hydra.__file__)}; pinsweep {pinsweep.__version__} from {os.path.dirname(pinsweep.__file__)}")
EOF
}

gpu_tests() {
  "$PY" -m pytest -m gpu -q -p no:cacheprovider -n 0 --junitxml="$WORK/pytest.xml"
}

sweep() {
  "$PY" -m pinsweep -m \
    train.repeat=0,1 loader.pin_memory=true,false loader.non_blocking=true,false "loader.num_workers=$WORKERS" \
    data=synthetic "data.train_size=$TRAIN_SIZE" data.test_size=256 \
    "model=$MODEL" "loader.batch_size=$BATCH" \
    train.mode=adaptive "train.budget_s=$BUDGET_S" "train.ceiling_budget_s=$CEILING_BUDGET_S" train.evaluate=false \
    train.timeout_s=60 "hydra.sweep.dir=$SWEEP"
}

summary() {  # only when the sweep left no summary (killed before it wrote one): from the rows it has
  "$PY" -m pinsweep.summarize "$SWEEP"
}

imagefolder_sweep() {
  local jpegs="$WORK/jpegs" decoders=torchvision,nvjpeg
  if [ "$(cat "$WORK/gpus" 2>/dev/null || echo 0)" -lt 1 ]; then
    decoders=torchvision
    echo "no CUDA GPU: data.decoder=nvjpeg left out (device_prefetch is recorded inactive)"
  fi
  "$PY" -m pinsweep.make_jpegs "$jpegs" --count "$JPEGS" --size "$JPEG_PX" --classes 10
  "$PY" -m pinsweep -m \
    "data.decoder=$decoders" loader.device_prefetch=0,2 \
    data=imagefolder "data.root=$jpegs" "data.image_size=$IMAGE_SIZE" "model=$JPEG_MODEL" \
    "loader.batch_size=$JPEG_BATCH" "loader.num_workers=$JPEG_WORKERS" loader.persistent_workers=true \
    loader.pin_memory=true loader.non_blocking=true \
    train.mode=adaptive train.budget_s=3 train.ceiling_budget_s=1 train.evaluate=true \
    train.timeout_s=60 "hydra.sweep.dir=$WORK/imagefolder"
}

ranks_sweep() {  # train.ranks=2 through torch's elastic agent: NCCL between the two GPUs (gloo on the CPU)
  "$PY" -m pinsweep -m \
    train.ranks=2 "train.device=$RANKS_DEVICE" "loader.num_workers=$WORKERS" train.repeat=0,1 \
    data=synthetic "data.train_size=$TRAIN_SIZE" data.test_size=256 "model=$MODEL" "loader.batch_size=$BATCH" \
    loader.pin_memory=true loader.non_blocking=true train.epochs=2 "train.max_steps_per_epoch=$RANKS_STEPS" \
    "train.ceiling_budget_s=$CEILING_BUDGET_S" train.evaluate=false train.timeout_s=60 "hydra.sweep.dir=$WORK/ranks"
  cat "$WORK"/ranks/*/ranks.csv
}

write_results() {  # stdlib only: it runs even when the install failed
  "$PY" - <<'EOF'
"""gpu-check.json: every stage's outcome and every figure, from the sweep folders' CSVs (stdlib only)."""
import csv
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

work = Path(os.environ["WORK"])


def cell(text):
    """A CSV cell as JSON: numbers as numbers, True/False as booleans, empty and NaN as null."""
    if text in ("", "nan", "NaN", "None"):
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            value = kind(text)
        except ValueError:
            continue
        return None if value != value or value in (float("inf"), float("-inf")) else value
    return text


def table(path):
    with open(path, newline="") as file:
        return [{key: cell(value) for key, value in row.items()} for row in csv.DictReader(file)]


def sweep(folder, extra=()):
    """A sweep folder's summary and effects tables and every job's row (its env.* columns once, apart)."""
    folder = work / folder
    if not folder.is_dir():
        return {"ran": False}
    out = {"ran": True}
    for name in ("summary", "effects"):
        path = folder / f"{name}.csv"
        out[name] = table(path) if path.exists() else None
    jobs, environment = [], {}
    for path in sorted(folder.glob("*/row.csv"), key=lambda p: (len(p.parent.name), p.parent.name)):
        try:
            row = table(path)[0]
        except Exception as error:  # a damaged row: say so, keep the rest
            jobs.append({"job": path.parent.name, "error": f"unreadable row: {error}"})
            continue
        environment = environment or {k: v for k, v in row.items() if k.startswith("env.")}
        job = {"job": path.parent.name, **{k: v for k, v in row.items() if not k.startswith("env.")}}
        for name in extra:
            if (path.parent / name).exists():
                job[name] = table(path.parent / name)
        jobs.append(job)
    out["jobs"] = jobs
    out["jobs_ok"] = sum(job.get("status") == "ok" for job in jobs)
    out["environment"] = environment
    return out


def tests():
    path = work / "pytest.xml"
    if not path.exists():
        return None
    suite = ET.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    cases = []
    for case in suite.iter("testcase"):
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        detail = next((child.get("message", "") for child in case if child.tag in ("failure", "error", "skipped")), "")
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "outcome": outcome,
                      "seconds": float(case.get("time", 0)), "message": detail[:300]})
    count = {kind: sum(c["outcome"] == kind for c in cases) for kind in ("passed", "failure", "error", "skipped")}
    return {"seconds": float(suite.get("time", 0)), **count, "cases": cases}


def smi():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


stages = []
if (work / "stages.tsv").exists():
    for line in (work / "stages.tsv").read_text().splitlines():
        name, status, seconds, limit, note = (line.split("\t") + [""] * 5)[:5]
        stages.append({"stage": name, "status": status, "seconds": int(seconds), "limit_s": int(limit), "note": note})
main = sweep("sweep")
result = {
    "utc_time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    "failed_stages": [s["stage"] for s in stages if s["status"] == "failed"],
    "skipped_stages": {s["stage"]: s["note"] for s in stages if s["status"] == "skipped"},
    "stages": stages,
    "environment": {"nvidia_smi": smi(), "python": sys.version.split()[0], "interpreter": sys.executable,
                    "gpus_visible": int((work / "gpus").read_text()) if (work / "gpus").exists() else None,
                    **main.get("environment", {})},
    "sizes": {key: os.environ[key] for key in ("MODEL", "TRAIN_SIZE", "BATCH", "WORKERS", "BUDGET_S",
                                               "CEILING_BUDGET_S", "JPEGS", "JPEG_PX", "IMAGE_SIZE", "JPEG_MODEL",
                                               "JPEG_BATCH", "JPEG_WORKERS")},
    "tests": tests(),
    "sweep": main,
    "imagefolder": sweep("imagefolder"),
    "ranks": sweep("ranks", extra=("ranks.csv",)),
}
for part in ("sweep", "imagefolder", "ranks"):
    result[part].pop("environment", None)
    skipped = result["skipped_stages"].get(part)
    if skipped:
        result[part]["skipped"] = skipped
path = Path(os.environ["RESULTS"]) / "gpu-check.json"
path.write_text(json.dumps(result, indent=1) + "\n")
done = [f"{part} skipped" if "skipped" in result[part] else
        f"{part} {result[part].get('jobs_ok', 0)} of {len(result[part].get('jobs', []))} jobs ok"
        for part in ("sweep", "imagefolder", "ranks")]
print(f"wrote {path} ({path.stat().st_size // 1024} KiB): " + "; ".join(done))
EOF
  local folders=()
  for folder in sweep imagefolder ranks pytest.xml; do
    if [ -e "$WORK/$folder" ]; then folders+=("$folder"); fi
  done
  if [ ${#folders[@]} -gt 0 ]; then
    tar -czf "$RESULTS/gpu-check-folders.tar.gz" -C "$WORK" "${folders[@]}"
    if [ "$(stat -c %s "$RESULTS/gpu-check-folders.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then  # 16 MiB a file back
      tar -czf "$RESULTS/gpu-check-folders.tar.gz" -C "$WORK" --exclude='*.png' --exclude='*.html' "${folders[@]}"
    fi
    echo "wrote $RESULTS/gpu-check-folders.tar.gz ($(du -k "$RESULTS/gpu-check-folders.tar.gz" | cut -f1) KiB)"
  fi
}

main() {
  failed=()
  rm -rf "$WORK"  # fixed folders: never resume into an older run's rows
  mkdir -p "$WORK"
  : >"$STAGES"
  export -f environment install_wheels gpu_tests sweep summary imagefolder_sweep ranks_sweep write_results
  local gpus ranks_s=0
  stage environment 30 environment
  gpus=$(cat "$WORK/gpus" 2>/dev/null || echo 0)
  if [ "$gpus" -ge 2 ] || [ "$RANKS_DEVICE" = cpu ]; then ranks_s=$RANKS_S; fi  # kept for the multi-rank stage
  stage install 40 install_wheels
  if [ "$RUN_TESTS" = 1 ]; then
    stage "pytest -m gpu" 90 gpu_tests $((200 + ranks_s))  # keeps at least 120 s for the sweep, 60 for the JPEGs
  else
    skip "pytest -m gpu" "GPU_CHECK_TESTS=0"
  fi
  stage sweep 200 sweep $((80 + ranks_s))  # keeps at least 60 s for the JPEG stage and 20 for the results
  if [ ! -s "$SWEEP/summary.csv" ]; then  # a sweep stopped by its limit summarizes its rows itself
    stage summary 30 summary $((50 + ranks_s))  # may take 30 s of the JPEG stage's
  else
    skip summary "the sweep wrote summary.csv and effects.csv"
  fi
  stage imagefolder 80 imagefolder_sweep $((20 + ranks_s))
  if [ "$ranks_s" -gt 0 ]; then
    stage ranks "$ranks_s" ranks_sweep 20
  else
    skip ranks "$gpus GPU(s) visible and train.ranks=2 needs 2 (GPU_CHECK_RANKS_DEVICE=cpu runs it with gloo)"
  fi
  DEADLINE=$((DEADLINE + 10))  # the results stage may use the kill grace the others did not
  stage results 30 write_results
  local returned
  returned=$(find "$RESULTS" -type f | wc -l)
  echo "files for return in $RESULTS: $returned (at most 8): $(cd "$RESULTS" && find . -type f | sort | tr '\n' ' ')"
  if [ ${#failed[@]} -gt 0 ]; then
    echo "gpu check: failed stages: ${failed[*]} ($SECONDS s)"
    return 1
  fi
  echo "gpu check: all stages ok in ${SECONDS}s; results in $RESULTS"
}

mkdir -p "$RESULTS"
rm -f "$RESULTS/gpu-check.json" "$RESULTS/gpu-check.log" "$RESULTS/gpu-check-folders.tar.gz"
rc=0
main 2>&1 | tee "$RESULTS/gpu-check.log" || rc=$?
exit "$rc"
