#!/usr/bin/env bash
# Runs every benchmark in bench/ in turn (make bench). Each script prints its
# figures side by side with the peer tools and the ratios. Sizes can be
# lowered for a quick run, e.g. SIZE_MB=256 bash bench/run.sh.
set -uo pipefail
cd "$(dirname "$0")"
for s in bundle.sh recipe.sh deploy.sh nspawn-start.sh security.sh oci-unpack.sh cas.sh vm-start.sh registry.sh; do
  [ -f "$s" ] || continue
  echo "=== $s"
  bash "$s" || echo "($s failed)"
done
