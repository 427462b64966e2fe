#!/usr/bin/env bash
# Every VM: the project into /opt/nodeagent/.venv from the wheels copied in (no package registry
# is reached from inside the VM), and the systemd units.
set -euo pipefail
dist=/tmp/nodeagent-dist
# Our box has every package below. A public box (NODEAGENT_BOX=debian/bookworm64, for users with
# internet) lacks some: they come from Debian then, the only case where a VM reaches a registry.
need=(python3-venv nftables iptables conntrack iproute2 ethtool curl iperf3 libnetfilter-queue1)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# (our box has the venv with the dependencies already: see box/build.sh)
[ -x /opt/nodeagent/.venv/bin/pip ] || python3 -m venv /opt/nodeagent/.venv
if [ -e /opt/nodeagent/.venv/bin/nodeagent ]; then   # provisioning again: the new build of the project
  /opt/nodeagent/.venv/bin/pip install --quiet --no-index --force-reinstall --no-deps "$dist"/wheels/nodeagent-*.whl
else
  /opt/nodeagent/.venv/bin/pip install --quiet --no-index --find-links "$dist/wheels" "$dist"/wheels/nodeagent-*.whl
fi
ln -sf /opt/nodeagent/.venv/bin/nodeagent /usr/local/bin/nodeagent
install -m 644 "$dist"/systemd/*.service /etc/systemd/system/
cp "$dist/README.md" /opt/nodeagent/README.md
systemctl daemon-reload
echo "installed $(cd /opt/nodeagent/.venv/lib/python3*/site-packages && ls -d nodeagent-*.dist-info)"
