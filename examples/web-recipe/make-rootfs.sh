#!/bin/sh
# Puts the host's static busybox into rootfs/bin, so the example needs no
# network: apt-get install busybox-static (Debian/Ubuntu) first.
set -eu
cd "$(dirname "$0")"
mkdir -p rootfs/bin
cp "$(command -v busybox)" rootfs/bin/busybox
