#!/bin/sh
# bench/nspawn-start.sh — container start latency: Volt's runtime-nspawn vs
# plain systemd-nspawn, side by side in one run on the same busybox rootfs.
#
#   bench/nspawn-start.sh          # 30 pairs
#   N=100 bench/nspawn-start.sh    # more pairs
#
# Measures the time from start to the payload's first output line:
#   plain: systemd-nspawn --register=no --keep-unit -D ROOT sh -c 'echo ready; exec sleep 1000'
#          (first line read from its stdout)
#   volt:  nspawn.Runtime.Start (detached supervisor, tini as PID 1, log file)
#          (first byte in StateDir/console.log, watched from the same t0)
# Pairs alternate plain/volt. Reports medians and the median per-pair
# overhead (target < 20 ms), plus the median time until Start returns (it
# also waits until the container's init can take SIGTERM and writes pidfiles).
# The `volt container start` CLI is not measured: this benchmarks the plugin's
# package directly (BenchmarkStartToFirstOutput). Needs root, systemd-nspawn,
# busybox-static, tini.
set -eu
cd "$(dirname "$0")/.."
N=${N:-30}
out=$(go test -count=1 -run '^$' -bench '^BenchmarkStartToFirstOutput$' -benchtime="${N}x" ./plugins/runtime-nspawn/nspawn/)
line=$(echo "$out" | grep '^BenchmarkStartToFirstOutput') || { echo "$out" >&2; exit 1; }
metric() { echo "$line" | awk -v m="$1" '{ for (i = 2; i <= NF; i++) if ($i == m) printf "%.1f", $(i-1) }'; }
printf '%-44s %10s\n' "start → first output (median of $N)" "ms"
printf '%-44s %10s\n' "plain systemd-nspawn" "$(metric plain-median-ms)"
printf '%-44s %10s\n' "volt runtime-nspawn" "$(metric volt-median-ms)"
printf '%-44s %10s\n' "overhead (median of per-pair differences)" "$(metric overhead-median-ms)"
printf '%-44s %10s\n' "volt Start() returns" "$(metric start-return-median-ms)"
