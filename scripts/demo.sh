#!/usr/bin/env bash
# The main job: set everything up, bring up a 3-node lab cluster (every node a network namespace
# with its own agent, the control plane as real processes), deploy a small two-service app, and
# show traffic through its ClusterIPs and a NodePort, with the pod and node answering each request.
#   scripts/demo.sh          leave the lab running afterwards (explore it with kubectl)
#   scripts/demo.sh --down   remove the lab at the end
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DOWN=0; [ "${1:-}" = "--down" ] && DOWN=1
NAME=${NODEAGENT_LAB:-demo}
bash scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "bringing up lab '$NAME': 3 nodes, API server on HTTPS, scheduler, controller manager, agents"
run .venv/bin/nodeagent lab up --name "$NAME" --nodes 3
KUBECONFIG=$(.venv/bin/nodeagent lab kubeconfig --name "$NAME")
export KUBECONFIG

step "deploying bookinfo and sending traffic through its services"
run .venv/bin/nodeagent lab demo --name "$NAME"

step "what kubectl sees"
K=$ROOT/.tools/kubectl-1.20
command -v kubectl >/dev/null && K=$(command -v kubectl)
run "$K" get nodes -o wide
run "$K" -n bookinfo get deployments,services,endpointslices
run "$K" -n bookinfo get pods -o wide

if [ $DOWN = 1 ]; then
  step "removing the lab"
  run .venv/bin/nodeagent lab down --name "$NAME"
else
  step "the lab keeps running"
  echo "  export KUBECONFIG=$KUBECONFIG"
  echo "  .venv/bin/nodeagent lab status --name $NAME      .venv/bin/nodeagent lab logs --name $NAME [COMPONENT]"
  echo "  .venv/bin/nodeagent lab down --name $NAME        (removes every process, namespace, rule and file of it)"
fi
