#!/usr/bin/env bash
# The main job, for now: set everything up, start the control plane (API server on SQLite), and
# show real kubectl working against it. (The multi-node lab cluster with traffic through service
# VIPs replaces this once the node agent, CNI plugin and proxy exist.)
#   scripts/demo.sh          run the demo, then stop the API server
#   scripts/demo.sh --keep   leave the API server running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
KEEP=0; [ "${1:-}" = "--keep" ] && KEEP=1
LISTEN=${NODEAGENT_LISTEN:-127.0.0.1:6443}
DATA=$ROOT/.demo
bash scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "nodeagent init: the cluster CA, certificates, kubeconfigs and a join token (data in $DATA)"
if [ -f "$DATA/apiserver.pid" ] && kill -0 "$(cat "$DATA/apiserver.pid")" 2>/dev/null; then
  kill "$(cat "$DATA/apiserver.pid")"; sleep 1
fi
rm -rf "$DATA"   # the demo's cluster is a throwaway: start from nothing every time
mkdir -p "$DATA"
run .venv/bin/nodeagent init --data-dir "$DATA" --advertise-address "${LISTEN%:*}" --port "${LISTEN##*:}" | sed 's/NODEAGENT_JOIN_TOKEN=[^ ]*/NODEAGENT_JOIN_TOKEN=<token>/'

step "starting the API server on https://$LISTEN"
.venv/bin/nodeagent apiserver --data-dir "$DATA" --listen "$LISTEN" >"$DATA/apiserver.log" 2>&1 &
echo $! >"$DATA/apiserver.pid"
stop() { [ $KEEP = 1 ] || { kill "$(cat "$DATA/apiserver.pid")" 2>/dev/null || true; }; }
trap stop EXIT
for _ in $(seq 100); do
  curl -sf --cacert "$DATA/pki/ca.crt" "https://$LISTEN/readyz" >/dev/null 2>&1 && break
  kill -0 "$(cat "$DATA/apiserver.pid")" 2>/dev/null || { cat "$DATA/apiserver.log"; exit 1; }
  sleep 0.1
done
step "anonymous requests reach only health and version"
run curl -s --cacert "$DATA/pki/ca.crt" "https://$LISTEN/healthz"; echo
run curl -s --cacert "$DATA/pki/ca.crt" "https://$LISTEN/api/v1/pods"; echo
export KUBECONFIG=$DATA/admin.kubeconfig

KUBECTLS=("$ROOT/.tools/kubectl-1.20")
command -v kubectl >/dev/null && KUBECTLS+=("$(command -v kubectl)")
K=${KUBECTLS[-1]}

step "kubectl versions talking to it"
for k in "${KUBECTLS[@]}"; do run "$k" version --short 2>/dev/null || run "$k" version; done

step "deploying the bookinfo example (two services, three replicas each)"
run "$K" apply -f examples/bookinfo.yaml
step "applying it again changes nothing (client-side apply sends a strategic merge patch)"
run "$K" apply -f examples/bookinfo.yaml
step "what the API server holds"
run "$K" get namespaces
run "$K" -n bookinfo get deployments,services -o wide
run "$K" -n bookinfo get service ratings -o yaml

step "scaling a deployment, and a watch that sees it"
"$K" -n bookinfo get deployments -w > "$DATA/watch.txt" 2>&1 & WATCH=$!
sleep 1
run "$K" -n bookinfo scale deployment ratings --replicas=5
sleep 1; kill $WATCH 2>/dev/null || true
cat "$DATA/watch.txt"

step "a pod, bound by hand to a node (no scheduler or node agent runs yet)"
run "$K" -n bookinfo run probe --image=nodeagent/netexec --restart=Never --overrides='{"spec":{"nodeName":"node-1"}}'
run "$K" -n bookinfo get pods -o wide
run "$K" -n bookinfo label pod probe role=client
run "$K" -n bookinfo get pods --show-labels

step "bad input gets a clear error and changes nothing"
"$K" -n bookinfo create service clusterip Bad_Name --tcp=80:80 || true

step "a node joins with the token, and its credential can only touch what is its own"
TOKEN=$(.venv/bin/nodeagent token --kubeconfig "$DATA/admin.kubeconfig" create --ttl 10m --description demo)
PIN=$(.venv/bin/python -c "from control.auth import pki; print(pki.ca_cert_hash(pki.load_cert(open('$DATA/pki/ca.crt','rb').read())))")
rm -f "$DATA/node-1/node.kubeconfig"
echo "\$ NODEAGENT_JOIN_TOKEN=<token> nodeagent join --server https://$LISTEN --ca-cert-hash $PIN --node-name node-1 --data-dir $DATA/node-1"
NODEAGENT_JOIN_TOKEN=$TOKEN .venv/bin/nodeagent join --server "https://$LISTEN" --ca-cert-hash "$PIN" --node-name node-1 --data-dir "$DATA/node-1"
run env KUBECONFIG="$DATA/node-1/node.kubeconfig" "$K" -n bookinfo get pods --field-selector spec.nodeName=node-1
run env KUBECONFIG="$DATA/node-1/node.kubeconfig" "$K" -n bookinfo delete service details || true

step "cleaning up"
run "$K" delete namespace bookinfo
if [ $KEEP = 1 ]; then
  echo; echo "The API server keeps running (pid $(cat "$DATA/apiserver.pid")). Use it with:"
  echo "  export KUBECONFIG=$DATA/admin.kubeconfig"
fi
