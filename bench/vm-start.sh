#!/usr/bin/env bash
# VM start benchmark (issue 6). Side by side in one run, on the same kernel +
# initrd (examples/vm/build-test-image.sh): time from start to the guest's
# marker on the serial console through Volt's QEMU runtime vs plain
# qemu-system-x86_64 with the same arguments; prints the medians, the median
# overhead (target < 50 ms) and QEMU's RSS. TCG always; KVM too when the
# runtime's probe says it works on this host.
#   bash bench/vm-start.sh          # RUNS=3 bash bench/vm-start.sh for a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-7}
cache=${VOLT_VM_CACHE_DIR:-/var/cache/volt-test}
img="$cache/bench-vm-image"
VOLT_VM_CACHE="$cache/kernel" sh examples/vm/build-test-image.sh "$img" >/dev/null
bin=$(mktemp -d /tmp/vmstart-bin.XXXXXX)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/vmstart" ./bench/cmd/vmstart
echo "== TCG"
"$bin/vmstart" -image "$img" -n "$RUNS" -accel tcg
if "$bin/vmstart" -image "$img" -n 0 2>/dev/null | grep -q '^accel kvm'; then
  echo "== KVM"
  "$bin/vmstart" -image "$img" -n "$RUNS" -accel kvm
else
  echo "== KVM: not usable on this host (the runtime's probe guest does not run under it); skipped"
fi
