#!/usr/bin/env bash
# Bundle benchmarks (issues: foundation, 17, 21). Makes a test stack of
# realistic size (several images, SIZE_MB in all, default 2048:
# incompressible and compressible parts), then times side by side in one
# run, printing ratios:
#   volt bundle create   vs  zip -0 -r   and   tar -c | zstd -1 -T0
#   volt bundle verify   vs  b3sum --num-threads 2  (same bytes)
#   volt bundle inspect  on the big bundle vs on a tiny one
# and reports create's peak RSS. Then, on a Constellation with ONE rootfs
# tar of BIG_MB (default 1024) and a small image (issues 21 and 17),
# alternating the tools run by run and taking medians of RUNS (default 5):
#   volt bundle create   vs  cp -r + sync of the copied files
#   volt bundle verify   vs  b3sum --num-threads 2  (one big entry)
# With BASE_BIN=path/to/older/volt, those two rows also time that binary
# ("today") beside this one ("new"). Needs: zip, zstd, b3sum, GNU time (or /proc).
#   bash bench/bundle.sh            # SIZE_MB=512 BIG_MB=256 bash bench/bundle.sh for a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
SIZE_MB=${SIZE_MB:-2048}
work=${BENCH_DIR:-/tmp/volt-bench-bundle}
volt=${VOLT_BIN:-$PWD/bin/volt}
[ -x "$volt" ] || make -s bin/volt
rm -rf "$work"; mkdir -p "$work/stack/images"
export VOLT_ROOT="$work/root" VOLT_CONFIG="$work/config.yaml"

# Four images: two incompressible (random, like compressed layers), two
# compressible (text-like) — each stored as a .tar so volt embeds it as is.
per=$((SIZE_MB / 4))
mk() { # name kind
  local d="$work/src/$1"; mkdir -p "$d/usr" "$d/bin"
  if [ "$2" = random ]; then
    head -c "$((per * 1024 * 1024))" /dev/urandom > "$d/usr/blob"
  else
    (yes "volt benchmark line of compressible text, with some numbers 1234567890" || true) | head -c "$((per * 1024 * 1024))" > "$d/usr/text"
  fi
  tar -C "$d" -cf "$work/stack/images/$1.tar" .
}
mk api random; mk web random; mk docs text; mk logs text
cat > "$work/stack/volt-compose.yaml" <<YAML
version: "1"
name: bench
containers:
  api:  {image: images/api.tar}
  web:  {image: images/web.tar}
  docs: {image: images/docs.tar}
  logs: {image: images/logs.tar}
YAML
mkdir -p "$work/tiny/images"; head -c 4096 /dev/urandom > "$work/tiny/blob"; tar -C "$work/tiny" -cf "$work/tiny/images/t.tar" blob
printf 'version: "1"\nname: tiny\ncontainers:\n  t: {image: images/t.tar}\n' > "$work/tiny/volt-compose.yaml"
sync

now() { date +%s.%N; }
t() { local s e; s=$(now); "$@" >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc -l; }
best() { local b=999999 x; for _ in 1 2 3; do x=$(t "$@"); b=$(echo "if ($x < $b) $x else $b" | bc -l); done; echo "$b"; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
mbps() { echo "scale=0; $SIZE_MB / $1" | bc -l; }

cat "$work"/stack/images/*.tar > /dev/null   # warm the page cache for everyone

rm -f "$work/out.vbundle"
c_volt=$(best bash -c "rm -f $work/out.vbundle; $volt bundle create $work/stack -o $work/out.vbundle")
c_zip=$(best bash -c "rm -f $work/out.zip; cd $work/stack && zip -q -0 -r $work/out.zip .")
# volt fsyncs the bundle before publishing it (atomic, durable); the same for zip:
c_zips=$(best bash -c "rm -f $work/out.zip; cd $work/stack && zip -q -0 -r $work/out.zip . && sync -f $work/out.zip")
c_zstd=$(best bash -c "tar -C $work/stack -c . | zstd -q -1 -T0 -f -o $work/out.tar.zst")
rss=$( { /usr/bin/time -f '%M' "$volt" bundle create "$work/stack" -o "$work/rss.vbundle" >/dev/null 2>/dev/null; } 2>&1 || true)
if ! [[ "$rss" =~ ^[0-9]+$ ]]; then
  # No GNU time: sample VmHWM from /proc while it runs.
  rm -f "$work/rss.vbundle"; "$volt" bundle create "$work/stack" -o "$work/rss.vbundle" & pid=$!; rss=0
  while kill -0 $pid 2>/dev/null; do h=$(awk '/VmHWM/{print $2}' /proc/$pid/status 2>/dev/null || echo 0); [ "${h:-0}" -gt "$rss" ] && rss=$h; sleep 0.02; done
fi
v_volt=$(best "$volt" bundle verify "$work/out.vbundle")
v_b3=$(best b3sum --num-threads 2 "$work"/stack/images/*.tar)
(cd "$work/tiny" && "$volt" bundle create -o "$work/tiny.vbundle" >/dev/null 2>&1)
i_big=$(best "$volt" bundle inspect "$work/out.vbundle")
i_tiny=$(best "$volt" bundle inspect "$work/tiny.vbundle")
identical=no; cmp -s "$work/out.vbundle" "$work/rss.vbundle" && identical=yes

printf '\nBundle benchmarks: %d MiB in 4 images (2 random, 2 text), best of 3\n' "$SIZE_MB"
printf '%-40s %8s s  %6s MiB/s\n' "volt bundle create" "$c_volt" "$(mbps "$c_volt")"
printf '%-40s %8s s  %6s MiB/s   volt/zip = %s (target <= 1.0)\n' "zip -0 -r" "$c_zip" "$(mbps "$c_zip")" "$(ratio "$c_volt" "$c_zip")"
printf '%-40s %8s s  %6s MiB/s   volt/(zip+fsync) = %s\n' "zip -0 -r, then fsync (durable like volt)" "$c_zips" "$(mbps "$c_zips")" "$(ratio "$c_volt" "$c_zips")"
printf '%-40s %8s s  %6s MiB/s   volt/zstd = %s\n' "tar -c | zstd -1 -T0" "$c_zstd" "$(mbps "$c_zstd")" "$(ratio "$c_volt" "$c_zstd")"
printf '%-40s %8s s  %6s MiB/s\n' "volt bundle verify" "$v_volt" "$(mbps "$v_volt")"
printf '%-40s %8s s  %6s MiB/s   b3sum/volt throughput = %s (target >= 0.9 means volt >= 0.9x b3sum)\n' "b3sum --num-threads 2" "$v_b3" "$(mbps "$v_b3")" "$(ratio "$v_b3" "$v_volt")"
printf '%-40s %8s s   (tiny bundle: %s s; target < 0.030 s)\n' "volt bundle inspect (big)" "$i_big" "$i_tiny"
printf '%-40s %8s KiB (target < 102400)\n' "volt bundle create peak RSS" "$rss"
printf '%-40s %8s\n' "two creates byte-identical" "$identical"

# --- One big image (issues 21 and 17): create vs cp -r + sync, verify vs b3sum.
BIG_MB=${BIG_MB:-1024}
RUNS=${RUNS:-5}
base=${BASE_BIN:-}
big="$work/big"; mkdir -p "$big/images" "$work/bigsrc/usr"
head -c "$((BIG_MB * 1024 * 1024 - 20480))" /dev/urandom > "$work/bigsrc/usr/blob"
tar -C "$work/bigsrc" -cf "$big/images/rootfs.tar" .; rm -rf "$work/bigsrc"
cp "$work/tiny/images/t.tar" "$big/images/small.tar"
printf 'version: "1"\nname: big\ncontainers:\n  app: {image: images/rootfs.tar}\n  side: {image: images/small.tar}\n' > "$big/volt-compose.yaml"
sync; cat "$big"/images/*.tar > /dev/null
median() { sort -n | awk '{a[NR]=$1} END {printf "%.3f", a[int((NR+1)/2)]}'; }
spread() { sort -n | awk '{a[NR]=$1} END {printf "%.2f-%.2f", a[1], a[NR]}'; }
declare -A T
for i in $(seq "$RUNS"); do
  # cp -r + sync: the copied files fsynced one by one (volt fsyncs its one
  # output file), not a machine-wide sync that would also flush other work.
  T[cp]+="$(t bash -c "rm -rf $work/cp; cp -r $big $work/cp && sync \$(find $work/cp -type f)") "
  T[new]+="$(t bash -c "rm -f $work/big-new.vbundle; $volt bundle create $big -o $work/big-new.vbundle") "
  [ -n "$base" ] && T[base]+="$(t bash -c "rm -f $work/big-base.vbundle; $base bundle create $big -o $work/big-base.vbundle") "
  T[vb3]+="$(t b3sum --num-threads 2 "$big/images/rootfs.tar") "
  T[vnew]+="$(t "$volt" bundle verify "$work/big-new.vbundle") "
  [ -n "$base" ] && T[vbase]+="$(t "$base" bundle verify "$work/big-new.vbundle") "
done
m() { tr ' ' '\n' <<<"${T[$1]}" | grep . | median; }
r() { tr ' ' '\n' <<<"${T[$1]}" | grep . | spread; }
printf '\nOne %d MiB rootfs tar + a small image, median of %d runs alternated (range in brackets)\n' "$BIG_MB" "$RUNS"
printf '%-40s %8s s [%s]\n' "cp -r + sync (copied files)" "$(m cp)" "$(r cp)"
printf '%-40s %8s s [%s]   volt/(cp+sync) = %s (target <= 1.2)\n' "volt bundle create (new)" "$(m new)" "$(r new)" "$(ratio "$(m new)" "$(m cp)")"
[ -n "$base" ] && printf '%-40s %8s s [%s]   volt/(cp+sync) = %s\n' "volt bundle create (today: $base)" "$(m base)" "$(r base)" "$(ratio "$(m base)" "$(m cp)")"
printf '%-40s %8s s [%s]\n' "b3sum --num-threads 2 (the big tar)" "$(m vb3)" "$(r vb3)"
printf '%-40s %8s s [%s]   throughput vs b3sum = %s (target >= 0.9)\n' "volt bundle verify, one big entry (new)" "$(m vnew)" "$(r vnew)" "$(ratio "$(m vb3)" "$(m vnew)")"
[ -n "$base" ] && printf '%-40s %8s s [%s]   throughput vs b3sum = %s\n' "volt bundle verify (today)" "$(m vbase)" "$(r vbase)" "$(ratio "$(m vb3)" "$(m vbase)")"
if [ -n "$base" ]; then
  cmp -s "$work/big-new.vbundle" "$work/big-base.vbundle" && echo "today's and the new create: byte-identical" || echo "today's and the new create DIFFER"
fi
