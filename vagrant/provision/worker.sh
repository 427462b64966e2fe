#!/usr/bin/env bash
# A worker VM: wait for the API server (the VMs come up in parallel), `nodeagent join`, then the
# node agent as a systemd unit, on the private network's interface (eth1; eth0 is Vagrant's).
set -euo pipefail
: "${SERVER:?}" "${CA_HASH:?}" "${NODE:?}"
for _ in $(seq 600); do
  curl -skf "$SERVER/readyz" >/dev/null && break
  sleep 1
done
if [ ! -e /var/lib/nodeagent/node.kubeconfig ]; then
  NODEAGENT_JOIN_TOKEN=$(cat /tmp/nodeagent-join/token) \
    nodeagent join --server "$SERVER" --ca-cert-hash "$CA_HASH" --node-name "$NODE"
fi
echo 'NODEAGENT_AGENT_ARGS="--underlay-interface eth1"' > /etc/default/nodeagent
systemctl enable --now nodeagent-agent
rm -rf /tmp/nodeagent-join
echo "$NODE joined $SERVER"
