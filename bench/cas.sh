#!/bin/sh
# bench/cas.sh — Stellarium (engine/cas) side by side with cp + sync and
# casync make.
#
#   SIZE=2G bench/cas.sh          # default 2G; SIZE=512M for a quicker run
#   WORK=/var/tmp/x KEEP=1 ...    # where data goes (needs ~5×SIZE free); keep it
#   PUT_ONLY=1 SIZE=512M ...      # only the put vs cp + sync rows (issue 17)
#   BASE=main ...                 # also time the put of casbench built from
#                                 # that git revision, in the same rounds
#   ROUNDS=3 ...                  # rounds of put vs cp + sync (default 3)
#
# Needs: go (builds bench/cmd/casbench), casync, coreutils. Data is generated
# (incompressible, ChaCha8), so runs are repeatable. Prints one table.
set -eu
cd "$(dirname "$0")/.."
SIZE=$(numfmt --from=iec "${SIZE:-2G}")
WORK=${WORK:-$(mktemp -d /var/tmp/casbench.XXXXXX)}
mkdir -p "$WORK"
[ -n "${KEEP:-}" ] || trap 'rm -rf "$WORK"' EXIT
[ -n "${PUT_ONLY:-}" ] || command -v casync >/dev/null || { echo "casync not installed (apt-get install casync)" >&2; exit 1; }

B="$WORK/casbench"
go build -o "$B" ./bench/cmd/casbench
BB=
if [ -n "${BASE:-}" ]; then
  BB="$WORK/casbench-base"
  git archive --prefix=base/ "$BASE" | tar -x -C "$WORK"
  (cd "$WORK/base" && go build -o "$BB" ./bench/cmd/casbench)
  rm -rf "$WORK/base"
fi

field() { sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p"; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
mibps() { awk -v n="$1" -v s="$2" 'BEGIN { printf "%.0f", n / 1048576 / s }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", 100 * a / b }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo "generating $(numfmt --to=iec "$SIZE") of data in $WORK ..." >&2
"$B" gen -size "$SIZE" -seed 1 -o "$WORK/v1.img" >/dev/null
if [ -z "${PUT_ONLY:-}" ]; then
  "$B" mutate -in "$WORK/v1.img" -mode clustered -seed 2 -o "$WORK/v2.img" >/dev/null
  "$B" mutate -in "$WORK/v1.img" -mode scattered -seed 3 -o "$WORK/v3.img" >/dev/null
fi
cat "$WORK"/v*.img >/dev/null # page cache

# 0. put into an empty store vs cp + sync of the same file (issue 17: 3.25x
# before packs, 4.2 s vs 1.3 s for 512 MiB). Side by side in each round,
# dirty pages flushed before each timed command; the ratio of each round is
# printed, then the median and the spread.
echo "put vs cp + sync, ${ROUNDS:-3} rounds ..." >&2
ratios=; fratios=; bratios=; rows=
for i in $(seq "${ROUNDS:-3}"); do
  sync
  t0=$(now); cp "$WORK/v1.img" "$WORK/cp.img" && sync; t1=$(now)
  cp_s=$(secs "$t0" "$t1"); rm -f "$WORK/cp.img"; sync
  t0=$(now); "$B" put -store "$WORK/put$i" "$WORK/v1.img" >/dev/null; t1=$(now)
  put_s=$(secs "$t0" "$t1"); rm -rf "$WORK/put$i"
  # The same copy made durable by fsync of that file alone (sync FILE):
  # plain sync also flushes other writers' dirty pages on a shared machine.
  t0=$(now); cp "$WORK/v1.img" "$WORK/cp.img" && sync "$WORK/cp.img"; t1=$(now)
  cpf_s=$(secs "$t0" "$t1"); rm -f "$WORK/cp.img"; sync
  r=$(ratio "$put_s" "$cp_s"); ratios="$ratios $r"
  fr=$(ratio "$put_s" "$cpf_s"); fratios="$fratios $fr"
  row=$(printf 'round %s: cp+sync %ss, cp+sync FILE %ss, put %ss (%sx, %sx)' "$i" "$cp_s" "$cpf_s" "$put_s" "$r" "$fr")
  if [ -n "$BB" ]; then
    sync
    t0=$(now); "$BB" put -store "$WORK/base$i" "$WORK/v1.img" >/dev/null; t1=$(now)
    base_s=$(secs "$t0" "$t1"); rm -rf "$WORK/base$i"
    br=$(ratio "$base_s" "$cp_s"); bratios="$bratios $br"
    row="$row, put of $BASE ${base_s}s (${br}x)"
  fi
  rows="$rows$row
"
done
stats() { echo "$1" | tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { printf "%s (%s-%s)", a[int((NR + 1) / 2)], a[1], a[NR] }'; }
put_row=$(stats "$ratios")
putf_row=$(stats "$fratios")
base_row=
[ -z "$bratios" ] || base_row=$(stats "$bratios")
if [ -n "${PUT_ONLY:-}" ]; then
  printf '\nput into an empty store vs cp + sync, %s of incompressible data, %s cores\n\n%s' "$(numfmt --to=iec "$SIZE")" "$(nproc)" "$rows"
  printf '%-44s %s\n' "put / (cp + sync), median (spread)" "${put_row}x (target <= 2.0)"
  printf '%-44s %s\n' "put / (cp + sync FILE), median (spread)" "${putf_row}x"
  [ -z "$base_row" ] || printf '%-44s %s\n' "same, casbench of $BASE" "${base_row}x"
  printf '%-44s %s\n' "before packs (issue 17, 512 MiB)" "3.25x (4.2 s vs 1.3 s)"
  exit 0
fi

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
printf '%-44s %14s %14s %7sx\n' "put / (cp + sync), median (spread)" "" "" "$put_row"
printf '%-44s %14s %14s %7sx\n' "put / (cp + sync FILE), median (spread)" "" "" "$putf_row"
[ -z "$base_row" ] || printf '%-44s %14s %14s %7sx\n' "same, casbench of $BASE" "" "" "$base_row"
printf '%-44s %14s %14s %8s\n' "before packs (issue 17, 512 MiB)" "4.2s" "1.3s" "3.25x"
printf '\n%s' "$rows"
printf '\n(get and cat: best of 3; last ratio: cat time / get time, target >= 0.8;\n put / (cp + sync): target <= 2.0)\n'
