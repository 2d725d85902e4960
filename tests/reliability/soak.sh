#!/usr/bin/env bash
# The 30-minute soak (wire, POST /sql and churn clients with Postgres restarted and killed along the way),
# its figures kept in a log. Usage: tests/reliability/soak.sh [seconds] (default 1800; 60 for a quick check).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-1800}
log=${SOAK_LOG:-$top/build/soak-$(date -u +%Y%m%dT%H%M%SZ).log}
echo "soak: ${seconds} s, figures in $log"
PGMUX_SOAK_SECONDS=$seconds "$top/build/tests/pgmux_reliability_tests" "[soak]" 2>&1 | tee "$log"
