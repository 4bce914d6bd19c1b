#!/bin/bash
# build.sh [BUILD_DIR] [cmake args...]: configure and build kiln (gcc, warnings as errors).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/build}
shift || true
cmake -S "$top" -B "$dir" -DKILN_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
