#!/usr/bin/env bash
# One prepared GPU run: the kernel tests and benchmarks scripts/results/README.md lists as still to be measured on
# a GPU, at the sizes that fit --budget seconds (default 480), every JSON and log in one folder, and a summary
# table. `--help` explains.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: bash scripts/gpu_check.sh [--dry] [--out DIR] [--budget SECONDS] [--only STEP,...] [--python PY]

On a GPU machine (H100 / H200, jax with CUDA), runs in this order, each step in its own process under its own
time limit (`timeout`), a failed or timed-out step recorded and the rest still run:

  device             jax.devices()[0].device_kind and the machine (device.json); not a GPU: stop here
  pytest_gpu         pytest -m gpu tests/pallas_kernels (JAX_PLATFORMS=cuda: tests/conftest.py would pick the
                     CPU); output in logs/pytest_gpu.log, results in pytest_gpu.xml. A kernel that fails stays off
  ops_256            bench_ops.py 256 px, 128 channels, batch 32 (XLA, Pallas, the depthwise FIR reference)
  ops_1024           bench_ops.py 1024 px, 32 channels, batch 8
  ops_64             bench_ops.py 64 px, 512 channels, batch 32
  generator_256_xla  bench_generator.py 256 px, channel_base 16384, batch 1,8,32, forward and forward+backward
  generator_256_pallas         the same with --implementation pallas
  drag_xla           bench_drag.py 256 px config F, 1 / 16 / 64 sessions, --implementation xla
  drag_pallas        the same with --implementation pallas (point tracking and the generator's kernels)
  generator_1024_xla bench_generator.py 1024 px config F (channel_base 32768), batch 1,8, both modes
  generator_1024_pallas        the same with --implementation pallas
  editgan_512        bench_editgan.py 512 px, B = 1, 8 (8 skipped when 1 took over 30 s to compile)
  serve_256          bench_serve.py: jaxgan serve, random 256 px generator, 1 and 8 clients, 20 steps each

The steps share one budget: a step gets min(its own limit, what is left), and a step for which less than
30 s is left is recorded as skipped, so the whole run ends within --budget seconds (plus the summary).

At the end scripts/gpu_check_summary.py reads the folder and prints one line per result (what, implementation,
size, median time, throughput, and the fraction of the GPU's peak where the JSON has analytic GFLOP/s: FP32 and
TF32 peaks as in scripts/results/README.md; bench_ops' FIR and epilogue rows also get achieved HBM bandwidth),
written also as summary.txt and summary.json. The exit status is 0 when every step is ok, 1 otherwise.

Then: copy the JSON you want to keep to scripts/results/ (e.g. bench_ops_gpu_256.json) and decide DECISIONS in
jaxgan/ops/implementation.py by the criteria in scripts/results/README.md.

Options:
  --dry            the same steps and scripts on the CPU at tiny sizes (8-32 px, 2-16 channels, batch 1-2, 1-2
                   sessions or clients, one repeat; Pallas in interpret mode; pytest_gpu's tests skip: no GPU),
                   with one JAX compilation cache for all steps. Checks that the script and every benchmark still
                   run (tests/scripts/test_gpu_check.py); its timings mean nothing
  --out DIR        output folder (default gpu_check_results/<UTC date-time>-<host>[-dry], git-ignored); it must
                   be empty or absent
  --budget S       seconds for all steps together (default 480; --dry: 600)
  --only STEP,...  run only these steps (and device), e.g. to rerun one that timed out, into a new folder
  --python PY      the interpreter (default .venv/bin/python where it exists, else python3); the checkout is put
                   first on PYTHONPATH, so jaxgan need not be installed, only its dependencies and jax for CUDA
  -h, --help       this text
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY=0
OUT=""
BUDGET=""
PY=""
ONLY=""
STEP_NAMES="device pytest_gpu ops_256 ops_1024 ops_64 generator_256_xla generator_256_pallas drag_xla drag_pallas
generator_1024_xla generator_1024_pallas editgan_512 serve_256"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry) DRY=1 ;;
        --out) [[ $# -ge 2 ]] || { echo "--out needs a folder" >&2; exit 2; }; OUT=$2; shift ;;
        --out=*) OUT=${1#--out=} ;;
        --budget) [[ $# -ge 2 ]] || { echo "--budget needs seconds" >&2; exit 2; }; BUDGET=$2; shift ;;
        --budget=*) BUDGET=${1#--budget=} ;;
        --only) [[ $# -ge 2 ]] || { echo "--only needs step names" >&2; exit 2; }; ONLY=$2; shift ;;
        --only=*) ONLY=${1#--only=} ;;
        --python) [[ $# -ge 2 ]] || { echo "--python needs a path" >&2; exit 2; }; PY=$2; shift ;;
        --python=*) PY=${1#--python=} ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ -z "$BUDGET" ]]; then
    BUDGET=$(( DRY ? 600 : 480 ))
fi
if ! [[ "$BUDGET" =~ ^[0-9]+$ ]]; then
    echo "--budget takes whole seconds, got $BUDGET" >&2
    exit 2
fi
for name in ${ONLY//,/ }; do
    if ! grep -qw -- "$name" <<<"$STEP_NAMES"; then
        echo "--only: no step $name (steps: $(tr '\n' ' ' <<<"$STEP_NAMES"))" >&2
        exit 2
    fi
done
if [[ -z "$PY" ]]; then
    if [[ -x "$ROOT/.venv/bin/python" ]]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
if [[ -z "$OUT" ]]; then
    OUT="$ROOT/gpu_check_results/$(date -u +%Y%m%d-%H%M%S)-${HOSTNAME%%.*}"
    if (( DRY )); then OUT="$OUT-dry"; fi
fi
if [[ -d "$OUT" && -n "$(ls -A "$OUT")" ]]; then
    echo "$OUT is not empty: give a new or empty folder (the summary reads every result in it)" >&2
    exit 2
fi
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1

if (( DRY )); then
    MODE=dry
    export JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES=1
    STEP_LIMIT=150  # seconds per step (on a 2-core CPU each takes 2-40 s, the most without a warm cache)
    # One compilation cache for the run's processes (the tiny models' initialisers and programs recur between
    # steps), a temporary one unless JAX_COMPILATION_CACHE_DIR names one to keep between runs. A cache hit skips
    # only XLA's compilation of an unchanged program: every script still traces, lowers and runs everything, and a
    # dry run measures nothing. A GPU run compiles everything itself (compile times are part of its results).
    if [[ -z "${JAX_COMPILATION_CACHE_DIR:-}" ]]; then
        CACHE=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-jax-cache.XXXXXX")
        trap 'rm -rf "$CACHE"' EXIT
        export JAX_COMPILATION_CACHE_DIR="$CACHE"
    fi
    export JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0
    # XLA's CPU backend without its expensive LLVM passes: the same programs, compiled in less time (a dry run's
    # timings mean nothing; measured: 121 s instead of 146 s for the whole dry run, cold cache).
    FAST_COMPILE="--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
    export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }$FAST_COMPILE"
else
    MODE=gpu
    export JAX_PLATFORMS="${JAX_PLATFORMS:-cuda}"
    unset JAX_COMPILATION_CACHE_DIR
    STEP_LIMIT=""
fi

START=$(date +%s)
DEADLINE=$(( START + BUDGET ))
MIN_STEP=30
STEPS="$OUT/steps.tsv"
printf '{"mode": "%s", "budget_s": %s, "started_utc": "%s", "host": "%s"}\n' "$MODE" "$BUDGET" \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$HOSTNAME" >"$OUT/run.json"
printf 'name\tstatus\trc\tseconds\tlimit_s\tartifact\tlog\tcommand\n' >"$STEPS"
echo "[gpu_check] $MODE run, budget ${BUDGET} s, results in $OUT"

# step NAME LIMIT_S ARTIFACT COMMAND...: run COMMAND (cwd: the checkout) under `timeout`, its output in
# logs/NAME.log, one line in steps.tsv. ARTIFACT is the file the command writes (relative to OUT).
step() {
    local name=$1 limit=$2 artifact=$3
    shift 3
    local log="logs/$name.log" now left rc=0 began seconds status
    if [[ -n "$ONLY" && "$name" != device && ",$ONLY," != *",$name,"* ]]; then
        return 0
    fi
    if [[ -n "$STEP_LIMIT" ]]; then limit=$STEP_LIMIT; fi
    now=$(date +%s)
    left=$(( DEADLINE - now ))
    if (( left < MIN_STEP )); then
        printf '%s\tskipped\t\t0\t%s\t%s\t%s\t%s\n' "$name" "$limit" "$artifact" "$log" "$*" >>"$STEPS"
        echo "budget spent (${left} s left): $name not run" >"$OUT/$log"
        echo "[gpu_check] $name: skipped, ${left} s of the budget left"
        return 0
    fi
    if (( limit > left )); then limit=$left; fi
    echo "[gpu_check] $name (limit ${limit} s): $*"
    began=$(date +%s.%N)
    timeout --kill-after=15 "$limit" "$@" >"$OUT/$log" 2>&1 || rc=$?
    seconds=$(awk -v a="$began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
        0) status=done ;;
        124|137) status=timeout ;;
        *) status=failed ;;
    esac
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$seconds" "$limit" "$artifact" "$log" "$*" \
        >>"$STEPS"
    echo "[gpu_check] $name: $status (exit $rc) in $seconds s"
}

S=scripts
if (( DRY )); then
    step device 60 device.json "$PY" $S/gpu_check_summary.py --device "$OUT/device.json"
else
    step device 60 device.json "$PY" $S/gpu_check_summary.py --device "$OUT/device.json" --require-gpu
    if [[ "$(awk -F'\t' '$1 == "device" { print $2 }' "$STEPS")" != done ]]; then
        echo "[gpu_check] no GPU visible to JAX (logs/device.log); use --dry for the CPU check" >&2
        "$PY" $S/gpu_check_summary.py "$OUT" || true
        exit 1
    fi
fi

# 1. The kernels lowered for real, against XLA. (tests/conftest.py sets JAX_PLATFORMS=cpu unless it is set.)
step pytest_gpu 90 pytest_gpu.xml "$PY" -m pytest -m gpu tests/pallas_kernels -q -rA -p no:cacheprovider \
    --junitxml="$OUT/pytest_gpu.xml"

# 2. Per op, XLA against Pallas (and the FIR reference), at the three shapes of the results README.
if (( DRY )); then
    OPS_SHAPES=("16 8 2" "16 8 2" "16 8 2")  # one tiny shape: the second and third compile from the cache
    OPS_EXTRA=(--repeats 1 --sessions 2 --points 2 --feature-channels 8)
else
    OPS_SHAPES=("256 128 32" "1024 32 8" "64 512 32")
    OPS_EXTRA=()
fi
OPS_NAMES=(ops_256 ops_1024 ops_64)
for i in 0 1 2; do
    read -r res ch batch <<<"${OPS_SHAPES[$i]}"
    name=${OPS_NAMES[$i]}
    step "$name" 60 "$name.json" "$PY" $S/bench_ops.py --resolution "$res" --channels "$ch" --batch "$batch" \
        ${OPS_EXTRA[@]+"${OPS_EXTRA[@]}"} --out "$OUT/$name.json"
done

# 3. End to end, each implementation, both modes; DragGAN's step with the tracking kernel.
if (( DRY )); then
    GEN_SMALL=(--resolution 8 --channel-base 64 --channel-max 16 --z-dim 16 --mapping-layers 2 --batch-sizes 1,2)
    GEN_LARGE=(--resolution 8 --channel-base 64 --channel-max 16 --z-dim 16 --mapping-layers 2 --batch-sizes 1)
    GEN_EXTRA=(--repeats 1)
    DRAG=(--resolutions 16 --sessions 1,2 --repeats 1 --channel-base 64 --channel-max 16 --mapping-layers 2)
    # Pallas interpret mode cannot lower inside jax.shard_map (jax 0.10.2: the interpreter's dynamic slices mix
    # varying and unvarying operands), so on the CPU the Pallas drag step runs jit(vmap(drag_step)) instead of
    # the sharded make_batched_step; the GPU run times the real one (Triton lowering).
    DRAG_PALLAS=(--driver vmap)
    EDITGAN=(--resolutions 32 --batches 1 --steps 1 --warmup 0 --channel-base 128 --channel-max 16)
    SERVE=(--configs demo --clients 1,2 --steps 2 --repeats 1)
else
    GEN_SMALL=(--resolution 256 --channel-base 16384 --batch-sizes 1,8,32)
    GEN_LARGE=(--resolution 1024 --channel-base 32768 --batch-sizes 1,8)
    GEN_EXTRA=()
    DRAG=(--resolutions 256 --sessions 1,16,64)
    DRAG_PALLAS=()
    EDITGAN=(--resolutions 512 --batches 1,8 --max-config-seconds 30)
    SERVE=(--configs 256 --clients 1,8 --steps 20)
fi
for impl in xla pallas; do
    step "generator_256_$impl" 75 "generator_256_$impl.json" "$PY" $S/bench_generator.py "${GEN_SMALL[@]}" \
        --modes forward,backward --implementation "$impl" ${GEN_EXTRA[@]+"${GEN_EXTRA[@]}"} \
        --out "$OUT/generator_256_$impl.json"
done
step drag_xla 75 drag_xla.json "$PY" $S/bench_drag.py "${DRAG[@]}" --implementation xla --out "$OUT/drag_xla.json"
step drag_pallas 75 drag_pallas.json "$PY" $S/bench_drag.py "${DRAG[@]}" ${DRAG_PALLAS[@]+"${DRAG_PALLAS[@]}"} \
    --implementation pallas --out "$OUT/drag_pallas.json"
for impl in xla pallas; do
    step "generator_1024_$impl" 90 "generator_1024_$impl.json" "$PY" $S/bench_generator.py "${GEN_LARGE[@]}" \
        --modes forward,backward --implementation "$impl" ${GEN_EXTRA[@]+"${GEN_EXTRA[@]}"} \
        --out "$OUT/generator_1024_$impl.json"
done

# EditGAN's step and the server (XLA: the default table).
step editgan_512 120 editgan_512.json "$PY" $S/bench_editgan.py "${EDITGAN[@]}" --out "$OUT/editgan_512.json"
step serve_256 120 serve_256.json "$PY" $S/bench_serve.py "${SERVE[@]}" --out "$OUT/serve_256.json"

echo "[gpu_check] steps took $(( $(date +%s) - START )) s"
"$PY" $S/gpu_check_summary.py "$OUT"
