#!/usr/bin/env bash
# Recipe benchmarks (issue: recipes): evaluation of a generated recipe that
# declares 1,000 containers across 3 modules (target < 200 ms, < 50 MiB), and
# `volt bundle create --dry-run` of each example (target < 50 ms).
# Issue 17: `bundle create --dry-run` of 1,000 (and 10,000) containers sharing
# one gzip rootfs image vs the same recipe with 10 (target <= 4x; 10,000
# linear). Runs are interleaved (10, 1,000, 10,000 back to back, REPS times,
# default 7) and the median per-run ratio is printed with its spread, and as
# "RATIO recipe-dryrun-1000-vs-10 <median> <min>-<max>" for bench/run.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
make -s bin/volt
REPS=${REPS:-7}
go test -run '^$' -bench 'BenchmarkEval1000|BenchmarkEvalExamples|BenchmarkEvalSharedImage' -benchmem -count 3 ./starlark | grep -E '^Benchmark|ok'
go test -run '^$' -bench 'BenchmarkDryRunSharedImage' -benchmem -count 1 ./engine/build | grep -E '^Benchmark|ok'
now() { date +%s.%N; }
printf '\n%-28s %10s\n' "dry run (median of 5)" "ms"
for ex in hello web-recipe multi shared-lib; do
  [ -f "examples/$ex/volt.star" ] || [ -f "examples/$ex/volt-compose.yaml" ] || continue
  t=$(for i in 1 2 3 4 5; do s=$(now); VOLT_ROOT=/tmp/volt-bench-recipe bin/volt bundle create "examples/$ex" --dry-run >/dev/null 2>&1; e=$(now); echo "($e - $s) * 1000" | bc -l; done | sort -n | sed -n 3p)
  printf '%-28s %10.1f\n' "$ex" "$t"
done

# Many services on one image: a 16 MiB gzip rootfs tarball (incompressible
# content), N containers each calling rootfs() on it.
work=$(mktemp -d /tmp/volt-bench-shared.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin"
head -c $((16 << 20)) /dev/urandom > "$work/rootfs/bin/app"
tar -C "$work/rootfs" -czf "$work/base.tar.gz" .
for n in 10 1000 10000; do
  mkdir -p "$work/r$n/images"; ln "$work/base.tar.gz" "$work/r$n/images/base.tar.gz"
  cat > "$work/r$n/volt.star" <<STAR
bundle(name = "many", version = "1.0.0")
for i in range($n):
    container("svc-%d" % i, image = rootfs("images/base.tar.gz"), command = ["/bin/app", str(i)])
STAR
done
dry() { local s e; s=$(now); VOLT_ROOT="$work/root" bin/volt bundle create "$work/r$1" --dry-run >/dev/null; e=$(now); echo "($e - $s) * 1000" | bc -l; }
dry 10 >/dev/null # warm the page cache
r1=() r2=() t10=() t1k=() t10k=()
for _ in $(seq "$REPS"); do
  a=$(dry 10) b=$(dry 1000) c=$(dry 10000)
  t10+=("$a") t1k+=("$b") t10k+=("$c")
  r1+=("$(echo "scale=2; $b / $a" | bc -l)") r2+=("$(echo "scale=2; $c / $b" | bc -l)")
done
med() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
spread() { local s; s=$(printf '%s\n' "$@" | sort -n); echo "$(echo "$s" | head -1)-$(echo "$s" | tail -1)"; }
printf '\ndry run, N containers on one gzip rootfs (median of %s interleaved runs)\n' "$REPS"
printf '%-28s %10.1f ms\n' "10 containers" "$(med "${t10[@]}")" "1,000 containers" "$(med "${t1k[@]}")" "10,000 containers" "$(med "${t10k[@]}")"
printf '%-28s %10sx  (spread %s; target <= 4)\n' "1,000 vs 10" "$(med "${r1[@]}")" "$(spread "${r1[@]}")"
printf '%-28s %10sx  (spread %s; linear = 10)\n' "10,000 vs 1,000" "$(med "${r2[@]}")" "$(spread "${r2[@]}")"
echo "RATIO recipe-dryrun-1000-vs-10 $(med "${r1[@]}") $(spread "${r1[@]}")"
echo "RATIO recipe-dryrun-10000-vs-1000 $(med "${r2[@]}") $(spread "${r2[@]}")"
