#!/usr/bin/env bash
# Deploy benchmarks (issue: deploy), side by side in one run:
#  1. import of a SIZE_MB (default 1024) bundle: wall time and peak RSS of
#     `volt bundle import --no-start` vs `unzip` + `tar -x` of the same content;
#  2. `volt ps` with 50 running workloads (target < 100 ms).
# The start-latency comparison with plain systemd-nspawn is bench/nspawn-start.sh.
# Needs root, systemd-nspawn, busybox-static, tini, unzip, GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
SIZE_MB=${SIZE_MB:-1024}
WORKLOADS=${WORKLOADS:-50}
work=${BENCH_DIR:-/tmp/volt-bench-deploy}
make -s build
export PATH="$PWD/bin:$PATH" VOLT_PLUGIN_PATH="$PWD/bin"
rm -rf "$work"; mkdir -p "$work/stack/images" "$work/src/usr/share/blob"
export VOLT_ROOT="$work/root" VOLT_CONFIG="$work/config.yaml"
now() { date +%s.%N; }
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# 1. A rootfs image of SIZE_MB: busybox plus incompressible files.
examples/busybox-rootfs.sh "$work/base.tar.gz" >/dev/null
tar -C "$work/src" -xzf "$work/base.tar.gz"
n=$((SIZE_MB / 64))
for i in $(seq 1 "$n"); do head -c $((64 << 20)) /dev/urandom > "$work/src/usr/share/blob/$i"; done
tar -C "$work/src" -cf "$work/stack/images/big.tar" .
cat > "$work/stack/volt-compose.yaml" <<YAML
version: "1"
name: big
containers:
  big: {image: images/big.tar, command: ["/bin/sleep", "1000"]}
YAML
volt bundle create "$work/stack" -o "$work/big.vbundle" >/dev/null 2>&1
sync; cat "$work/big.vbundle" > /dev/null

rm -rf "$work/root"
s=$(now); rss=$( { /usr/bin/time -f '%M' volt bundle import --no-start "$work/big.vbundle" >/dev/null 2>"$work/import.err"; } 2>&1 | tail -1 ); e=$(now)
rss=$(tail -1 "$work/import.err" 2>/dev/null | grep -E '^[0-9]+$' || echo "$rss")
t_volt=$(echo "$e - $s" | bc -l)
rm -rf "$work/x"; mkdir -p "$work/x/root"
s=$(now); (cd "$work/x" && unzip -q "$work/big.vbundle" && tar -C root -xf images/big/linux-amd64.tar); e=$(now)
t_base=$(echo "$e - $s" | bc -l)
volt stack destroy big >/dev/null 2>&1 || true

# 2. ps with many workloads.
cat > "$work/stack/volt-compose.yaml" <<YAML
version: "1"
name: many
containers:
YAML
for i in $(seq 1 "$WORKLOADS"); do
  echo "  w$i: {image: images/base.tar.gz, command: [\"/bin/sleep\", \"1000\"]}" >> "$work/stack/volt-compose.yaml"
done
rm -f "$work/stack/images/big.tar"; cp "$work/base.tar.gz" "$work/stack/images/base.tar.gz"
volt bundle create "$work/stack" -o "$work/many.vbundle" >/dev/null 2>&1
volt bundle import "$work/many.vbundle" >/dev/null 2>&1
running=$(volt ps -o json | grep -c '"status": "running"' || true)
ps_ms=$(for i in $(seq 1 9); do s=$(now); volt ps >/dev/null; e=$(now); echo "($e - $s) * 1000" | bc -l; done | med)
volt stack destroy many >/dev/null 2>&1 || true

printf '\nDeploy benchmarks\n'
printf '%-46s %8.2f s\n' "volt bundle import --no-start (${SIZE_MB} MiB)" "$t_volt"
printf '%-46s %8.2f s   volt/baseline = %.2f (target <= 1.3)\n' "unzip + tar -x of the same content" "$t_base" "$(echo "$t_volt / $t_base" | bc -l)"
printf '%-46s %8s KiB (target < 102400)\n' "volt import peak RSS (CLI process)" "$rss"
printf '%-46s %8.1f ms  (%s of %s running; target < 100)\n' "volt ps, median of 9" "$ps_ms" "$running" "$WORKLOADS"
