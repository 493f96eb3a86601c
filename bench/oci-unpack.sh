#!/bin/sh
# bench/oci-unpack.sh: unpack time of a ~500 MiB OCI image, format-oci vs
# `umoci unpack`, side by side (target: ratio <= 1.3).
#
#   bench/oci-unpack.sh [SIZE_MIB]    (default 500; WORK=dir to keep files)
#
# Builds the image with umoci from generated files (half random, half
# compressible text, in 4 directories of mixed sizes), then times both
# unpackers with hyperfine (3 runs each, output dir removed before each run).
set -eu
SIZE=${1:-500}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-$(mktemp -d /var/tmp/volt-bench-oci.XXXXXX)}
trap 'rm -rf "$WORK"' EXIT
command -v umoci >/dev/null || { echo "umoci not installed" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "hyperfine not installed" >&2; exit 1; }

echo "building ociunpack" >&2
(cd "$ROOT" && go build -o "$WORK/ociunpack" ./bench/cmd/ociunpack)

echo "generating ${SIZE} MiB of files" >&2
umoci init --layout "$WORK/layout"
umoci new --image "$WORK/layout:bench"
umoci unpack --image "$WORK/layout:bench" "$WORK/build"
R="$WORK/build/rootfs"
python3 - "$R" "$SIZE" <<'PY'
import os, sys, random
root, size = sys.argv[1], int(sys.argv[2]) << 20
rnd = random.Random(42)
words = [b"volt", b"bundle", b"layer", b"image", b"systemd", b"nspawn", b"qemu", b"\n"]
written, i = 0, 0
while written < size:
    d = os.path.join(root, "data", "d%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    n = rnd.choice([4 << 10, 64 << 10, 512 << 10, 4 << 20])
    if i % 2:
        body = os.urandom(n)
    else:
        body = b" ".join(rnd.choice(words) for _ in range(n // 6))[:n]
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(body)
    if i % 50 == 0:
        os.symlink("f%05d" % i, os.path.join(d, "l%05d" % i))
    written += n; i += 1
print("%d files, %d MiB" % (i, written >> 20), file=sys.stderr)
PY
echo "packing with umoci repack" >&2
umoci repack --image "$WORK/layout:bench" "$WORK/build"
rm -rf "$WORK/build"
du -sh "$WORK/layout" >&2

# The floor: GNU tar + gzip extracting the layer blob (no digest checks, no safety).
LAYER=$(python3 -c '
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"].split(":")[1]))
print(d + "/blobs/sha256/" + m["layers"][-1]["digest"].split(":")[1])' "$WORK/layout")

hyperfine --runs 3 --export-json "$WORK/result.json" \
  --prepare "rm -rf $WORK/out" \
  -n umoci "umoci unpack --image $WORK/layout:bench $WORK/out" \
  -n format-oci "$WORK/ociunpack $WORK/layout $WORK/out/rootfs" \
  -n tar-xzf "mkdir -p $WORK/out && tar -xzf $LAYER -C $WORK/out"

python3 - "$WORK/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
u, v, x = r["umoci"]["median"], r["format-oci"]["median"], r["tar-xzf"]["median"]
print("umoci unpack: %.2f s   format-oci: %.2f s   tar -xzf (layer only): %.2f s" % (u, v, x))
print("ratio format-oci/umoci: %.2f (target <= 1.3)   format-oci/tar: %.2f" % (v / u, v / x))
PY
