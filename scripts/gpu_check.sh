#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py) on a machine that has torch and Lightning but not Hydra (the lent H200).
#
#   scripts/gpu_check.sh --prepare [FASHION_DIR]   # here: wheels of hydra-core, omegaconf, antlr4 (the .venv's
#                                                  # versions) and the Fashion-MNIST IDX files into gpu_carry/
#   scripts/gpu_check.sh --out "$OUT" [...]        # there: install the carried wheels, run gpu_check.py
#
# gpu_carry/ is git-ignored; the device tool's `carry` takes it along. nnopt itself is not installed there: its
# `torch>=2.13` floor is above that machine's torch, so it runs from src/ on PYTHONPATH, with no dependency resolved.
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=gpu_carry

if [[ "${1:-}" == --prepare ]]; then
  PY=${PYTHON:-.venv/bin/python}
  fashion=${2:-/usr/share/datasets/fashion-mnist}
  # the versions nnopt is tested with here, so both machines run the same Hydra
  mapfile -t pins < <("$PY" -c "from importlib.metadata import version as v
for n in ('hydra-core', 'omegaconf', 'antlr4-python3-runtime'): print(f'{n}=={v(n)}')")
  rm -rf "$CARRY/wheels" && mkdir -p "$CARRY/wheels"
  # all three are pure Python; antlr4 4.9.3 is published as an sdist only, so build wheels rather than download
  "$PY" -m pip wheel -q --no-deps -w "$CARRY/wheels" "${pins[@]}"
  if ls "$fashion"/*-ubyte.gz >/dev/null 2>&1; then
    mkdir -p "$CARRY/fashion-mnist" && cp "$fashion"/*-ubyte.gz "$CARRY/fashion-mnist/"
  else
    echo "no Fashion-MNIST IDX files in $fashion (apt-get install dataset-fashion-mnist): the check will use digits"
  fi
  ls -l "$CARRY"/*
  du -sh "$CARRY"
  exit 0
fi

PY=${PYTHON:-python3}
if ! "$PY" -c "import hydra, omegaconf" 2>/dev/null; then
  site=${TMPDIR:-/tmp}/gpu_check_site
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$CARRY"/wheels/*.whl
  export PYTHONPATH=$site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
args=("$@")
if [[ " $* " != *" --data "* && " $* " != *" --cpu "* && -f $CARRY/fashion-mnist/train-images-idx3-ubyte.gz ]]; then
  args+=(--data fashion_mnist --data-dir "$CARRY/fashion-mnist")
fi
exec "$PY" scripts/gpu_check.py "${args[@]}"
