#!/bin/sh
# Usage: busybox-rootfs.sh OUT.tar.gz [PATH=CONTENT]...
# Writes a small, reproducible busybox rootfs tarball made from the host's
# busybox-static (Debian package busybox-static): no network needed. Each
# PATH=CONTENT argument adds a file. Used by the examples and their tests.
set -eu
out=$1; shift
busybox=${BUSYBOX:-$(command -v busybox || echo /bin/busybox)}
[ -x "$busybox" ] || { echo "busybox-rootfs.sh: busybox not found (apt-get install busybox-static)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root="$tmp/rootfs"
mkdir -p "$root/bin" "$root/usr/bin" "$root/etc" "$root/tmp" "$root/proc" "$root/sys" "$root/dev" "$root/var"
cp "$busybox" "$root/bin/busybox"
for app in sh echo cat ls sleep httpd wget ps kill true false env date mkdir rm touch grep test seq head tail wc; do
  ln -s busybox "$root/bin/$app"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"
for kv in "$@"; do
  path=${kv%%=*}; content=${kv#*=}
  mkdir -p "$root/$(dirname "$path")"
  printf '%s\n' "$content" > "$root/$path"
done
mkdir -p "$(dirname "$out")"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf - . | gzip -n -9 > "$out.tmp"
mv "$out.tmp" "$out"
