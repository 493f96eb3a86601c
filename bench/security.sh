#!/bin/sh
# bench/security.sh — start overhead of a container's full security policy
# (docker's capability set, no_new_privileges, Landlock default, docker's
# default seccomp profile compiled to BPF by volt-init) against the same
# container without any policy (nspawn's capability set, no filters), both
# with Volt's init as PID 1, in alternating pairs in one run.
#
#   bench/security.sh          # 30 pairs
#   N=100 bench/security.sh
#
# Target: median per-pair overhead < 5 ms. Times are start → first output
# line of the payload (BenchmarkSecurityOverhead). Needs root,
# systemd-nspawn, busybox-static. Figures on a loaded machine are noisy:
# compare the two columns of one run, not runs with each other.
set -eu
cd "$(dirname "$0")/.."
N=${N:-30}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go run ./bench/cmd/seccompdefault > "$tmp/seccomp.json"
CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tmp/volt-init" ./cmd/volt-init
out=$(VOLT_BENCH_SECCOMP="$tmp/seccomp.json" VOLT_BENCH_INIT="$tmp/volt-init" \
  go test -count=1 -run '^$' -bench '^BenchmarkSecurityOverhead$' -benchtime="${N}x" ./plugins/runtime-nspawn/nspawn/)
line=$(echo "$out" | grep '^BenchmarkSecurityOverhead') || { echo "$out" >&2; exit 1; }
metric() { echo "$line" | awk -v m="$1" '{ for (i = 2; i <= NF; i++) if ($i == m) printf "%.1f", $(i-1) }'; }
printf '%-48s %10s\n' "start → first output (median of $N pairs)" "ms"
printf '%-48s %10s\n' "no policy (volt-init, nspawn caps)" "$(metric nopolicy-median-ms)"
printf '%-48s %10s\n' "full policy (caps, nnp, Landlock, seccomp)" "$(metric policy-median-ms)"
printf '%-48s %10s\n' "overhead (median of per-pair differences)" "$(metric overhead-median-ms)"
