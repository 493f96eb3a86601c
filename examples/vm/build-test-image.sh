#!/bin/sh
# build-test-image.sh OUTDIR — build Volt's VM test image at test time, from
# Debian packages, with nothing downloaded but the kernel package.
#
# Writes into OUTDIR:
#   vmlinuz      the kernel of Debian's linux-image-amd64 (the linux-image-6.1.0-*-amd64 it depends on)
#   initrd.img   a busybox-static initramfs (cpio newc, gzip -1) whose /init:
#                  - mounts proc, sys, dev; loads the ACPI button driver;
#                  - prints a marker line on the console (ttyS0): VOLT-VM-READY,
#                    or the value of volt.marker=WORD on the kernel command line;
#                  - with volt.exit=N: exits at once with code N (0: poweroff;
#                    N>0: writes N to the isa-debug-exit port 0xf4, which makes
#                    QEMU exit with 2N+1; without that device it powers off);
#                  - otherwise waits for the ACPI power button (QMP
#                    system_powerdown) and powers off, printing VOLT-VM-POWEROFF;
#                    with volt.ignore-poweroff=1 it prints VOLT-VM-IGNORING-POWEROFF
#                    and keeps running (a guest that ignores power-off);
#                  - starts a shell on the serial console (volt.shell=0 turns it off).
#   disk.raw     a tiny raw disk (1 MiB, a label on its first sector) for disk tests
#   cmdline      the suggested kernel command line
#
# The kernel package is cached in $VOLT_VM_CACHE (default /var/cache/volt-test/kernel)
# so repeated runs do not download it again. Needs apt-get (Debian mirrors
# reachable), dpkg-deb, cpio, gzip and busybox-static. Does not need root.
set -eu

out=${1:?usage: build-test-image.sh OUTDIR}
cache=${VOLT_VM_CACHE:-/var/cache/volt-test/kernel}
busybox=${BUSYBOX:-/bin/busybox}

mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

if ! "$busybox" --list >/dev/null 2>&1; then
  echo "build-test-image: $busybox is not busybox (install busybox-static)" >&2
  exit 1
fi
case $(file -b "$busybox" 2>/dev/null || echo static) in
  *dynamically*) echo "build-test-image: $busybox is dynamically linked (install busybox-static)" >&2; exit 1 ;;
esac

# The concrete kernel package linux-image-amd64 depends on.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
if [ -z "$pkg" ]; then
  # An offline run with a cached kernel still works.
  pkg=$(ls "$cache" 2>/dev/null | sed -n 's/^\(linux-image-[0-9][^_]*-amd64\)_.*\.deb$/\1/p' | sort | tail -1)
fi
if [ -z "$pkg" ]; then
  echo "build-test-image: cannot resolve linux-image-amd64 (apt-get update?) and no cached kernel in $cache" >&2
  exit 1
fi

kdir=$cache/$pkg
if [ ! -f "$kdir/vmlinuz" ] || [ ! -f "$kdir/button.ko" ]; then
  deb=$(ls "$cache"/"$pkg"_*.deb 2>/dev/null | head -1 || true)
  if [ -z "$deb" ]; then
    dl=$(mktemp -d "$cache/.dl.XXXXXX")
    (cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>"$dl/err") || {
      cat "$dl/err" >&2; rm -rf "$dl"; echo "build-test-image: apt-get download $pkg failed" >&2; exit 1; }
    for f in "$dl"/*.deb; do mv -f "$f" "$cache/"; done
    rm -rf "$dl"
    deb=$(ls "$cache"/"$pkg"_*.deb | head -1)
  fi
  x=$(mktemp -d "$cache/.x.XXXXXX")
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards './boot/vmlinuz-*' './lib/modules/*/kernel/drivers/acpi/button.ko'
  mkdir -p "$x/out"
  cp "$x"/boot/vmlinuz-* "$x/out/vmlinuz"
  cp "$x"/lib/modules/*/kernel/drivers/acpi/button.ko "$x/out/button.ko"
  rm -rf "$kdir"
  mv "$x/out" "$kdir"
  rm -rf "$x"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/volt-initrd.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/lib/modules"
cp "$busybox" "$root/bin/busybox"
for app in $("$busybox" --list); do
  [ "$app" = busybox ] || ln -s busybox "$root/bin/$app"
done
cp "$kdir/button.ko" "$root/lib/modules/button.ko"
cat >"$root/init" <<'EOF'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1
marker=VOLT-VM-READY code= ignore= shell=1
for a in $(cat /proc/cmdline); do
  case $a in
    volt.marker=*) marker=${a#volt.marker=} ;;
    volt.exit=*) code=${a#volt.exit=} ;;
    volt.ignore-poweroff=1) ignore=1 ;;
    volt.shell=0) shell= ;;
  esac
done
insmod /lib/modules/button.ko 2>/dev/null
btn=/sys/firmware/acpi/interrupts/ff_pwr_btn
presses() { set -- $(cat $btn 2>/dev/null || echo 0); echo "$1"; }
seen=$(presses)
echo "$marker"
if [ -n "$code" ]; then
  if [ "$code" != 0 ]; then
    printf "\\$(printf %o "$code")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
  fi
  poweroff -f
fi
if [ -n "$shell" ]; then
  (while :; do setsid cttyhack sh -l </dev/ttyS0 >/dev/ttyS0 2>&1; done) &
fi
while :; do
  sleep 0.2
  now=$(presses)
  [ "$now" = "$seen" ] && continue
  seen=$now
  if [ -n "$ignore" ]; then
    echo VOLT-VM-IGNORING-POWEROFF
    continue
  fi
  echo VOLT-VM-POWEROFF
  sync
  poweroff -f
done
EOF
chmod 0755 "$root/init"
find "$root" -exec touch -h -d @0 {} +
(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --reproducible -R 0:0 --quiet) | gzip -1 -n >"$work/initrd.img"

# A tiny raw disk: 1 MiB with a label in its first sector.
printf 'VOLT-TEST-DISK\n' >"$work/disk.raw"
truncate -s 1M "$work/disk.raw"

printf 'console=ttyS0 quiet panic=-1\n' >"$work/cmdline"

# Publish: each file renamed into place.
for f in initrd.img disk.raw cmdline; do
  mv -f "$work/$f" "$out/.$f.tmp" && mv -f "$out/.$f.tmp" "$out/$f"
done
cp "$kdir/vmlinuz" "$out/.vmlinuz.tmp" && mv -f "$out/.vmlinuz.tmp" "$out/vmlinuz"
echo "$out"
