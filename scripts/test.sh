#!/usr/bin/env bash
# One command for every test: installs the dependencies, builds Volt and its
# plugins, checks formatting/vet/staticcheck, and runs all Go tests with -race
# (fuzz targets run their seed corpora as tests), then the OCI conformance
# suite against volt registry serve. Run as root on Debian 12:
#   sudo ./scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bash scripts/deps.sh
echo "== build"
make -s build
echo "== lint"
make -s lint
echo "== test"
# Tests that drive the CLI or plugins use the binaries just built.
export VOLT_BIN="$PWD/bin/volt" VOLT_PLUGIN_PATH="$PWD/bin"
go test -race -timeout 25m -count=1 ./...
echo "== OCI conformance"
bash scripts/conformance.sh
echo "== all tests passed"
