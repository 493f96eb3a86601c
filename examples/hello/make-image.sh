#!/bin/sh
# Builds images/hello.tar.gz: a reproducible busybox rootfs tarball made from
# the host's busybox-static (Debian package busybox-static). No network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
"$here/../busybox-rootfs.sh" "$here/images/hello.tar.gz" "www/index.html=<h1>hello from volt</h1>"
echo "wrote $here/images/hello.tar.gz"
