"""Host prerequisites: each missing one is named with its fix; a missing feature is a 400."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from dashboard.engine import prereqs
from dashboard.engine.app import create_app
from dashboard.engine.config import EngineConfig
from dashboard.engine.lifecycle import Engine

ROOT = Path(__file__).resolve().parents[2]


def tun_device(directory: Path, mode: int) -> Path:
    """A TUN device node of our own, with the mode a broken or a prepared host has."""
    path = directory / "tun"
    os.mknod(path, stat.S_IFCHR | mode, os.makedev(10, 200))
    path.chmod(mode)
    return path


def sysctls(directory: Path, **values: str) -> Path:
    for name, value in values.items():
        path = directory / name.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
    return directory


def test_a_tun_device_only_root_may_open_turns_networking_off(tmp_path: Path) -> None:
    check = prereqs.check_tun(prereqs.Host(tun=tun_device(tmp_path, 0o600)))
    assert not check.ok
    assert check.feature == prereqs.NETWORK
    assert "mode 0600" in check.detail
    assert check.fix.startswith(f"chmod 0666 {tmp_path / 'tun'}")


def test_a_tun_device_with_debians_mode_passes(tmp_path: Path) -> None:
    assert prereqs.check_tun(prereqs.Host(tun=tun_device(tmp_path, 0o666))).ok


def test_a_missing_tun_device_says_to_load_the_module(tmp_path: Path) -> None:
    check = prereqs.check_tun(prereqs.Host(tun=tmp_path / "none"))
    assert not check.ok
    assert "modprobe tun" in check.fix


def test_a_missing_tool_names_its_package(tmp_path: Path) -> None:
    checks = {c.name: c for c in prereqs.check_tools(prereqs.Host(path=str(tmp_path)))}
    assert not checks["command bwrap"].ok
    assert checks["command bwrap"].fix.startswith("apt-get install bubblewrap")
    assert checks["command bwrap"].feature is None  # the engine cannot start without it
    assert checks["command mkfs.ext4"].fix.startswith("apt-get install e2fsprogs")


def test_missing_network_and_proc_tools_turn_only_their_features_off(tmp_path: Path) -> None:
    host = prereqs.Host(path=str(tmp_path), fuse=tmp_path / "fuse")
    network = {c.name: c for c in prereqs.check_network_tools(host)}
    assert network["command slirp4netns"].feature == prereqs.NETWORK
    assert network["command nft"].fix.startswith("apt-get install nftables")
    proc = {c.name: c for c in prereqs.check_lxcfs(host)}
    assert not proc["command lxcfs"].ok and proc["command lxcfs"].feature == prereqs.PROC_LIMITS
    assert not proc["FUSE"].ok and proc["FUSE"].fix == "modprobe fuse"


@pytest.mark.parametrize(
    ("values", "fix"),
    [
        ({"user.max_user_namespaces": "0"}, "sysctl -w user.max_user_namespaces=15000"),
        ({"kernel.unprivileged_userns_clone": "0"}, "sysctl -w kernel.unprivileged_userns_clone=1"),
        (
            {"kernel.apparmor_restrict_unprivileged_userns": "1"},
            "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0",
        ),
    ],
)
def test_refused_user_namespaces_name_the_sysctl(
    tmp_path: Path, values: dict[str, str], fix: str
) -> None:
    check = prereqs.check_userns(prereqs.Host(proc_sys=sysctls(tmp_path, **values)))
    assert not check.ok
    assert check.fix == fix


def test_missing_loop_devices_and_cgroups_are_named(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")
    host = prereqs.Host(loop_control=tmp_path / "loop-control", mounts=mounts)
    loop, cgroups = prereqs.check_loop(host), prereqs.check_cgroups(host)
    assert not loop.ok and loop.fix == "modprobe loop"
    assert not cgroups.ok and "no cgroup filesystem" in cgroups.detail


def test_a_non_root_engine_is_told_to_run_as_root() -> None:
    check = prereqs.check_root(prereqs.Host(euid=lambda: 1000))
    assert not check.ok
    assert "uid 1000" in check.detail


def test_sandbox_uids_that_belong_to_an_account_are_named(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0::/root:/bin/sh\nalice:x:61005:61005::/home/alice:/bin/sh\n")
    check = prereqs.check_uid_range(61000, 2000, passwd)
    assert not check.ok
    assert "alice (61005)" in check.detail


def test_the_report_prints_a_fix_under_each_failure(tmp_path: Path) -> None:
    report = prereqs.Report(
        [prereqs.check_root(prereqs.Host()), prereqs.check_tun(prereqs.Host(tun=tmp_path / "x"))]
    )
    text = report.text()
    assert text.splitlines()[0] == "✓ root: running as root"
    assert "✗ TUN device" in text and "    fix: modprobe tun" in text
    assert not report.ok and not report.fatal  # only a feature is missing
    assert report.as_json()["features"] == {
        prereqs.NETWORK: False,
        prereqs.PROC_LIMITS: True,
        prereqs.IMAGES: True,
    }


def test_engine_check_passes_on_this_prepared_machine() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "engine", "--check"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ TUN device" in result.stdout
    assert "✗" not in result.stdout


async def test_an_engine_without_network_refuses_a_networked_sandbox_with_a_400(
    tmp_path: Path,
) -> None:
    broken = prereqs.check_tun(prereqs.Host(tun=tun_device(tmp_path, 0o600)))
    report = prereqs.Report([prereqs.check_root(prereqs.Host()), broken])
    config = replace(EngineConfig(data_dir=tmp_path / "data"), warm_pool=0)
    engine = Engine(config, report)
    app = create_app(engine, "key", manage_engine=False)
    headers = {"Authorization": "Bearer key"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://e", headers=headers) as api:
        response = await api.post("/api/sandbox", json={})
        assert response.status_code == 400
        assert "cannot give sandboxes a network" in response.json()["message"]
        assert "chmod 0666" in response.json()["message"]
        assert (await api.get("/api/sandbox")).json()["items"] == []  # nothing left behind
        status = (await api.get("/api/sandbar/engine")).json()
        assert status["features"]["network"] is False
    engine.store.close()
