#!/usr/bin/env bash
# GitOps benchmark (issue 15), side by side in one run, for examples/hello:
#   1. webhook → new version running: a GitHub-style signed webhook to
#      `volt gitops serve` (poll interval 1h), until the new commit runs;
#   2. the bundle's own create + import (`volt bundle create` then
#      `volt bundle import --force`) of the same tree;
#   3. the GitOps overhead = 1 − 2 (fetch, tree checkout, history, webhook).
#      Target: < 1 s.
# REPS rounds (default 5), medians. Timings on a shared machine are noisy:
# compare the columns of one run, not runs with each other.
# Needs root, systemd-nspawn, busybox-static, git (git daemon), curl, bc, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
REPS=${REPS:-5}
work=${BENCH_DIR:-/tmp/volt-bench-gitops}
make -s build
export PATH="$PWD/bin:$PATH" VOLT_PLUGIN_PATH="$PWD/bin"
rm -rf "$work"; mkdir -p "$work/git"
export VOLT_ROOT="$work/root" VOLT_CONFIG="$work/config.yaml"
now() { date +%s.%N; }
med() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
g() { git -c user.name=bench -c user.email=bench@volt.invalid "$@"; }

# A repository holding examples/hello, served by git daemon on loopback.
examples/hello/make-image.sh >/dev/null
git init -q --bare -b main "$work/git/hello.git"
cp -r examples/hello "$work/work"
(cd "$work/work" && g init -q -b main && g add -A && g commit -qm v0 && g push -q "$work/git/hello.git" main)
port=$(( 20000 + RANDOM % 20000 ))
setsid git daemon --reuseaddr --export-all --base-path="$work/git" --listen=127.0.0.1 --port="$port" "$work/git" \
  >"$work/daemon.log" 2>&1 &
daemon=$!
secret="bench-secret"; printf '%s\n' "$secret" > "$work/hook.secret"
cleanup() {
  volt gitops serve --stop >/dev/null 2>&1 || true
  volt stack destroy hello >/dev/null 2>&1 || true
  kill -- -"$daemon" 2>/dev/null || kill "$daemon" 2>/dev/null || true
}
trap cleanup EXIT
sleep 0.3

volt gitops add hello --repo "git://127.0.0.1:$port/hello.git" --interval 1h --webhook-secret-file "$work/hook.secret" -q
addr=$(volt gitops serve --detach --addr 127.0.0.1:0 -o json | sed -n 's/.*"addr": "\(.*\)".*/\1/p')
deployed() { volt gitops status hello -o json | sed -n 's/.*"deployed": "\([0-9a-f]*\)".*/\1/p'; }
for _ in $(seq 1 300); do [ -n "$(deployed)" ] && break; sleep 0.1; done
[ -n "$(deployed)" ] || { echo "first deployment did not happen; see $VOLT_ROOT/gitops/serve.log" >&2; exit 1; }

body='{"ref":"refs/heads/main"}'
sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)"
: > "$work/e2e"; : > "$work/inside"; : > "$work/plain"
for i in $(seq 1 "$REPS"); do
  # 1. webhook → running.
  (cd "$work/work" && echo "greeting = round $i" > conf/hello.conf && g commit -qam "round $i" && g push -q "$work/git/hello.git" main)
  want=$(cd "$work/work" && git rev-parse HEAD)
  s=$(now)
  curl -fsS -o /dev/null -X POST -H "X-GitHub-Event: push" -H "X-GitHub-Delivery: bench-$i-$RANDOM" \
    -H "X-Hub-Signature-256: $sig" --data "$body" "http://$addr/hooks/hello"
  until [ "$(deployed)" = "$want" ]; do sleep 0.02; done
  e=$(now)
  echo "$e - $s" | bc -l >> "$work/e2e"
  volt gitops history hello -o json | tr -d ' ,' | awk -F: '/"durationMs"/ {d=$2} END {print d/1000}' >> "$work/inside"

  # 2. the bundle's own create + import of the same tree.
  s=$(now)
  volt bundle create "$work/work" -o "$work/plain.vbundle" >/dev/null 2>&1
  volt bundle import --force "$work/plain.vbundle" --name hello >/dev/null 2>&1
  e=$(now)
  echo "$e - $s" | bc -l >> "$work/plain"
done

e2e=$(med < "$work/e2e"); inside=$(med < "$work/inside"); plain=$(med < "$work/plain")
printf '%-52s %8.3f s\n' "webhook → new version running (median of $REPS)" "$e2e"
printf '%-52s %8.3f s\n' "  of which gitops build+deploy (history durationMs)" "$inside"
printf '%-52s %8.3f s\n' "bundle create + import --force, same tree" "$plain"
printf '%-52s %8.3f s   (target < 1 s)\n' "gitops overhead (webhook path − create+import)" "$(echo "$e2e - $plain" | bc -l)"
printf '%-52s %8.2fx\n' "ratio webhook path / create+import" "$(echo "$e2e / $plain" | bc -l)"
