#!/usr/bin/env bash
# Runs every benchmark in bench/ in turn (make bench). Each script prints its
# figures side by side with the peer tools and the ratios. Sizes can be
# lowered for a quick run, e.g. SIZE_MB=256 bash bench/run.sh.
#
# At the end it prints issue 17's table: each row with the issue's figure
# ("today") beside the one just measured. The figures come from lines the
# scripts print, one per row:
#   RATIO <name> <median> [<min>-<max>]
# (bench/bundle.sh: verify-one-entry-vs-b3sum, volt's throughput over
# b3sum's; bench/recipe.sh: recipe-dryrun-1000-vs-10; bench/cas.sh:
# cas-put-vs-cp-sync; bench/registry.sh: registry-pull-vs-oras-sync and
# serve-pull-vs-docker-registry) and the summary line of
# scripts/conformance.sh. ONLY=17 runs just the scripts that feed the table.
set -uo pipefail
cd "$(dirname "$0")"
log=$(mktemp /tmp/volt-bench-run.XXXXXX)
trap 'rm -f "$log"' EXIT
scripts="bundle.sh recipe.sh deploy.sh nspawn-start.sh security.sh oci-unpack.sh cas.sh vm-start.sh registry.sh"
[ "${ONLY:-}" = 17 ] && scripts="bundle.sh recipe.sh cas.sh registry.sh"
for s in $scripts; do
  [ -f "$s" ] || continue
  echo "=== $s"
  bash "$s" 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || echo "($s failed)"
done
echo "=== OCI conformance (scripts/conformance.sh)"
bash ../scripts/conformance.sh 2>&1 | tail -3 | tee -a "$log"

# measured NAME: "<median>x (spread <min>-<max>x)" from the RATIO line, or why not.
measured() {
  awk -v n="$1" '$1 == "RATIO" && $2 == n { printf "%sx", $3; if (NF > 3) printf " (spread %sx)", $4; found = 1; exit }
    END { if (!found) printf "not measured (no \"RATIO %s\" line)", n }' "$log"
}
conformance() {
  local l
  l=$(grep -E '^conformance: ' "$log" | tail -1)
  case "$l" in
    *"passed "*) echo "$l" | sed -E 's/^conformance: passed ([0-9]+) of ([0-9]+) tests, ([0-9]+) skipped.*/\1 passed, 0 failed, \3 skipped/' ;;
    *FAILED*) echo "$l" | sed -E 's/^conformance: FAILED \(([0-9?]+) of ([0-9?]+) tests failed.*/\1 of \2 failed/' ;;
    *) echo "not measured" ;;
  esac
}
echo
echo "=== issue 17: today (the issue's figures) and now (this run)"
row() { printf '%-58s | %-26s | %-10s | %s\n' "$@"; }
row "work" "today" "target" "now"
row "bundle verify, one 1 GiB entry: throughput vs b3sum -j2" "0.56-0.61x" ">= 0.9x" "$(measured verify-one-entry-vs-b3sum)"
row "bundle create --dry-run: 1,000 vs 10 on one gzip rootfs" "58x" "<= 4x" "$(measured recipe-dryrun-1000-vs-10)"
row "  same, 10,000 vs 1,000" "-" "~10x" "$(measured recipe-dryrun-10000-vs-1000)"
row "volt cas put 512 MiB vs cp + sync" "3.25x" "<= 2.0x" "$(measured cas-put-vs-cp-sync)"
row "OCI conformance suite vs volt registry serve" "746 passed, 112 failed" "0 failed" "$(conformance)"
row "volt bundle pull vs oras pull && sync" "<= 1.0x (keep)" "<= 1.0x" "$(measured registry-pull-vs-oras-sync)"
row "pull from serve vs from docker-registry" "1.18-1.25x" "<= 1.0x" "$(measured serve-pull-vs-docker-registry)"
