#!/usr/bin/env bash
# Recipe benchmarks (issue: recipes): evaluation of a generated recipe that
# declares 1,000 containers across 3 modules (target < 200 ms, < 50 MiB), and
# `volt bundle create --dry-run` of each example (target < 50 ms).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
make -s bin/volt
go test -run '^$' -bench 'BenchmarkEval1000|BenchmarkEvalExamples' -benchmem -count 3 ./starlark | grep -E '^Benchmark|ok'
now() { date +%s.%N; }
printf '\n%-28s %10s\n' "dry run (median of 5)" "ms"
for ex in hello web-recipe multi shared-lib; do
  [ -f "examples/$ex/volt.star" ] || [ -f "examples/$ex/volt-compose.yaml" ] || continue
  t=$(for i in 1 2 3 4 5; do s=$(now); VOLT_ROOT=/tmp/volt-bench-recipe bin/volt bundle create "examples/$ex" --dry-run >/dev/null 2>&1; e=$(now); echo "($e - $s) * 1000" | bc -l; done | sort -n | sed -n 3p)
  printf '%-28s %10.1f\n' "$ex" "$t"
done
