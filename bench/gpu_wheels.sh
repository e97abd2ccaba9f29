#!/usr/bin/env bash
# The wheels bench/gpu_checks.sh needs on the lent GPU machine (its python 3.12 has torch, lightning and
# accelerate, but not this project's transformers, hydra, datasets, peft or rouge_score), at the versions of this
# machine's .venv (the ones CI tests), written to .whl (git-ignored; carried with `carry: [".whl", ".cache"]`).
# Run here, where the package registry is reachable: `bash bench/gpu_wheels.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
PIP=${PIP:-.venv/bin/pip}
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
version() { "$PIP" show "$1" | awk '/^Version/{print $2}'; }
binary=(transformers huggingface_hub kernels tomlkit httpx2 httpcore2 truststore hf-xet click hydra-core omegaconf
        datasets dill multiprocess peft nltk)
pins=()
for p in "${binary[@]}"; do pins+=("$p==$(version "$p")"); done
"$PIP" download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${pins[@]}"
# published as source only: built here (pure Python)
"$PIP" wheel -q --no-deps -w .whl "antlr4-python3-runtime==$(version antlr4-python3-runtime)" \
  "rouge-score==$(version rouge-score)"
ls .whl
