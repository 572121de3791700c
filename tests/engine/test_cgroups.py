"""Cgroup layouts: the hybrid one of this machine, pure v2 with controllers, and pure v1.

Only this machine's layout can run sandboxes here, so the other two are checked on a
fake cgroup tree in a temporary directory: which files get which limits.
"""

from __future__ import annotations

from pathlib import Path

from dashboard.engine.runtime.cgroups import CgroupLayout, CgroupManager

V1_LINES = [
    "30 25 0:26 / {root}/memory rw,nosuid - cgroup cgroup rw,memory",
    "31 25 0:27 / {root}/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct",
    "32 25 0:28 / {root}/pids rw,nosuid - cgroup cgroup rw,pids",
]
V2_LINE = "29 25 0:25 / {root}/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"
PURE_V2_LINE = "29 1 0:25 / {root} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate"


def test_pure_v2_with_controllers_puts_limits_in_v2(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    layout = CgroupLayout.parse(PURE_V2_LINE.format(root=tmp_path), "0::/user.slice/x.scope\n")
    assert (layout.v2, layout.v2_limits, layout.v1) == (tmp_path, True, {})
    sandbox = CgroupManager("abc", layout).sandbox("s1")
    (tmp_path / "sandbar-abc").mkdir()
    sandbox.create(cpu=2, memory_gib=3, pids_max=99)
    directory = tmp_path / "sandbar-abc" / "s1"
    assert (directory / "cpu.max").read_text() == "200000 100000"
    assert (directory / "memory.max").read_text() == str(3 << 30)
    assert (directory / "pids.max").read_text() == "99"
    assert sandbox.procs_files() == [str(directory / "cgroup.procs")]


def test_hybrid_puts_limits_in_v1_under_our_own_cgroups_and_kills_through_v2(
    tmp_path: Path,
) -> None:
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    mountinfo = "\n".join(line.format(root=tmp_path) for line in [*V1_LINES, V2_LINE])
    own = "9:pids:/\n4:memory:/box/7\n2:cpu,cpuacct:/\n0::/\n"
    layout = CgroupLayout.parse(mountinfo, own)
    assert layout.v2 == tmp_path / "unified"
    assert layout.v2_limits is False
    assert layout.v1 == {
        "memory": tmp_path / "memory" / "box" / "7",
        "cpu": tmp_path / "cpu,cpuacct",
        "pids": tmp_path / "pids",
    }
    for base in [*layout.v1.values(), layout.v2]:
        (base / "sandbar-abc").mkdir(parents=True)
    sandbox = CgroupManager("abc", layout).sandbox("s1")
    sandbox.create(cpu=1, memory_gib=1, pids_max=64)
    assert (layout.v1["cpu"] / "sandbar-abc/s1/cpu.cfs_quota_us").read_text() == "100000"
    assert (layout.v1["memory"] / "sandbar-abc/s1/memory.limit_in_bytes").read_text() == str(
        1 << 30
    )
    assert (layout.v1["pids"] / "sandbar-abc/s1/pids.max").read_text() == "64"
    exec_dir = sandbox.new_exec_dir()
    assert exec_dir == tmp_path / "unified" / "sandbar-abc" / "s1" / "exec-1"
    assert sandbox.procs_files(exec_dir)[-1] == str(exec_dir / "cgroup.procs")


def test_pure_v1_has_no_kill_switch_but_still_limits(tmp_path: Path) -> None:
    mountinfo = "\n".join(line.format(root=tmp_path) for line in V1_LINES)
    layout = CgroupLayout.parse(mountinfo, "4:memory:/\n2:cpu,cpuacct:/\n9:pids:/\n")
    assert layout.v2 is None
    assert set(layout.v1) == {"memory", "cpu", "pids"}
    assert CgroupManager("abc", layout).sandbox("s1").new_exec_dir() is None


def test_this_machine_has_a_layout_the_engine_can_use() -> None:
    layout = CgroupLayout.detect()
    assert layout.v2 is not None or layout.v1
    assert layout.v2_limits or {"memory", "pids"} <= set(layout.v1)
