#!/usr/bin/env bash
# Everything nodeagent needs on a fresh Debian 12 machine, from this repository's own files:
# system packages, kubectl 1.20, and the Python environment in .venv. Safe to run again: each
# step is skipped when its result is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

APT_PACKAGES=(iproute2 iptables nftables conntrack libnetfilter-queue-dev iperf3 gcc ethtool util-linux
              containernetworking-plugins podman busybox-static runc etcd-server)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Debian's kubectl 1.20 (kubernetes-client) is unpacked into .tools instead of installed: the
# package would replace /usr/bin/kubectl, which on these machines dispatches to a newer kubectl.
KUBECTL120="$ROOT/.tools/kubectl-1.20"
if [ ! -x "$KUBECTL120" ]; then
  echo "setup: fetching kubectl 1.20 (Debian package kubernetes-client)"
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download -q kubernetes-client >/dev/null 2>&1 || { apt-get update -q >/dev/null; apt-get download -q kubernetes-client >/dev/null; }; })
  dpkg-deb -x "$tmp"/kubernetes-client_*.deb "$tmp/x"
  mkdir -p "$ROOT/.tools"
  install -m 0755 "$tmp/x/usr/bin/kubectl" "$KUBECTL120"
  rm -rf "$tmp"
fi

# The venv's interpreter is the real binary, not a version manager's shim: a shim costs ~70 ms
# on every start of a Python process (and the CNI plugin is one process per pod start).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  PY=""
  for cand in python3.11 python3.12 python3.13 python3; do
    if command -v "$cand" >/dev/null && "$cand" -c 'import sys, venv; assert sys.version_info >= (3, 11)' 2>/dev/null; then
      PY=$("$cand" -c 'import sys; print(sys.executable)'); break
    fi
  done
  [ -n "$PY" ] || { echo "setup: need Python >= 3.11 with venv" >&2; exit 1; }
  echo "setup: creating .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "setup: installing Python packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[test]"
  rm -f .venv/.installed-*; touch "$stamp"
fi
