#!/usr/bin/env bash
# The Vagrant cluster, from the host: `vagrant/cluster.sh up|down|test|bench|host|box|prepare|ssh-config`.
#
#   up        host + box + prepare, then `vagrant up` (control VM and NODEAGENT_WORKERS workers)
#   down      `vagrant destroy`, then remove everything else this made: libvirt domains, networks
#             and pool of our prefix, and the firewall chains libvirt added (see `host_clean`)
#   test      the VIP traffic tests (tests/vm): they run up, then down (also when a test fails)
#   bench     cross-VM pod-to-pod throughput over our VXLAN vs VM to VM (the cluster must be up)
#   host      the host's part: Debian packages, libvirt daemons (no systemd here: started directly)
#   box       build the offline box (box/build.sh) and add it, unless NODEAGENT_BOX names another
#   prepare   wheels of the project for the VMs, the cluster CA and the join token
#
# Everything lives in vagrant/.state (NODEAGENT_VAGRANT_STATE): Vagrant's home (boxes), its machine
# files, the libvirt pool, wheels, CA. Nothing goes to ~/.vagrant.d.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
export NODEAGENT_VAGRANT_STATE=${NODEAGENT_VAGRANT_STATE:-$here/.state}
state=$NODEAGENT_VAGRANT_STATE
export VAGRANT_HOME=$state/vagrant.d VAGRANT_DOTFILE_PATH=$state/machines VAGRANT_CWD=$here
export VAGRANT_DEFAULT_PROVIDER=${VAGRANT_DEFAULT_PROVIDER:-libvirt} VAGRANT_CHECKPOINT_DISABLE=1
export NODEAGENT_BOX=${NODEAGENT_BOX:-nodeagent/bookworm}
prefix=${NODEAGENT_VM_PREFIX:-nodeagent}
[[ $prefix =~ ^[a-z][a-z0-9-]{0,20}$ ]] || { echo "bad NODEAGENT_VM_PREFIX: $prefix" >&2; exit 2; }
py=$root/.venv/bin/python
virsh() { command virsh -q -c qemu:///system "$@"; }
say() { echo "[vagrant] $*"; }

host() {
  local pkgs=(qemu-system-x86 qemu-utils mmdebstrap vagrant vagrant-libvirt libvirt-daemon-system
              libvirt-clients dnsmasq-base openssh-client iperf3)
  local missing=()
  for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq >/dev/null   # scripts/setup.sh updates the lists only when it installs
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # /dev/kvm is root-only: as any other user libvirt re-probes QEMU on every call (8 s each)
  local conf=/etc/libvirt/qemu.conf
  if ! grep -q '^user = "root"' "$conf"; then
    printf '\n# nodeagent vagrant/cluster.sh: QEMU as root\nuser = "root"\ngroup = "root"\n' >> "$conf"
    pkill -x libvirtd || true
  fi
  # no systemd as PID 1 here: the daemons are started directly, and `down` stops them again
  mkdir -p "$state"
  pgrep -x virtlogd >/dev/null || { virtlogd -d; touch "$state/started-virtlogd"; }
  if ! pgrep -x libvirtd >/dev/null; then
    libvirtd -d
    touch "$state/started-libvirtd"
    for _ in $(seq 50); do virsh version >/dev/null 2>&1 && break; sleep 0.2; done
  fi
}

box() {
  [ "$NODEAGENT_BOX" = nodeagent/bookworm ] || return 0
  # the box carries the project's dependencies (box/build.sh): rebuilt when they change
  local file=$state/nodeagent-bookworm.box deps
  deps=$(cd "$state/wheels" && ls | grep -v '^nodeagent-' | sort)
  if [ ! -s "$file" ] || [ "$deps" != "$(cat "$state/nodeagent-bookworm.deps" 2>/dev/null)" ]; then
    rm -f "$file"
    bash "$here/box/build.sh" "$file" "$state/wheels" "${NODEAGENT_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
    echo "$deps" > "$state/nodeagent-bookworm.deps"
  fi
  # (from a directory without our Vagrantfile: it needs `prepare`'s files to load)
  if [ "$file" -nt "$state/vagrant.d/boxes/nodeagent-VAGRANTSLASH-bookworm" ] || \
     ! VAGRANT_CWD=$state vagrant box list 2>/dev/null | grep -q '^nodeagent/bookworm '; then
    VAGRANT_CWD=$state vagrant box add --force --name nodeagent/bookworm "$file" >/dev/null
    say "box nodeagent/bookworm added"
  fi
}

prepare() {
  mkdir -p "$state/wheels" "$state/dist/systemd" "$state/join" "$state/ca"
  rm -rf "$state"/wheels/nodeagent-*.whl "$state/dist/wheels"
  # the project and every dependency, as wheels for the VMs' Python 3.11 (same Debian release)
  "$py" -m pip wheel --quiet --wheel-dir "$state/wheels" "$root" >/dev/null 2>&1 || \
    "$py" -m pip wheel --wheel-dir "$state/wheels" "$root"
  mkdir -p "$state/dist/wheels"
  if [ "$NODEAGENT_BOX" = nodeagent/bookworm ]; then
    cp "$state"/wheels/nodeagent-*.whl "$state/dist/wheels/"   # the box has the others
  else
    cp "$state"/wheels/*.whl "$state/dist/wheels/"
  fi
  cp "$root"/deploy/systemd/*.service "$state/dist/systemd/"
  cp "$root/README.md" "$state/dist/README.md"
  # The cluster CA and the join token are made here, before any VM exists, so that the workers
  # can be given the CA hash to pin (as a kubeadm user pre-generates a token and a CA).
  (cd "$root" && "$py" - "$state" <<'PY'
import os, sys
from control.auth import pki
from control.auth.tokens import new_token
state = sys.argv[1]
key, crt = (os.path.join(state, "ca", n) for n in ("ca.key", "ca.crt"))
if not os.path.exists(key):
    k, c = pki.make_ca()
    pki.write_new(key, pki.key_pem(k), 0o600)
    pki.write_new(crt, pki.cert_pem(c), 0o644)
tok = os.path.join(state, "join", "token")
if not os.path.exists(tok):
    pki.write_new(tok, (new_token() + "\n").encode(), 0o600)
with open(crt, "rb") as f:
    digest = pki.ca_cert_hash(pki.load_cert(f.read()))
with open(os.path.join(state, "join", "ca-cert-hash"), "w") as f:
    f.write(digest + "\n")
PY
  )
  say "prepared $(ls "$state/wheels" | wc -l) wheels, CA and join token in $state"
}

pool() {
  virsh pool-info "$prefix" >/dev/null 2>&1 && return 0
  mkdir -p "$state/pool"
  virsh pool-define-as "$prefix" dir --target "$state/pool" >/dev/null
  virsh pool-start "$prefix" >/dev/null
}

snapshot_firewall() {
  # which firewall tables existed before libvirt started its first network: `down` removes
  # libvirt's chains, and a table only if it did not exist before
  [ -e "$state/firewall-before" ] || nft list tables > "$state/firewall-before" 2>/dev/null || true
}

up() {
  mkdir -p "$state"
  host
  prepare
  box
  snapshot_firewall
  pool
  local t0=$SECONDS
  vagrant up
  vagrant ssh-config > "$state/ssh_config"
  say "up in $((SECONDS - t0)) s: $(vagrant status --machine-readable | awk -F, '$3 == "state" {print $2 "=" $4}' | xargs)"
}

down() {
  if [ -d "$state/machines" ] && command -v vagrant >/dev/null; then
    vagrant destroy -f >/dev/null 2>&1 || true
  fi
  if command -v virsh >/dev/null && virsh version >/dev/null 2>&1; then
    local d n v
    for d in $(virsh list --all --name | grep "^$prefix-" || true); do
      virsh destroy "$d" >/dev/null 2>&1 || true
      virsh undefine "$d" --nvram >/dev/null 2>&1 || virsh undefine "$d" >/dev/null 2>&1 || true
    done
    for n in $(virsh net-list --all --name | grep "^$prefix-" || true); do
      virsh net-destroy "$n" >/dev/null 2>&1 || true
      virsh net-undefine "$n" >/dev/null 2>&1 || true
    done
    if virsh pool-info "$prefix" >/dev/null 2>&1; then
      for v in $(virsh vol-list "$prefix" --name 2>/dev/null || true); do virsh vol-delete "$v" --pool "$prefix" >/dev/null 2>&1 || true; done
      virsh pool-destroy "$prefix" >/dev/null 2>&1 || true
      virsh pool-undefine "$prefix" >/dev/null 2>&1 || true
    fi
  fi
  local sock
  for sock in /tmp/na-vm-*; do   # the tests' shared ssh connections (tests/vm/vms.py)
    [ -S "$sock" ] && ssh -o ControlPath="$sock" -O exit dummy >/dev/null 2>&1 || true
    rm -f "$sock"
  done
  rm -rf "$state/machines" "$state/pool" "$state/ssh_config" "$state/admin.kubeconfig"
  host_clean
  # the daemons, if `host` started them (a host's own libvirt is left alone)
  if [ -e "$state/started-libvirtd" ] && [ -z "$(virsh list --all --name 2>/dev/null)" ]; then
    pkill -x libvirtd || true
    for _ in $(seq 50); do pgrep -x libvirtd >/dev/null || break; sleep 0.1; done
    rm -f "$state/started-libvirtd"
  fi
  if [ -e "$state/started-virtlogd" ] && ! pgrep -x libvirtd >/dev/null; then
    pkill -x virtlogd || true
    rm -f "$state/started-virtlogd"
  fi
  say "down: no VM, network or pool named $prefix-* is left"
}

host_clean() {
  # libvirt keeps its top-level LIBVIRT_* chains after its last network is gone; remove them
  # (and only them) once no libvirt network runs, and a table they were alone in if it did
  # not exist before we started libvirt's first network.
  command -v virsh >/dev/null || return 0
  if virsh version >/dev/null 2>&1 && [ -n "$(virsh net-list --name 2>/dev/null | grep -v '^$' || true)" ]; then
    return 0   # someone else's libvirt network still needs them
  fi
  "$py" "$here/firewall_clean.py" "$state/firewall-before" || true
  rm -f "$state/firewall-before"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  host) host ;;
  box) host; prepare; box ;;
  prepare) prepare ;;
  ssh-config) vagrant ssh-config ;;
  test) cd "$root" && exec "$py" -m pytest tests/vm "${@:2}" ;;   # the tests bring it up and down
  bench) (cd "$root" && "$py" -m bench.vm_bench) ;;
  *) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
