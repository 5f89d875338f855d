#!/usr/bin/env bash
# Compile dvis_cli._C with its CUDA kernel on a machine without a GPU, to catch CUDA build breakage.
#
# What it does:
#   1. makes (or reuses) a venv with a CUDA build of torch (default torch==2.14.1, a CUDA 13 build);
#   2. finds the CUDA toolkit behind `nvcc` and sets CUDA_HOME to it;
#   3. copies the package to a temp folder and runs, strictly,
#        DVIS_BUILD_OPS=1 DVIS_BUILD_CUDA=1 TORCH_CUDA_ARCH_LIST="8.0;9.0" python setup.py build_ext --inplace
#   4. imports the result in that venv (no GPU needed) and checks the CPU kernel of that very build
#      against the pure-PyTorch reference.
#
# Knobs: DVIS_CUDA_VENV (venv folder), DVIS_CUDA_TORCH (pip spec of torch), TORCH_CUDA_ARCH_LIST,
# CUDA_HOME, MAX_JOBS (default 2). Exit status 0 means the CUDA kernel compiled and linked.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${DVIS_CUDA_VENV:-/tmp/dvis-cuda-venv}"
TORCH_SPEC="${DVIS_CUDA_TORCH:-torch==2.14.1}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0}"
export MAX_JOBS="${MAX_JOBS:-2}"

say() { echo "== $*"; }

# 1. The venv with a CUDA build of torch.
if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import sys, torch; sys.exit(0 if torch.version.cuda else 1)" 2>/dev/null; then
  say "installing $TORCH_SPEC into $VENV (a CUDA build, several GB)"
  "$VENV/bin/pip" install "$TORCH_SPEC"
fi
"$VENV/bin/python" -c "import numpy" 2>/dev/null || "$VENV/bin/pip" install -q numpy
command -v ninja >/dev/null 2>&1 || "$VENV/bin/pip" install -q ninja

# 2. The CUDA toolkit: CUDA_HOME if set, else the root of the toolkit that `nvcc` runs.
find_cuda_home() {
  local nvcc target
  nvcc="$(command -v nvcc || true)"
  [ -n "$nvcc" ] || return 1
  # nvcc may be a wrapper script (`exec /usr/local/cuda-X/bin/nvcc "$@"`) or a symlink.
  target="$(grep -aoE '/[^ "]*/bin/nvcc' "$nvcc" 2>/dev/null | head -n1 || true)"
  [ -n "$target" ] || target="$(readlink -f "$nvcc")"
  dirname "$(dirname "$target")"
}
if [ -z "${CUDA_HOME:-}" ]; then
  CUDA_HOME="$(find_cuda_home)" || { echo "no nvcc on PATH and CUDA_HOME unset" >&2; exit 2; }
fi
export CUDA_HOME
export PATH="$CUDA_HOME/bin:$PATH"
if [ ! -e "$CUDA_HOME/lib64/libcudart.so" ] && [ ! -e "$CUDA_HOME/lib/libcudart.so" ]; then
  echo "CUDA_HOME=$CUDA_HOME has no libcudart.so under lib64/ or lib/" >&2
  exit 2
fi

say "torch: $("$VENV/bin/python" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda)' 2>/dev/null)"
say "nvcc:  $("$CUDA_HOME/bin/nvcc" --version | grep -o 'release [0-9.]*, V[0-9.]*')  (CUDA_HOME=$CUDA_HOME)"
say "archs: $TORCH_CUDA_ARCH_LIST   MAX_JOBS=$MAX_JOBS"

# 3. A clean copy of the package, built strictly with the CUDA kernel required.
WORK="$(mktemp -d /tmp/dvis-cuda-build.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
tar -C "$REPO" --exclude='__pycache__' --exclude='*.so' --exclude='build' \
  -cf - setup.py pyproject.toml README.md LICENSE dvis_cli | tar -C "$WORK" -xf -
LOG="$WORK/build.log"
say "building in $WORK (log: build.log there)"
start=$(date +%s)
if ! (cd "$WORK" && DVIS_BUILD_OPS=1 DVIS_BUILD_CUDA=1 "$VENV/bin/python" setup.py build_ext --inplace) >"$LOG" 2>&1; then
  tail -n 60 "$LOG"
  echo "CUDA BUILD FAILED" >&2
  exit 1
fi
say "build took $(( $(date +%s) - start )) s; its dvis-ops lines and nvcc arch flags:"
grep -E '^dvis-ops:' "$LOG" | sed 's/^/   /' || true
grep -E 'nvcc.*ms_deform_attn_cuda\.cu' "$LOG" | grep -oE -- '-gencode=[^ ]+' | sort -u | sed 's/^/   /' || true
echo "   compiler warnings: $(grep -cE ' warning( #[0-9]+-D)?:' "$LOG" || true)"
grep -E ' warning( #[0-9]+-D)?:' "$LOG" | head -n 5 | cut -c1-200 | sed 's/^/   /' || true

SO="$(ls "$WORK"/dvis_cli/_C*.so)"
say "built $(basename "$SO") ($(du -h "$SO" | cut -f1))"
ldd "$SO" | grep -E 'cudart' | sed 's/^\s*/   links /' || true

# 4. Import it (no GPU needed) and run its CPU kernel against the reference.
(
  cd "$WORK"
  "$VENV/bin/python" - <<'PY'
import torch

import dvis_cli._C as ext

print(f"== import ok: with_cuda={ext.with_cuda()} cuda_version={ext.cuda_version()} torch_version={ext.torch_version}")
assert ext.with_cuda(), "the build has no CUDA kernel"

from dvis_cli.ops import status
from dvis_cli.ops.ms_deform_attn import ms_deform_attn, ms_deform_attn_pytorch

choice = status.choose("cpu", torch.float64)
print(f"== dispatch on cpu/float64: {choice.path} ({choice.reason})")
assert choice.uses_kernel, choice.reason

g = torch.Generator().manual_seed(0)
shapes = torch.tensor([[12, 20], [24, 40], [48, 80]])
starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1]])
S = int((shapes[:, 0] * shapes[:, 1]).sum())
value = torch.randn(1, S, 8, 32, generator=g, dtype=torch.float64)
loc = torch.rand(1, 100, 8, 3, 4, 2, generator=g, dtype=torch.float64) * 1.2 - 0.1
attn = torch.rand(1, 100, 8, 3, 4, generator=g, dtype=torch.float64)
out = ms_deform_attn(value, shapes, starts, loc, attn)
err = (out - ms_deform_attn_pytorch(value, shapes, starts, loc, attn)).abs().max().item()
print(f"== CPU kernel of this build vs reference (float64): max abs error {err:.2e}")
assert err < 1e-10
PY
)
say "OK: the CUDA kernel compiled for $TORCH_CUDA_ARCH_LIST and the module imports"
