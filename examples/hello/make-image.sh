#!/bin/sh
# Builds images/hello.tar.gz: a reproducible busybox rootfs tarball made from
# the host's busybox-static (Debian package busybox-static). No network.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "make-image.sh: $busybox not found (apt-get install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root="$tmp/rootfs"
mkdir -p "$root/bin" "$root/usr/bin" "$root/etc" "$root/www" "$root/tmp" "$root/proc" "$root/sys" "$root/dev"
cp "$busybox" "$root/bin/busybox"
for app in sh echo cat ls sleep httpd wget ps kill true false env date mkdir rm touch grep; do
  ln -s busybox "$root/bin/$app"
done
echo '<h1>hello from volt</h1>' > "$root/www/index.html"
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
mkdir -p "$here/images"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf - . | gzip -n -9 > "$here/images/hello.tar.gz.tmp"
mv "$here/images/hello.tar.gz.tmp" "$here/images/hello.tar.gz"
echo "wrote $here/images/hello.tar.gz"
