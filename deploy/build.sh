#!/usr/bin/env bash
# Configures and builds pgmux and its tests into build/ (incremental when run again). Arguments go to
# `cmake --build`: `deploy/build.sh --target pgmux` builds the server alone.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cmake -S "$top" -B "$top/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$top/build" -j"$(nproc)" "$@"
