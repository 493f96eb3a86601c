#!/usr/bin/env bash
# Registry benchmarks (issue 8). One run on loopback, side by side:
#   1. volt bundle push / pull   vs  oras push / pull of the same files, same
#      registry (Debian docker-registry)                   target: <= 1.0x
#   2. re-push of the unchanged bundle: image bytes sent   target: 0
#   3. push of a new version with one image changed: image bytes sent
#                                                          target: that image only
#   4. volt registry serve  vs  docker-registry, same volt push / pull: ratio
# The two pull ratios issue 17 keeps (volt pull vs oras pull && sync; pull
# from serve vs from docker-registry) are taken pairwise: each run times
# both commands back to back, and the median ratio and its spread over the
# REPS runs are printed, with a line "RATIO <name> <median> <min>-<max>"
# that bench/run.sh reads.
# The bundle holds four incompressible images, SIZE MiB in all (default 1024).
#   bash bench/registry.sh              # SIZE=256 bash bench/registry.sh for a quick run
# Needs: docker-registry, unzip, bc, curl; builds oras (v1.3.6) into a cache once.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
SIZE=${SIZE:-1024}
REPS=${REPS:-3}
work=${BENCH_DIR:-/tmp/volt-bench-registry}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/volt-test/oras-v1.3.6
rm -rf "$work"; mkdir -p "$work/stack/images" "$cache"
export VOLT_ROOT="$work/root" VOLT_CONFIG="$work/config.yaml" DOCKER_CONFIG="$work/docker"

# volt: built fresh from this tree (VOLT_BIN overrides); while cmd/volt does not
# wire the registry commands yet, they are wired through a build overlay.
volt=${VOLT_BIN:-}
if [ -z "$volt" ]; then
  volt="$work/volt"
  if grep -q 'registryCommand()' cmd/volt/main.go; then
    go build -o "$volt" ./cmd/volt
  else
    ov="$work/overlay"; mkdir -p "$ov"
    sed 's/^\t\t\tbundleCommand(),$/\t\t\tbundleCommand(),\n\t\t\tregistryCommand(),/' cmd/volt/main.go > "$ov/main.go"
    sed 's/^\t\t\tbundleImportCommand(),$/\t\t\tbundleImportCommand(),\n\t\t\tbundlePushCommand(),\n\t\t\tbundlePullCommand(),/' cmd/volt/bundle.go > "$ov/bundle.go"
    printf '{"Replace":{"%s":"%s","%s":"%s"}}' "$PWD/cmd/volt/main.go" "$ov/main.go" "$PWD/cmd/volt/bundle.go" "$ov/bundle.go" > "$ov/overlay.json"
    go build -overlay "$ov/overlay.json" -o "$volt" ./cmd/volt
  fi
fi
oras=${ORAS:-$cache/oras}
[ -x "$oras" ] || (cd /tmp && GOBIN="$cache" GOFLAGS=-mod=mod go install oras.land/oras/cmd/oras@v1.3.6)

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
waitup() { for _ in $(seq 200); do curl -s -o /dev/null "http://$1/v2/" && return 0; sleep 0.05; done; echo "registry $1 did not start" >&2; exit 1; }

# Debian's docker-registry.
dr=127.0.0.1:$(freeport)
cat > "$work/registry.yml" <<YAML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/dr-data}, delete: {enabled: true}}
http: {addr: $dr}
YAML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 & pids+=($!)
# volt registry serve, own state root.
vs=127.0.0.1:$(freeport)
VOLT_ROOT="$work/serve-root" "$volt" registry serve --addr "$vs" 2>"$work/serve.log" & pids+=($!)
waitup "$dr"; waitup "$vs"
VOLT_ROOT="$work/serve-root" "$volt" registry token --push --expiry 1d 2>/dev/null \
  | "$volt" registry login "$vs" -u token --password-stdin --plain-http -q

# The stack: four incompressible images, each a .tar stored as is.
per=$((SIZE / 4))
mk() { head -c "$((per * 1024 * 1024))" /dev/urandom > "$work/src-$1"; mkdir -p "$work/t/$1"; cp "$work/src-$1" "$work/t/$1/blob"; tar -C "$work/t/$1" -cf "$work/stack/images/$1.tar" blob; rm -rf "$work/t/$1"; }
for i in api web db logs; do mk $i; done
cat > "$work/stack/volt-compose.yaml" <<YAML
version: "1"
name: bench
containers:
  api:  {image: images/api.tar}
  web:  {image: images/web.tar}
  db:   {image: images/db.tar}
  logs: {image: images/logs.tar}
YAML
"$volt" bundle create "$work/stack" -o "$work/v1.vbundle" -q >/dev/null
# v2: the web image changes, the rest stays.
head -c "$((per * 1024 * 1024))" /dev/urandom > "$work/t-web"; mkdir -p "$work/t/web"; mv "$work/t-web" "$work/t/web/blob"
tar -C "$work/t/web" -cf "$work/stack/images/web.tar" blob; rm -rf "$work/t"
"$volt" bundle create "$work/stack" -o "$work/v2.vbundle" -q >/dev/null
web_size=$(unzip -Zl "$work/v2.vbundle" | awk '$NF ~ /web/ && $NF ~ /^images\// {print $4}')

# oras gets the same files: the bundle's entries, bundle.json as config.
files="$work/files"; mkdir -p "$files"; (cd "$files" && unzip -q "$work/v1.vbundle")
oras_args=(--plain-http --artifact-type application/vnd.volt.bundle.v1 --config bundle.json:application/vnd.volt.bundle.manifest.v1+json)
oras_files=()
while read -r f; do
  case "$f" in bundle.json) ;; images/*) oras_files+=("$f:application/vnd.volt.bundle.image.v1.tar") ;; *) oras_files+=("$f") ;; esac
done < <(cd "$files" && find . -type f | sed 's|^\./||' | sort)
sync

now() { date +%s.%N; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
mbps() { echo "scale=0; $SIZE / $1" | bc -l; }
best=""
# pairwise NAME A B: REPS runs of command A then command B, back to back
# (the machine's load hits both alike); sets pa/pb (best times), pmed and
# pspread, and pline="RATIO NAME median min-max" of the per-run ratios A/B.
pairwise() {
  local name=$1 a=$2 b=$3 ra rb s e ratios=() ba=999999 bb=999999
  for rep in $(seq "$REPS"); do
    sync; s=$(now); eval "$a" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; e=$(now); ra=$(echo "$e - $s" | bc -l)
    sync; s=$(now); eval "$b" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; e=$(now); rb=$(echo "$e - $s" | bc -l)
    ratios+=("$(echo "scale=3; $ra / $rb" | bc -l)")
    ba=$(echo "if ($ra < $ba) $ra else $ba" | bc -l); bb=$(echo "if ($rb < $bb) $rb else $bb" | bc -l)
  done
  pa=$ba pb=$bb
  sorted=$(printf '%s\n' "${ratios[@]}" | sort -n)
  pmed=$(echo "$sorted" | sed -n "$(( (REPS + 1) / 2 ))p")
  pspread="$(echo "$sorted" | head -1)-$(echo "$sorted" | tail -1)"
  pline="RATIO $name $pmed $pspread"
}
# timeit CMD...: best wall time of REPS runs; $rep is the run number (fresh repositories).
timeit() { local b=999999 s e x; for rep in $(seq "$REPS"); do sync; s=$(now); eval "$*" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }; e=$(now); x=$(echo "$e - $s" | bc -l); b=$(echo "if ($x < $b) $x else $b" | bc -l); done; best=$b; }

echo "registry bench: ${SIZE} MiB bundle (4 images), best of $REPS, loopback"
echo
# 1. push / pull vs oras against docker-registry (fresh repository per run).
# Cold: volt's sha256 cache ($VOLT_ROOT/cache/sha256, keyed by BLAKE3) emptied first.
timeit 'rm -rf "$VOLT_ROOT/cache"; "$volt" bundle push "$work/v1.vbundle" "$dr/volt$rep/bench:1" --plain-http'; vpush=$best
timeit '"$volt" bundle push "$work/v1.vbundle" "$dr/warm$rep/bench:1" --plain-http'; vpushw=$best
timeit '(cd "$files" && "$oras" push "${oras_args[@]}" "$dr/oras$rep/bench:1" "${oras_files[@]}")'; opush=$best
timeit 'rm -rf "$work/orasout"; "$oras" pull --plain-http -o "$work/orasout" "$dr/oras1/bench:1"'; opull=$best
# volt fsyncs the pulled file before renaming it into place; oras does not.
pairwise registry-pull-vs-oras-sync \
  'rm -f "$work/pulled.vbundle"; "$volt" bundle pull "$dr/volt1/bench:1" -o "$work/pulled.vbundle" --plain-http' \
  'rm -rf "$work/orasout"; "$oras" pull --plain-http -o "$work/orasout" "$dr/oras1/bench:1" && sync -f "$work/orasout"'
pull_line=$pline vpull=$pa opulls=$pb pull_med=$pmed pull_spread=$pspread
cmp -s "$work/pulled.vbundle" "$work/v1.vbundle" && same=yes || same=NO
printf "%-44s %8s %8s %7s\n" "docker-registry" "volt s" "oras s" "ratio"
printf "%-44s %8.2f %8.2f %6sx  (%s MiB/s)\n" "push (new repository, cold)" "$vpush" "$opush" "$(ratio "$vpush" "$opush")" "$(mbps "$vpush")"
printf "%-44s %8.2f %8.2f %6sx\n" "push (new repository, sha256 cache warm)" "$vpushw" "$opush" "$(ratio "$vpushw" "$opush")"
printf "%-44s %8.2f %8.2f %6sx  (%s MiB/s; byte-identical: %s)\n" "pull" "$vpull" "$opull" "$(ratio "$vpull" "$opull")" "$(mbps "$vpull")" "$same"
printf "%-44s %8.2f %8.2f %6sx  (median of %s paired runs %s, spread %s; target <= 1.0)\n" "pull, oras followed by sync (volt fsyncs)" "$vpull" "$opulls" "$(ratio "$vpull" "$opulls")" "$REPS" "${pull_med}x" "$pull_spread"
echo

# 2./3. dedup.
rep1=$("$volt" bundle push "$work/v1.vbundle" "$dr/volt1/bench:1" --plain-http -o json)
rep2=$("$volt" bundle push "$work/v2.vbundle" "$dr/volt1/bench:2" --plain-http -o json)
j() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
echo "re-push unchanged:      image bytes sent $(j imageBytesSent <<<"$rep1"), total bytes sent $(j bytesSent <<<"$rep1")   (target 0)"
echo "push v2 (web changed):  image bytes sent $(j imageBytesSent <<<"$rep2"), total $(j bytesSent <<<"$rep2"); changed image is $web_size bytes"
echo

# 4. volt registry serve vs docker-registry, same volt commands.
timeit 'rm -rf "$VOLT_ROOT/cache"; "$volt" bundle push "$work/v1.vbundle" "$vs/serve$rep/bench:1" --plain-http'; spush=$best
pairwise serve-pull-vs-docker-registry \
  'rm -f "$work/pulled.vbundle"; "$volt" bundle pull "$vs/serve1/bench:1" -o "$work/pulled.vbundle" --plain-http' \
  'rm -f "$work/pulled-dr.vbundle"; "$volt" bundle pull "$dr/volt1/bench:1" -o "$work/pulled-dr.vbundle" --plain-http'
serve_line=$pline spull=$pa vpull=$pb serve_med=$pmed serve_spread=$pspread
cmp -s "$work/pulled.vbundle" "$work/v1.vbundle" && same=yes || same=NO
printf "%-44s %8s %8s %7s\n" "volt bundle push/pull" "serve s" "d-reg s" "ratio"
printf "%-44s %8.2f %8.2f %6sx\n" "push (new repository, cold)" "$spush" "$vpush" "$(ratio "$spush" "$vpush")"
printf "%-44s %8.2f %8.2f %6sx  (median of %s paired runs %s, spread %s; target <= 1.0; byte-identical: %s)\n" "pull" "$spull" "$vpull" "$(ratio "$spull" "$vpull")" "$REPS" "${serve_med}x" "$serve_spread" "$same"
echo "serve stores blobs in the CAS: $(du -sh "$work/serve-root/cas" | cut -f1) for $REPS pushes of ${SIZE} MiB (one copy); whole-blob cache beside it: $(du -sh "$work/serve-root/registry/blobcache" 2>/dev/null | cut -f1)"
echo
echo "$pull_line"
echo "$serve_line"
