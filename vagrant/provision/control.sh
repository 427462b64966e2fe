#!/usr/bin/env bash
# The control VM: `nodeagent init` with the cluster CA and join token made on the host by
# `cluster.sh prepare` (init keeps a CA it finds, as kubeadm does, and takes the token from a
# file, as `kubeadm init --token`), so the workers know the CA hash before this VM exists.
set -euo pipefail
: "${ADVERTISE:?}"
install -d -m 755 /var/lib/nodeagent
install -d -m 700 /var/lib/nodeagent/pki
[ -e /var/lib/nodeagent/pki/ca.key ] || install -m 600 /tmp/nodeagent-ca/ca.key /var/lib/nodeagent/pki/ca.key
[ -e /var/lib/nodeagent/pki/ca.crt ] || install -m 644 /tmp/nodeagent-ca/ca.crt /var/lib/nodeagent/pki/ca.crt
rm -rf /tmp/nodeagent-ca
nodeagent init --data-dir /var/lib/nodeagent --advertise-address "$ADVERTISE" \
  --token-file /tmp/nodeagent-join/token >/dev/null
systemctl enable --now nodeagent-apiserver nodeagent-scheduler nodeagent-controller-manager
for _ in $(seq 300); do
  curl -sf --cacert /var/lib/nodeagent/pki/ca.crt "https://$ADVERTISE:6443/readyz" >/dev/null && break
  sleep 1
done
curl -sf --cacert /var/lib/nodeagent/pki/ca.crt "https://$ADVERTISE:6443/readyz" >/dev/null
echo "control plane up at https://$ADVERTISE:6443"
