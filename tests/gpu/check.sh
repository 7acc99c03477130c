#!/usr/bin/env bash
# The GPU check: one command for a GPU machine, from the repository root, in at most 8 minutes on one
# H100/H200. It installs what travelled in .gpu-bundle/ (tests/gpu/bundle.sh writes it), then
#   1. runs the GPU tests (pytest -m gpu tests/gpu),
#   2. runs tests/bench/bench_paper.py (the paper preset's projected GPU-hours, each lever's ratio),
#   3. runs the tiny workflow end to end on the device: last_stage, augment: true,
# and prints a block to paste into workflow/docs/performance.md: the device's name, each figure, pass or fail.
#   bash tests/gpu/check.sh                             # on the GPU machine
#   HEADSTART_CHECK_DEVICE=cpu bash tests/gpu/check.sh  # the same steps on the CPU, at the smallest size:
#                                                       # a smoke run of the code, not a speed claim
# Environment: PYTHON (default python3), HEADSTART_BUNDLE (default .gpu-bundle), HEADSTART_CHECK_OUT
# (where logs go, default .gpu-check), HEADSTART_CHECK_WORKFLOW=0 (skips step 3, the test suite's own runs
# cover the workflow on the CPU).
set -uo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
device=${HEADSTART_CHECK_DEVICE:-cuda}
with_workflow=${HEADSTART_CHECK_WORKFLOW:-1}
python=$(command -v "${PYTHON:-python3}") || { echo "check: no ${PYTHON:-python3}"; exit 1; }
python=$(realpath -s "$python")
bundle=$(realpath -m "${HEADSTART_BUNDLE:-.gpu-bundle}")
out=$(realpath -m "${HEADSTART_CHECK_OUT:-.gpu-check}")
rm -rf "$out" && mkdir -p "$out"
start=$(date +%s)
declare -a summary
note() { summary+=("$1"); echo "check: $1"; }

# ---- 0. what travelled ---------------------------------------------------------------------------
if [ -d "$bundle/wheels" ]; then
  missing=()
  while read -r requirement; do
    module=${requirement%%=*}; module=${module//-/_}
    "$python" -c "import $module" 2>/dev/null || missing+=("$requirement")
  done < "$bundle/requirements.txt"
  if [ ${#missing[@]} -gt 0 ]; then
    "$python" -m pip install -q --no-index --find-links "$bundle/wheels" "${missing[@]}" > "$out/install.log" 2>&1 \
      || { echo "check: installing ${missing[*]} from $bundle failed (see $out/install.log)"; exit 1; }
  fi
fi
if [ -f "$bundle/nltk_data.tar.gz" ] && [ ! -f /usr/share/wordnet/data.noun ]; then
  tar xzf "$bundle/nltk_data.tar.gz" -C "$out" && export NLTK_DATA="$out/nltk_data"
fi
export PYTHONWARNINGS=ignore
name=$("$python" -c "
import torch
print(torch.cuda.get_device_name() if '$device' == 'cuda' and torch.cuda.is_available() else 'CPU (HEADSTART_CHECK_DEVICE=cpu: a smoke run at the smallest size, not a speed claim)')")
if [ "$device" = "cuda" ] && ! "$python" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "check: no CUDA device here (HEADSTART_CHECK_DEVICE=cpu runs the same steps on the CPU)"; exit 1
fi

# ---- 1. the GPU tests ------------------------------------------------------------------------------
HEADSTART_CHECK_DEVICE=$device "$python" -m pytest -q -p no:cacheprovider -m gpu tests/gpu > "$out/tests.log" 2>&1
tests_rc=$?
note "GPU tests: $(tail -n 1 "$out/tests.log" | tr -d '=' | xargs) -> $([ $tests_rc -eq 0 ] && echo PASS || echo FAIL)"

# ---- 2. the paper preset's benchmark -----------------------------------------------------------------
# On the GPU a wall-clock limit keeps the check inside the device's lease; on the CPU nothing is cut by a
# clock (a busy machine is slow, not broken).
limit() { if [ "$device" = "cuda" ]; then timeout "$@"; else shift; "$@"; fi; }
if [ "$device" = "cuda" ]; then
  bench_args=()
else  # the smallest size: a smoke run of the same code, its projection marked as the CPU's
  bench_args=(--iterations 1 --test-images 16 --lever-batch 4 --job-batch 8 --small-job-iterations 2 --small-job-classes 4 --small-job-test 2)
fi
CUDA_VISIBLE_DEVICES=$([ "$device" = "cuda" ] && echo "${CUDA_VISIBLE_DEVICES:-0}" || echo "") \
  limit 300 "$python" tests/bench/bench_paper.py "${bench_args[@]}" > "$out/bench.log" 2>&1
bench_rc=$?
# the figures: each lever's ratio and the projected device-hours (a line's last carriage return ends tqdm's bars)
while IFS= read -r line; do
  line=${line##*$'\r'}
  note "bench: ${line#"${line%%[![:space:]]*}"}"
done < <(grep -E "device-hours|x\)? \(goal" "$out/bench.log")
note "bench_paper.py -> $([ $bench_rc -eq 0 ] && echo PASS || echo "FAIL (rc $bench_rc, see $out/bench.log)")"

# ---- 3. the tiny workflow on the device: last stage, random crops --------------------------------------
workflow_rc=0
if [ "$with_workflow" = 0 ]; then
  note "tiny workflow: skipped (HEADSTART_CHECK_WORKFLOW=0)"
else
work="$out/workflow"
mkdir -p "$work"
cp -r Snakefile config.yaml workflow envs profiles tests "$work"/
cat > "$work/device.yaml" <<YAML
extract: {device: $device}
similarity: {measures: [inference, wordnet]}
finetune:
  device: $device
  train: last_stage
  augment: true
  methods: [random, inference, wordnet, imprint, probe]
  iterations: 20
  eval_every: 10
YAML
if [ -d "$bundle/fashion-mnist" ]; then
  printf 'dataset:\n  fashion_mnist: {local_dir: %s}\n' "$bundle/fashion-mnist" >> "$work/device.yaml"
fi
t0=$(date +%s)
(cd "$work" && limit 420 "$python" -m snakemake --cores all all --configfile tests/data/tiny.yaml device.yaml) \
  > "$out/workflow.log" 2>&1
workflow_rc=$?
t1=$(date +%s)
card="$work/results/fashion_mnist/efficientnet_lite0/head/export/card.json"
if [ $workflow_rc -eq 0 ] && [ -f "$card" ]; then
  exported=$("$python" -c "
import json; c = json.load(open('$card'))
print(f\"{c['method']}/k{c['k']} at {c['shots']} shots, test macro F {c['scores']['test_macro_f1']:.3f}\")")
  note "tiny workflow (last_stage, augment, device $device): $((t1 - t0)) s, exported $exported -> PASS"
else
  note "tiny workflow (last_stage, augment, device $device) -> FAIL (rc $workflow_rc, see $out/workflow.log)"
fi
fi

# ---- the block for workflow/docs/performance.md ----------------------------------------------------
status=$([ $tests_rc -eq 0 ] && [ $bench_rc -eq 0 ] && [ $workflow_rc -eq 0 ] && echo PASS || echo FAIL)
{
  echo "GPU check ($(date -u +%Y-%m-%d), $(git rev-parse --short HEAD 2>/dev/null || echo "no git")): $name — $status in $(( $(date +%s) - start )) s"
  for line in "${summary[@]}"; do echo "- $line"; done
} | tee "$out/readme-block.md"
[ "$status" = PASS ]
