#!/usr/bin/env bash
# The GPU goals of the speed issue, measured in one call on a lent GPU machine (one H100/H200).
#
#   bash benchmarks/gpu_check.sh prepare   # here, once: tinygp wheel + the paper's run table
#   bash benchmarks/gpu_check.sh run       # there: the command of one device `run` call,
#                                          # carry [".device_carry"], timeout_s 560
#
# `prepare` fills .device_carry/ (git-ignored through .git/info/exclude; the device machine
# sees neither ../shared nor the internet): the tinygp wheel, which that machine lacks (it has
# jax with CUDA, optax, flax, equinox, pandas, pytest), and a copy of
# ../shared/data/surrogate_runs.pkl. `run` then measures, most important first, each step
# under its own time limit so that one slow step cannot take the others' results with it:
#   1. the simulator's queries/s at batches 10^3..10^7 (goal >= 10^8 /s);
#   2. 1,024 seeds x 100 asks of mfms_bo on the paper world, vmapped in one batch (goal
#      < 60 s after compilation), with compile time and device peak memory;
#   3. 1 and 64 seeds, for the per-seed scaling and bytes per seed;
#   4. the quick tests of the GP and its linear algebra (whose code paths differ by backend).
# Everything lands under $OUT (JSON per step, logs); the device tool copies it back.
# `RUN_QUICK=1 bash benchmarks/gpu_check.sh run` does a tiny version of every step (any
# machine; OUT defaults to a fresh temporary folder) to check this script itself.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.device_carry

prepare() {
  set -e
  grep -qxF "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >> .git/info/exclude
  mkdir -p "$CARRY/whl"
  local tinygp_version
  tinygp_version=$(python3 -c "import importlib.metadata as m; print(m.version('tinygp'))" \
    2>/dev/null || echo 0.3.1)
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
    -d "$CARRY/whl" "tinygp==$tinygp_version"
  install -m 0644 ../shared/data/surrogate_runs.pkl "$CARRY/surrogate_runs.pkl"
  du -sh "$CARRY"
}

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log, go on
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit} s) =="
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$name.log"
  echo "== $name: exit $rc after $((SECONDS - start)) s =="
}

run() {
  OUT=${OUT:-$(mktemp -d)}
  if [ ! -f "$CARRY/surrogate_runs.pkl" ]; then
    echo "$CARRY/surrogate_runs.pkl missing: run 'bash benchmarks/gpu_check.sh prepare' here" \
      "and name $CARRY in the call's carry" >&2
    return 2
  fi
  if ! python3 -c "import tinygp" 2>/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site "$CARRY"/whl/*.whl || return 2
    export PYTHONPATH=/tmp/site
  fi
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
  unset JAX_COMPILATION_CACHE_DIR  # compile times are fresh compiles, not cache reads
  (nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true) \
    | tee "$OUT/gpu.txt"
  python3 -c "import jax, optax, tinygp; print('jax', jax.__version__, jax.devices())" \
    | tee -a "$OUT/gpu.txt"
  local bench=(python3 benchmarks/throughput.py --paper-runs "$CARRY/surrogate_runs.pkl")
  if [ -n "${RUN_QUICK:-}" ]; then
    step simulator 300 "${bench[@]}" --steps simulator --sim-batches 1000 10000 --repeats 2 \
      --out "$OUT/gpu_simulator.json"
    step campaign_big 300 "${bench[@]}" --steps campaigns --seeds 4 --asks 5 --batch-size 4 \
      --out "$OUT/gpu_campaign_1024.json"
    step campaigns 300 "${bench[@]}" --steps campaigns --seeds 1 --asks 5 --repeats 1 \
      --out "$OUT/gpu_campaigns.json"
    step tests 300 python3 -m pytest -q -x -m "not slow" -p no:cacheprovider \
      tests/test_gp.py -k "masked"
  else
    step simulator 110 "${bench[@]}" --steps simulator --out "$OUT/gpu_simulator.json"
    step campaign_big 200 "${bench[@]}" --steps campaigns --seeds 1024 --batch-size 1024 \
      --out "$OUT/gpu_campaign_1024.json"
    step campaigns 150 "${bench[@]}" --steps campaigns --seeds 1 64 --batch-size 1024 \
      --out "$OUT/gpu_campaigns.json"
    step tests 60 python3 -m pytest -q -x -m "not slow" -p no:cacheprovider \
      tests/test_linalg.py tests/test_gp.py
  fi
  echo "== summary =="
  for f in "$OUT"/gpu_*.json; do
    [ -f "$f" ] && python3 -c 'import json, sys; print(*json.load(open(sys.argv[1])).get("summary", []), sep="\n")' "$f"
  done
  echo "results in $OUT"
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: bash benchmarks/gpu_check.sh prepare|run" >&2; exit 2 ;;
esac
