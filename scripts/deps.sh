#!/usr/bin/env bash
# Installs what Volt's build, tests, demo and benchmarks need on Debian 12.
# Safe to run again: it installs only what is missing. Needs root.
set -euo pipefail
pkgs=(systemd-container busybox-static qemu-utils qemu-system-x86 docker-registry skopeo umoci
  wireguard-tools b3sum cpio tini protobuf-compiler casync zip unzip zstd git ca-certificates
  openssh-client iproute2 make bc time tmux)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps.sh: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: without it wireguard-tools pulls a whole kernel.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v go >/dev/null 2>&1; then
  echo "deps.sh: Go >= 1.26 is required on PATH (or in /usr/local/go/bin)" >&2
  exit 1
fi
# Tools the lint step and the proto generator use, pinned.
export GOBIN="${GOBIN:-$HOME/go/bin}"
[ -x "$GOBIN/staticcheck" ] || go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
