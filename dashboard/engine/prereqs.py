"""What the host must give the engine, checked the same way by ``--check`` and at start.

Each check says what it found and, when it fails, the exact command that fixes it.
A check is either *required* (the engine does not start without it) or needed by one
*feature*: then the engine starts with that feature off, says so in its log and in
``GET /api/sandbar/engine``, and a request that asks for the feature answers a 400
naming the cause instead of leaving a sandbox in ``error``.

``dashboard/engine/setup_host.sh`` makes every one of these true on Debian/Ubuntu.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SETUP = "sudo dashboard/engine/setup_host.sh"
TOOLS = {  # command -> Debian package
    "bwrap": "bubblewrap",
    "setpriv": "util-linux",
    "nsenter": "util-linux",
    "unshare": "util-linux",
    "mkfs.ext4": "e2fsprogs",
    "mount": "mount",
}
NETWORK = "network"  # sandboxes with a network (networkBlockAll false)
PROC_LIMITS = "proc-limits"  # /proc inside showing the sandbox's own limits
IMAGES = "images"  # snapshots pulled from OCI images (skopeo, umoci)
FEATURES = {
    NETWORK: "networked sandboxes",
    PROC_LIMITS: "free, top and /proc showing each sandbox's own limits",
    IMAGES: "snapshots from container images",
}


@dataclass(frozen=True)
class Check:
    """One prerequisite: what was found, and the fix when it is missing."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    feature: str | None = None  # None: the engine cannot run without it

    def line(self) -> str:
        """``✓ name: detail`` or ``✗ name: detail`` with its fix below."""
        mark = "✓" if self.ok else "✗"
        text = f"{mark} {self.name}: {self.detail}"
        if not self.ok:
            needed = f" (needed for {FEATURES[self.feature]})" if self.feature else ""
            text += f"{needed}\n    fix: {self.fix}"
        return text

    def as_json(self) -> dict[str, object]:
        """The check for the engine's status endpoint."""
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "fix": self.fix,
            "feature": self.feature,
        }


@dataclass(frozen=True)
class Host:
    """Where the checks look; tests point them at stand-ins for a broken machine."""

    path: str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    tun: Path = Path("/dev/net/tun")
    loop_control: Path = Path("/dev/loop-control")
    fuse: Path = Path("/dev/fuse")
    proc_sys: Path = Path("/proc/sys")
    mounts: Path = Path("/proc/self/mounts")
    euid: Callable[[], int] = os.geteuid
    probe_uid: int = 61000  # an unprivileged uid to try things as


@dataclass
class Report:
    """Every check, and what the engine can and cannot do because of them."""

    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether every check passed."""
        return all(check.ok for check in self.checks)

    @property
    def fatal(self) -> list[Check]:
        """Failed checks the engine cannot start without."""
        return [c for c in self.checks if not c.ok and c.feature is None]

    def missing(self, feature: str) -> list[Check]:
        """Failed checks that turn ``feature`` off."""
        return [c for c in self.checks if not c.ok and c.feature == feature]

    def has(self, feature: str) -> bool:
        """Whether ``feature`` works on this host."""
        return not self.missing(feature)

    def why_not(self, feature: str) -> str:
        """A sentence for a refused request: what is missing and how to fix it."""
        return "; ".join(f"{c.detail} (fix: {c.fix})" for c in self.missing(feature))

    def text(self) -> str:
        """The report as ``--check`` prints it."""
        return "\n".join(check.line() for check in self.checks)

    def as_json(self) -> dict[str, object]:
        """The report for ``GET /api/sandbar/engine``."""
        return {
            "ok": self.ok,
            "checks": [check.as_json() for check in self.checks],
            "features": {name: self.has(name) for name in FEATURES},
        }


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def check_root(host: Host) -> Check:
    """The engine sets up cgroups, loop devices and mounts: it runs as root."""
    ok = host.euid() == 0
    detail = "running as root" if ok else f"running as uid {host.euid()}, not root"
    return Check("root", ok, detail, "run the engine as root (sudo python manage.py engine)")


def _commands(host: Host, tools: dict[str, str], feature: str | None = None) -> list[Check]:
    """One check per command (command -> its Debian package)."""
    checks = []
    for tool, package in tools.items():
        found = shutil.which(tool, path=host.path)
        checks.append(
            Check(
                f"command {tool}",
                found is not None,
                found or f"{tool} is not installed",
                f"apt-get install {package} (or {SETUP})",
                feature,
            )
        )
    return checks


def check_tools(host: Host) -> list[Check]:
    """bubblewrap and util-linux's tools."""
    return _commands(host, TOOLS)


def check_userns(host: Host) -> Check:
    """Unprivileged user namespaces: bubblewrap runs as the sandbox's own uid."""
    sysctl = host.proc_sys
    limit = _read(sysctl / "user/max_user_namespaces")
    if limit == "0":
        return Check(
            "user namespaces",
            False,
            "user.max_user_namespaces is 0",
            "sysctl -w user.max_user_namespaces=15000",
        )
    if _read(sysctl / "kernel/unprivileged_userns_clone") == "0":
        return Check(
            "user namespaces",
            False,
            "kernel.unprivileged_userns_clone is 0",
            "sysctl -w kernel.unprivileged_userns_clone=1",
        )
    if _read(sysctl / "kernel/apparmor_restrict_unprivileged_userns") == "1":
        return Check(
            "user namespaces",
            False,
            "AppArmor refuses unprivileged user namespaces",
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        )
    return Check("user namespaces", True, f"allowed (user.max_user_namespaces={limit})")


def check_loop(host: Host) -> Check:
    """Each sandbox's disk is a loop-mounted ext4 image."""
    ok = host.loop_control.exists()
    detail = f"{host.loop_control} is there" if ok else f"{host.loop_control} is missing"
    return Check("loop devices", ok, detail, "modprobe loop")


def check_cgroups(host: Host) -> Check:
    """Limits need cgroup v1 or v2 mounted."""
    mounts = _read(host.mounts) or ""
    kinds = {line.split()[2] for line in mounts.splitlines() if len(line.split()) > 2}
    found = sorted(kinds & {"cgroup", "cgroup2"})
    ok = bool(found)
    detail = f"mounted ({', '.join(found)})" if ok else "no cgroup filesystem is mounted"
    return Check(
        "cgroups", ok, detail, "mount -t cgroup2 none /sys/fs/cgroup (or boot with systemd)"
    )


def check_tun(host: Host) -> Check:
    """slirp4netns opens the TUN device as the sandbox's unprivileged uid."""
    fix = f"chmod 0666 {host.tun} (the mode Debian's udev gives it; or {SETUP})"
    try:
        info = host.tun.stat()
    except OSError:
        return Check(
            "TUN device", False, f"{host.tun} is missing", f"modprobe tun; {SETUP}", NETWORK
        )
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISCHR(info.st_mode):
        return Check("TUN device", False, f"{host.tun} is not a device", SETUP, NETWORK)
    if mode & 0o006 != 0o006:
        detail = f"{host.tun} is mode {mode:04o}: unprivileged sandboxes cannot open it"
        return Check("TUN device", False, detail, fix, NETWORK)
    return Check("TUN device", True, f"{host.tun} is mode {mode:04o}")


def check_network_tools(host: Host) -> list[Check]:
    """The user-mode network and its firewall."""
    return _commands(host, {"slirp4netns": "slirp4netns", "nft": "nftables"}, NETWORK)


def check_lxcfs(host: Host) -> list[Check]:
    """lxcfs (over FUSE) shows each sandbox its own memory and CPUs in /proc."""
    ok = host.fuse.exists()
    return [
        *_commands(host, {"lxcfs": "lxcfs"}, PROC_LIMITS),
        Check(
            "FUSE",
            ok,
            f"{host.fuse} is there" if ok else f"{host.fuse} is missing",
            "modprobe fuse",
            PROC_LIMITS,
        ),
    ]


def check_uid_range(first: int, count: int, passwd: Path = Path("/etc/passwd")) -> Check:
    """Sandboxes' host uids must not belong to anyone else on the machine."""
    last = first + 2 * count
    taken = []
    for line in (_read(passwd) or "").splitlines():
        parts = line.split(":")
        if len(parts) > 2 and parts[2].isdigit() and first <= int(parts[2]) <= last:
            taken.append(f"{parts[0]} ({parts[2]})")
    if taken:
        return Check(
            "sandbox uids",
            False,
            f"host accounts use uids {first}-{last}: {', '.join(taken)}",
            "set SANDBAR_SANDBOX_UID to the start of a range no account uses",
        )
    return Check("sandbox uids", True, f"{first}-{last} belong to no host account")


def check_unprivileged_bwrap(host: Host) -> Check:
    """The real test: can an unprivileged uid start a bubblewrap sandbox here?"""
    if shutil.which("bwrap", path=host.path) is None or host.euid() != 0:
        return Check("sandbox start", False, "not tried (see above)", SETUP)
    uid = str(host.probe_uid)
    argv = [
        "setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
        "bwrap", "--unshare-all", "--unshare-user", "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
        "/usr/bin/true",
    ]  # fmt: skip
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=10, env={"PATH": host.path}, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return Check("sandbox start", False, f"bubblewrap did not run: {error}", SETUP)
    if result.returncode != 0:
        reason = result.stderr.strip() or f"exit {result.returncode}"
        return Check("sandbox start", False, f"bubblewrap failed: {reason}", SETUP)
    return Check("sandbox start", True, f"an unprivileged bubblewrap sandbox starts (uid {uid})")


def run_checks(
    host: Host | None = None, *, first_uid: int = 61000, uid_count: int = 2000
) -> Report:
    """Every check, in the order a person would fix them."""
    host = host or Host(probe_uid=first_uid + 1)
    report = Report()
    report.checks.append(check_root(host))
    report.checks.extend(check_tools(host))
    report.checks += [check_userns(host), check_loop(host), check_cgroups(host)]
    report.checks.append(check_uid_range(first_uid, uid_count))
    report.checks.append(check_unprivileged_bwrap(host))
    report.checks.append(check_tun(host))
    report.checks.extend(check_network_tools(host))
    report.checks.extend(check_lxcfs(host))
    report.checks.extend(_commands(host, {"skopeo": "skopeo", "umoci": "umoci"}, IMAGES))
    return report
