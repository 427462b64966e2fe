#!/usr/bin/env bash
# Build the offline Debian 12 box for the libvirt provider: no boot loader, no cloud-init, no
# network access needed inside the VMs afterwards. Everything the project needs at run time is
# in the image; the project itself is installed at provisioning time.
#
#   vagrant/box/build.sh OUT.box WHEELS_DIR [MIRROR]
#
# The project's dependencies (the wheels in WHEELS_DIR but the project's own) are installed into
# /opt/nodeagent/.venv here, in a chroot at native speed: under the VMs' software emulation,
# creating a venv and installing 35 wheels takes minutes per VM.
#
# How: mmdebstrap a bookworm root file system (Debian's cloud kernel: virtio, vxlan, nf_tables,
# NFQUEUE), write it into an ext4 image with `mkfs.ext4 -d` (no loop device, which these machines
# lack), convert to qcow2, and tar it with the kernel and initrd: the box's Vagrantfile boots them
# directly. Takes about a minute with a nearby mirror.
set -euo pipefail
out=${1:?usage: build.sh OUT.box WHEELS_DIR [MIRROR]}
wheels=$(cd "${2:?usage: build.sh OUT.box WHEELS_DIR [MIRROR]}" && pwd)
mirror=${3:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/nodeagent-box.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Vagrant's well-known insecure key: the box is for throwaway local VMs (as every public box).
pub=$(ls /usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub 2>/dev/null | head -n1 || true)
[ -n "$pub" ] || { echo "vagrant's insecure public key not found: install the vagrant package" >&2; exit 1; }

packages=(
  systemd-sysv udev dbus kmod linux-image-cloud-amd64 openssh-server openssh-sftp-server sudo
  iproute2 nftables iptables conntrack ethtool iperf3 procps curl
  python3 python3-venv libnetfilter-queue1 libnfnetlink0 containernetworking-plugins busybox-static
)
inc=$(IFS=,; echo "${packages[*]}")

cat > "$work/setup.sh" <<'SETUP'
set -eu
root=$1; pub=$2; wheels=$3
echo nodeagent-box > "$root/etc/hostname"
echo "LABEL=root / ext4 defaults,noatime 0 1" > "$root/etc/fstab"
# Only eth0 (the management network, DHCP). The file sorts after Vagrant's 50-vagrant-eth1.network:
# networkd applies the first file that matches, so a catch-all here would steal the private network.
cat > "$root/etc/systemd/network/99-eth0.network" <<NET
[Match]
Name=eth0
[Network]
DHCP=ipv4
NET
echo "nameserver 127.0.0.1" > "$root/etc/resolv.conf"   # the VMs need no name service
chroot "$root" useradd -m -s /bin/bash vagrant
install -d -m 700 -o 1000 -g 1000 "$root/home/vagrant/.ssh"
install -m 600 -o 1000 -g 1000 "$pub" "$root/home/vagrant/.ssh/authorized_keys"
echo "vagrant ALL=(ALL) NOPASSWD:ALL" > "$root/etc/sudoers.d/vagrant"
chmod 440 "$root/etc/sudoers.d/vagrant"
echo "UseDNS no" > "$root/etc/ssh/sshd_config.d/vagrant.conf"
# every VM gets host keys of its own at first boot, before sshd starts
rm -f "$root"/etc/ssh/ssh_host_*
cat > "$root/etc/systemd/system/ssh-hostkeys.service" <<UNIT
[Unit]
Description=Generate missing SSH host keys
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A
[Install]
WantedBy=ssh.service
UNIT
chroot "$root" systemctl enable systemd-networkd ssh ssh-hostkeys.service
chroot "$root" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer
mkdir -p "$root/tmp/wheels"
cp "$wheels"/*.whl "$root/tmp/wheels/"
rm -f "$root"/tmp/wheels/nodeagent-*.whl
chroot "$root" python3 -m venv /opt/nodeagent/.venv
chroot "$root" sh -c '/opt/nodeagent/.venv/bin/pip install --quiet --no-index /tmp/wheels/*.whl'
rm -rf "$root/tmp/wheels"
cp -L "$root/vmlinuz" "$root/initrd.img" "$root/../"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
SETUP

mkdir "$work/rootfs"
mmdebstrap --variant=apt --include="$inc" --customize-hook="sh $work/setup.sh \"\$1\" $pub $wheels" \
  bookworm "$work/rootfs" "$mirror"
truncate -s 2G "$work/disk.raw"
mkfs.ext4 -q -L root -d "$work/rootfs" "$work/disk.raw"
qemu-img convert -O qcow2 "$work/disk.raw" "$work/box.img"
echo '{"provider":"libvirt","format":"qcow2","virtual_size":2}' > "$work/metadata.json"
cp "$here/Vagrantfile.box" "$work/Vagrantfile"
tar -C "$work" -cf "$out.tmp" metadata.json Vagrantfile box.img vmlinuz initrd.img
mv "$out.tmp" "$out"
echo "built $out ($(du -h "$out" | cut -f1))"
