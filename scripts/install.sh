#!/usr/bin/env bash
# Install mf_dmri (editable) with a CPU build of torch, avoiding the multi-GB CUDA wheel.
# Usage: bash scripts/install.sh          # the package
#        bash scripts/install.sh test     # the package and the test tools
#        bash scripts/install.sh ci       # the test tools and every optional package the
#                                         # project advertises (scripts/check_extras.py)
# If torch is already importable it is kept (a CUDA build you installed yourself stays).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  # 1) a CPU wheel that pip can find locally (find-links), its dependencies from the index;
  # 2) PyTorch's CPU-only index; 3) the default index (may be a large CUDA build).
  if "$PY" -m pip install -q --no-index --no-deps "torch>=2.1" 2>/dev/null; then
    "$PY" -m pip install -q "torch>=2.1"
  else
    "$PY" -m pip install -q --timeout 20 --retries 1 \
      --index-url https://download.pytorch.org/whl/cpu "torch>=2.1" \
      || "$PY" -m pip install -q "torch>=2.1"
  fi
fi
extra=""
[ "${1:-}" = "test" ] && extra="[test]"
[ "${1:-}" = "ci" ] && extra="[test,sweep,ray,parquet,dipy,mesh,tetgen,pardiso]"
"$PY" -m pip install -q -e ".${extra}"
