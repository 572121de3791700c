#!/usr/bin/env bash
# Brings a Debian/Ubuntu host to what the embedded engine needs, idempotently: it
# changes nothing that is already right. Run as root (the engine itself runs as root
# to set up cgroups, loop-mounted disks and namespaces; sandboxes never do).
# `python manage.py engine --check` checks the same things and names each fix.
set -euo pipefail

say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup_host.sh must run as root" >&2
  exit 1
fi

# bubblewrap: the sandboxes; slirp4netns: their user-mode network; util-linux:
# setpriv and nsenter; e2fsprogs: the per-sandbox ext4 disks; mount: loop devices;
# iproute2 and nftables: the egress policy; lxcfs: /proc that shows a sandbox's own
# limits; debootstrap: the default image; skopeo and umoci: snapshots from OCI images;
# openssh-client: ssh, scp and sftp to the engine's SSH gateway (and its tests).
packages=(bubblewrap slirp4netns util-linux e2fsprogs xfsprogs mount procps iproute2 nftables lxcfs debootstrap skopeo umoci openssh-client)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# TUN: slirp4netns runs as the sandbox's unprivileged uid and opens /dev/net/tun
# inside the sandbox's network namespace. Debian's udev makes the device 0666
# (creating an interface with it still needs CAP_NET_ADMIN in a network namespace,
# so opening it grants nothing by itself); a machine without udev leaves it 0600.
if [ ! -c /dev/net/tun ]; then
  say "creating /dev/net/tun"
  modprobe tun 2>/dev/null || true
  if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net
    mknod -m 0666 /dev/net/tun c 10 200
  fi
fi
if [ "$(stat -c %a /dev/net/tun)" != 666 ]; then
  say "giving /dev/net/tun the mode Debian's udev gives it (0666)"
  chmod 0666 /dev/net/tun
fi
# /dev is rebuilt at boot: where systemd-tmpfiles runs, keep the mode across reboots
# (elsewhere `make run` and `make test` run this script each time).
if [ -d /etc/tmpfiles.d ] && [ ! -f /etc/tmpfiles.d/sandbar-tun.conf ]; then
  echo 'z /dev/net/tun 0666 root root -' > /etc/tmpfiles.d/sandbar-tun.conf
fi

# Loop devices back the sandbox disks.
if [ ! -e /dev/loop-control ]; then
  say "loading the loop module"
  modprobe loop || { echo "no loop device support (/dev/loop-control)" >&2; exit 1; }
fi

# Unprivileged user namespaces: bubblewrap runs as the unprivileged sandbox uid.
if [ -e /proc/sys/kernel/unprivileged_userns_clone ] &&
   [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = 0 ]; then
  say "enabling unprivileged user namespaces"
  sysctl -q -w kernel.unprivileged_userns_clone=1
fi
if [ "$(cat /proc/sys/user/max_user_namespaces)" = 0 ]; then
  say "allowing user namespaces"
  sysctl -q -w user.max_user_namespaces=15000
fi
if [ -e /proc/sys/kernel/apparmor_restrict_unprivileged_userns ] &&
   [ "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns)" = 1 ]; then
  # Ubuntu 24.04+: AppArmor would refuse bwrap's user namespace.
  say "letting unprivileged processes create user namespaces (AppArmor)"
  sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0
fi

if ! grep -qE ' cgroup2? ' /proc/self/mounts; then
  echo "no cgroup filesystem is mounted; the engine needs cgroup v1 or v2" >&2
  exit 1
fi
