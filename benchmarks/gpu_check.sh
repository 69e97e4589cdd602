#!/usr/bin/env bash
# GPU check: the measurements only an accelerator can make, in one script under 10 minutes.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default benchmarks/results/gpu)
#   TRIM=1 bash benchmarks/gpu_check.sh [OUT_DIR]  (the essential parts, about 5 minutes: for
#                                                  a 15-minute device lease with room for a rerun)
#
# Needs no network: a GPU machine with jax (CUDA), flax, optax, numpy and pillow. gsnn runs
# from this checkout (PYTHONPATH); nothing else is imported on these paths (evosax, orbax
# and tensorflow-datasets are imported lazily and are not needed here; step 4 runs
# train_and_evaluate, which also imports tensorboardX, pure Python: put its wheel in
# benchmarks/wheels/ where the machine lacks it). Wheels placed in
# benchmarks/wheels/ are installed first without network, for a machine that lacks one.
#
# Measures, each step under its own time limit so a slow step cannot eat the others:
#   1. ResNet-19, CIFAR-10 shape, T=4, batch 128: training-step time, direct and genetic
#      (position g=128, 57% compression; g=64, 78.5%), XLA's step memory.
#   2. vmapped population of convnet_s (evolve_demo's STE individual at full width):
#      P = 16 and 64, against a loop of single evaluations at P = 16.
#   3. The W2 workload (direct and genetic g=32) for the CPU-vs-GPU picture.
#   4. The epoch loop against the bare jitted step (convnet_s, batch 128, T=4): images/s
#      of train_and_evaluate's epochs over a loop of the same step, the ratio (goal >= 0.95).
#   5. An allocation population (evolve_demo:allocation, issue 26): members of different
#      sizes masked from one maximal network, vmapped at P = 16 and 64 against a loop at 16.
# With TRIM=1 each step runs fewer sizes, steps and epochs (the lines marked below).
# Writes one JSON per step into OUT_DIR plus env.json (GPU name, driver, versions).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${1:-benchmarks/results/gpu}
mkdir -p "$OUT_DIR"
if compgen -G "benchmarks/wheels/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/gsnn-site benchmarks/wheels/*.whl && export PYTHONPATH=/tmp/gsnn-site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
PY=${PYTHON:-python3}
TRIM=${TRIM:-0}
start=$(date +%s)
if [ "$TRIM" = 1 ]; then  # trimmed: ResNet-19 genetic at one size, P = 16 only, fewer steps and epochs
  ENCODINGS="direct position:128"; STEPS=5; SIZES="16"; LOOP_EPOCHS=2; ALLOC_SIZES="16"
else
  ENCODINGS="direct position:128 position:64"; STEPS=10; SIZES="16 64"; LOOP_EPOCHS=4; ALLOC_SIZES="16 64"
fi

$PY - "$OUT_DIR/env.json" <<'PYEOF'
import json, subprocess, sys, jax, flax, optax
smi = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                     capture_output=True, text=True).stdout.strip()
env = dict(gpu=smi, devices=[str(d) for d in jax.devices()], backend=jax.default_backend(),
           jax=jax.__version__, flax=flax.__version__, optax=optax.__version__)
print(env); json.dump(env, open(sys.argv[1], "w"), indent=1)
PYEOF

timeout 200 $PY benchmarks/train_step.py --arch resnet19 --encodings $ENCODINGS \
  --batch 128 --T 4 --steps $STEPS --json "$OUT_DIR/resnet19_train_step.json" || echo "step 1 failed or timed out"
echo "elapsed $(( $(date +%s) - start )) s"

timeout 200 $PY benchmarks/population.py --config evolve_demo --width 1.0 --sizes $SIZES --chunk 16 \
  --loop-max 16 --repeats 2 --json "$OUT_DIR/population_convnet_s.json" || echo "step 2 failed or timed out"
echo "elapsed $(( $(date +%s) - start )) s"

timeout 60 $PY -m gsnn.cli bench --workload w2 --mode direct genetic --genes 32 --steps 20 \
  --json "$OUT_DIR/w2.json" || echo "step 3 failed or timed out"
echo "elapsed $(( $(date +%s) - start )) s"

timeout 120 $PY benchmarks/loop_vs_step.py --arch convnet_s --width 1.0 --batch 128 --T 4 --steps 50 --epochs $LOOP_EPOCHS \
  --json "$OUT_DIR/loop_vs_step.json" || echo "step 4 failed or timed out"
timeout 150 $PY benchmarks/population.py --config evolve_demo:allocation --width 1.0 --sizes $ALLOC_SIZES --chunk 16 \
  --loop-max 16 --repeats 2 --noise 1.0 --json "$OUT_DIR/population_allocation.json" || echo "step 5 failed or timed out"
echo "total $(( $(date +%s) - start )) s; results in $OUT_DIR"
