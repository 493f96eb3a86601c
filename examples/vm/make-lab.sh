#!/bin/sh
# Makes the inputs of the lab example: the VM test image (kernel from
# Debian's linux-image package, busybox initramfs) in out/, and a busybox
# container image. Nothing else is downloaded.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
sh "$here/build-test-image.sh" "$here/out" >/dev/null
"$here/../busybox-rootfs.sh" "$here/out/web.tar.gz" "www/index.html=<h1>beside a VM</h1>"
echo "wrote $here/out"
