"""Inside a sandbox, free, nproc and /proc tell its own limits, not the host's."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from tests.engine.conftest import create, run


@pytest.mark.parametrize(("cpu", "memory"), [(1, 1), (2, 2)])
def test_a_sandbox_sees_its_own_memory_and_cpus(
    api: httpx.Client, toolbox: httpx.Client, cpu: int, memory: int
) -> None:
    if cpu > len(os.sched_getaffinity(0)):
        pytest.skip(f"the host has fewer than {cpu} CPUs")
    sandbox = create(api, cpu=cpu, memory=memory, autoStopInterval=0)
    try:
        seen = run(
            toolbox,
            sandbox["id"],
            "free -m | awk '/^Mem:/ {print $2}'; nproc; grep -c ^processor /proc/cpuinfo; "
            "awk '/^MemTotal:/ {print $2}' /proc/meminfo; "
            "python -c 'import os; print(os.cpu_count())'",
        )["result"].split()
        assert seen == [str(memory * 1024), str(cpu), str(cpu), str(memory * 1024 * 1024), str(cpu)]
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")


def test_uptime_counts_from_the_sandboxs_start(api: httpx.Client, toolbox: httpx.Client) -> None:
    with open("/proc/uptime") as host:
        host_uptime = float(host.read().split()[0])
    # Not a default sandbox: those can wait started in the warm pool for a while.
    sandbox = create(api, memory=2, autoStopInterval=0)
    try:
        started = time.monotonic()
        uptime = float(run(toolbox, sandbox["id"], "cut -d' ' -f1 /proc/uptime")["result"])
        assert uptime < host_uptime
        assert uptime <= time.monotonic() - started + 30  # it was started moments ago
    finally:
        api.delete(f"/sandbox/{sandbox['id']}")
