#!/usr/bin/env bash
# The quick start: on Debian 12 as root, installs what Volt needs, builds it,
# then runs Volt's main job on the shipped example: build a signed bundle
# from examples/hello, verify it, deploy it, and show it running.
#   sudo ./scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
bash scripts/deps.sh
make -s build
export PATH="$PWD/bin:$PATH" VOLT_PLUGIN_PATH="$PWD/bin"
# A throwaway state root and config, so the demo never touches the host's.
demo=${VOLT_DEMO_DIR:-/tmp/volt-demo}
rm -rf "$demo"; mkdir -p "$demo"
export VOLT_ROOT="$demo/root" VOLT_CONFIG="$demo/config.yaml"
# Commands are shown in bold on a terminal, plain otherwise or with NO_COLOR.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold= plain=; fi
step() { printf '\n%s$ %s%s\n' "$bold" "$*" "$plain"; "$@"; }

examples/hello/make-image.sh >/dev/null
step volt key generate -o "$demo/signing-key" --comment demo@volt
step volt bundle create examples/hello --sign-key "$demo/signing-key" -o "$demo/hello.vbundle"
step volt bundle inspect "$demo/hello.vbundle"
step volt config set bundle.trusted_keys += "$(cat "$demo/signing-key.pub")"
step volt bundle verify "$demo/hello.vbundle"
if volt bundle import --help >/dev/null 2>&1; then
  step volt bundle import --verify "$demo/hello.vbundle"
  sleep 1
  step volt ps
  step volt logs hello/hello
  step busybox wget -qO- http://127.0.0.1:8088/
  step volt container exec hello/hello -- cat /etc/hello.conf
  # Leave it running only when asked: VOLT_DEMO_KEEP=1 ./scripts/demo.sh
  [ -n "${VOLT_DEMO_KEEP:-}" ] || step volt stack destroy hello
fi
