#!/usr/bin/env bash
# Prepares a Debian/Ubuntu host for the embedded engine. Idempotent: does nothing
# when everything is already there. Run as root (the engine itself runs as root to
# set up cgroups, loop-mounted disks and namespaces; sandboxes never do).
set -euo pipefail

say() { printf '\033[1;36m==>\033[0m %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
  echo "setup_host.sh must run as root" >&2
  exit 1
fi

# bubblewrap: the sandboxes; slirp4netns: their user-mode network; util-linux:
# setpriv and nsenter; e2fsprogs: the per-sandbox ext4 disks; mount: loop devices.
packages=(bubblewrap slirp4netns util-linux e2fsprogs mount procps)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
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
say "host ready for the embedded engine"
