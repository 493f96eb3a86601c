#!/usr/bin/env bash
# The OCI distribution-spec conformance suite (pull, push, content discovery,
# content management) against `volt registry serve` on loopback (make
# conformance; scripts/test.sh runs it in CI). Exits non-zero on any failed test.
#
# The suite is a plain Go program (package main) from the module proxy, pinned
# below. It is built with `go install module@version` from a temp directory,
# which resolves it with its own go.mod: nothing of it enters the project's
# go.mod, and the binary is cached per version.
#   bash scripts/conformance.sh          # VOLT_BIN=path to test another build
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
CONFORMANCE_VERSION=v0.0.0-20260831232431-97274622c111
cache=${XDG_CACHE_HOME:-$HOME/.cache}/volt-test/conformance-$CONFORMANCE_VERSION
suite=$cache/conformance
if [ ! -x "$suite" ]; then
  mkdir -p "$cache"
  tmp=$(mktemp -d)
  (cd "$tmp" && GOBIN="$cache" GOFLAGS=-mod=mod go install \
    "github.com/opencontainers/distribution-spec/conformance@$CONFORMANCE_VERSION")
  rmdir "$tmp"
fi
volt=${VOLT_BIN:-$PWD/bin/volt}
[ -x "$volt" ] || make -s build

work=$(mktemp -d /tmp/volt-conformance.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
export VOLT_ROOT="$work/root" VOLT_CONFIG="$work/config.yaml"
# Port 0: the kernel picks a free one; serve logs the address it listens on.
"$volt" registry serve ${CONFORMANCE_DEBUG:+--debug} --addr 127.0.0.1:0 2>"$work/serve.log" & pid=$!
addr=""
for _ in $(seq 200); do
  addr=$(sed -n 's|^Serving an OCI registry on http://\([0-9.:]*\) .*|\1|p' "$work/serve.log")
  [ -n "$addr" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.05
done
[ -n "$addr" ] || { cat "$work/serve.log" >&2; echo "conformance: volt registry serve did not start" >&2; exit 1; }

# Every workflow and data set the registry supports, including the optional
# APIs (upload cancel, tag parameters, digest headers). Not enabled: sparse
# manifests (Volt refuses a manifest whose blobs were not pushed).
export OCI_REGISTRY="$addr" OCI_TLS=disabled OCI_RESULTS_DIR="$work/results" OCI_LOG=warn \
  OCI_USERNAME=token OCI_PASSWORD="$("$volt" registry token --push --delete --expiry 1h -q)" \
  OCI_API_BLOBS_UPLOAD_CANCEL=true OCI_API_MANIFESTS_TAG_PARAM=true \
  OCI_API_BLOBS_DIGEST_HEADER=true OCI_API_MANIFESTS_DIGEST_HEADER=true
rc=0
"$suite" >"$work/out.txt" 2>&1 || rc=$?
# The counts of the suite's <testsuite> element in its JUnit report.
attr() { grep -m1 '<testsuite ' "$work/results/junit.xml" 2>/dev/null | grep -o " $1=\"[0-9]*\"" | tr -dc 0-9; }
tests=$(attr tests) failures=$(attr failures) skipped=$(attr skipped)
if [ "$rc" -ne 0 ] || [ -z "${tests:-}" ] || [ "${failures:-1}" -ne 0 ]; then
  grep -E 'failed test|failed to' "$work/out.txt" | cut -c1-400 | head -${CONFORMANCE_SHOW:-40} >&2 || true
  echo "-- volt registry serve's log:" >&2; grep -E " 5[0-9][0-9] |panic" "$work/serve.log" | head -20 >&2 || tail -20 "$work/serve.log" >&2
  echo "conformance: FAILED (${failures:-?} of ${tests:-?} tests failed; exit $rc)" >&2
  exit 1
fi
echo "conformance: passed $((tests - failures - skipped)) of $tests tests, $skipped skipped (distribution-spec conformance $CONFORMANCE_VERSION)"
