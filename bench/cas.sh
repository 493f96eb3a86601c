#!/bin/sh
# bench/cas.sh — Stellarium (engine/cas) side by side with casync make.
#
#   SIZE=2G bench/cas.sh          # default 2G; SIZE=512M for a quicker run
#   WORK=/var/tmp/x KEEP=1 ...    # where data goes (needs ~5×SIZE free); keep it
#
# Needs: go (builds bench/cmd/casbench), casync, coreutils. Data is generated
# (incompressible, ChaCha8), so runs are repeatable. Prints one table.
set -eu
cd "$(dirname "$0")/.."
SIZE=$(numfmt --from=iec "${SIZE:-2G}")
WORK=${WORK:-$(mktemp -d /var/tmp/casbench.XXXXXX)}
mkdir -p "$WORK"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
command -v casync >/dev/null || { echo "casync not installed (apt-get install casync)" >&2; exit 1; }

B="$WORK/casbench"
go build -o "$B" ./bench/cmd/casbench

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mibps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / 1048576 / s }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "generating $(numfmt --to=iec "$SIZE") of data in $WORK ..." >&2
"$B" gen -size "$SIZE" -seed 1 -o "$WORK/v1.img" >/dev/null
"$B" mutate -in "$WORK/v1.img" -mode clustered -seed 2 -o "$WORK/v2.img" >/dev/null
"$B" mutate -in "$WORK/v1.img" -mode scattered -seed 3 -o "$WORK/v3.img" >/dev/null
cat "$WORK"/v1.img "$WORK"/v2.img "$WORK"/v3.img >/dev/null # page cache

# 1. Chunking + hashing throughput.
echo "chunk+hash ..." >&2
scan=$("$B" scan "$WORK/v1.img")
scan_mibps=$(echo "$scan" | field MiBps | cut -d. -f1)
t0=$(now)
casync make --store="$WORK/castr" "$WORK/v1.caibx" "$WORK/v1.img" >/dev/null
t1=$(now)
casync_mibps=$(mibps "$SIZE" "$(secs "$t0" "$t1")")
put1=$("$B" put -store "$WORK/store" "$WORK/v1.img")
put_mibps=$(echo "$put1" | field MiBps | cut -d. -f1)
ref1=$(echo "$put1" | field ref)

# 2. Clustered change (16 runs, 1 %, 7 bytes inserted at the front).
echo "clustered change ..." >&2
put2=$("$B" put -store "$WORK/store" "$WORK/v2.img")
new2=$(echo "$put2" | field newBytes)
casync make --store="$WORK/castr" "$WORK/v2.caibx" "$WORK/v2.img" >/dev/null
cnew2=$("$B" caibx-new "$WORK/v1.caibx" "$WORK/v2.caibx" | field newBytes)

# 3. Scattered change (1 % in 4 KiB runs).
echo "scattered change ..." >&2
put3=$("$B" put -store "$WORK/store" "$WORK/v3.img")
new3=$(echo "$put3" | field newBytes)
casync make --store="$WORK/castr" "$WORK/v3.caibx" "$WORK/v3.img" >/dev/null
cnew3=$("$B" caibx-new "$WORK/v1.caibx" "$WORK/v3.caibx" | field newBytes)

# 4. Reassembly: cas get vs cat from page cache, both into a new file, best
# of 3 each (the kernel's page-cache write path varies by 2x from run to run
# here). Dirty pages are flushed before each timed run so neither pays for
# the other's writeback.
echo "get vs cat ..." >&2
cat "$WORK/v1.img" >/dev/null
cat_s=; get_s=
for _ in 1 2 3; do
  sync
  t0=$(now); cat "$WORK/v1.img" >"$WORK/out.cat"; t1=$(now)
  s=$(secs "$t0" "$t1"); rm -f "$WORK/out.cat"
  cat_s=$(awk -v a="$s" -v b="${cat_s:-1e9}" 'BEGIN { printf "%.3f", (a < b ? a : b) }')
  sync
  s=$(printf %.3f "$("$B" get -store "$WORK/store" -o "$WORK/out.get" "$ref1" | field seconds)")
  cmp -s "$WORK/v1.img" "$WORK/out.get" || { echo "cas get output differs!" >&2; exit 1; }
  rm -f "$WORK/out.get"
  get_s=$(awk -v a="$s" -v b="${get_s:-1e9}" 'BEGIN { printf "%.3f", (a < b ? a : b) }')
done
sync
t0=$(now); casync extract --store="$WORK/castr" "$WORK/v1.caibx" "$WORK/out.casync" >/dev/null; t1=$(now)
cx_s=$(secs "$t0" "$t1"); rm -f "$WORK/out.casync"

printf '\nStellarium vs casync, %s of incompressible data, %s cores\n\n' "$(numfmt --to=iec "$SIZE")" "$(nproc)"
printf '%-44s %14s %14s %8s\n' "" "stellarium" "casync" "ratio"
printf '%-44s %10s MiB/s %10s MiB/s %7sx\n' "chunk+hash (no store) / casync make" "$scan_mibps" "$casync_mibps" "$(ratio "$scan_mibps" "$casync_mibps")"
printf '%-44s %10s MiB/s %10s MiB/s %7sx\n' "put into an empty store / casync make" "$put_mibps" "$casync_mibps" "$(ratio "$put_mibps" "$casync_mibps")"
printf '%-44s %13s%% %13s%% %8s\n' "clustered 1% + insert: new bytes (<= 3%)" "$(pct "$new2" "$SIZE")" "$(pct "$cnew2" "$SIZE")" "$(ratio "$new2" "$cnew2")"
printf '%-44s %13s%% %13s%% %8s\n' "scattered 4 KiB runs: new bytes (<= casync)" "$(pct "$new3" "$SIZE")" "$(pct "$cnew3" "$SIZE")" "$(ratio "$new3" "$cnew3")"
printf '%-44s %12ss %12ss\n' "get into a file / casync extract" "$get_s" "$cx_s"
printf '%-44s %12ss %14s %7sx\n' "cat into a file (page cache)" "$cat_s" "" "$(ratio "$cat_s" "$get_s")"
printf '\n(get and cat: best of 3; last ratio: cat time / get time, target >= 0.8)\n'
