#!/bin/sh
# Builds images/base.tar.gz, the busybox base the worker's build() step runs
# in, from the host's busybox-static. No network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
"$here/../busybox-rootfs.sh" "$here/images/base.tar.gz" "etc/os-release=NAME=volt-example-base"
echo "wrote $here/images/base.tar.gz"
