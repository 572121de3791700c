"""Create-to-first-exec latency of the embedded engine, next to a bare bubblewrap spawn.

Starts a throwaway engine on a free loopback port, then for each of N sandboxes times
``POST /api/sandbox`` (default params) followed by the first ``process/execute``. In
the same run it times a bare ``setpriv … bwrap … /bin/true`` with the namespaces and
read-only binds the engine uses, so the ratio shows the engine's own overhead. All
traffic stays on 127.0.0.1. The last line printed is one JSON object.

    python bench/engine.py [--samples 50]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_MS = 90.0
SANDBOX_UID = os.environ.get("SANDBAR_SANDBOX_UID", "61000")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def bare_bwrap_ms(runs: int) -> list[float]:
    """Spawn-to-exit of bubblewrap alone, dropped to the sandbox uid like the engine does."""
    argv = [
        "setpriv", f"--reuid={SANDBOX_UID}", f"--regid={SANDBOX_UID}", "--clear-groups",
        "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs",
        "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
        "--uid", "1000", "--gid", "1000", "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev",
        "--tmpfs", "/tmp", "--remount-ro", "/", "/bin/true",
    ]  # fmt: skip
    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True)
        timings.append((time.perf_counter() - start) * 1000)
    return timings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_engine(
    data_dir: Path, port: int, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Run ``python -m dashboard.engine`` and wait until it answers."""
    log = open(data_dir / "engine.log", "wb")  # noqa: SIM115 -- lives as long as the engine
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dashboard.engine",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        # Throwaway data directories share the default image that make bench builds.
        # and take a uid range of their own (by port), beside a `make run` engine's.
        env={
            "SANDBAR_IMAGE_DIR": str(ROOT / "var" / "images"),
            "SANDBAR_SANDBOX_UID": str(1_000_000 + port * 100),
            "SANDBAR_SANDBOX_UID_COUNT": "50",
            **os.environ,
            **(env or {}),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    key_file = data_dir / "engine" / "api-key"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"engine exited: {(data_dir / 'engine.log').read_text()[-2000:]}")
        if key_file.exists() and (key := key_file.read_text().strip()):
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{port}/api/health",
                    headers={"Authorization": f"Bearer {key}"},
                    timeout=2,
                )
                if response.status_code == 200:
                    return process, key
            except httpx.TransportError:
                pass
        time.sleep(0.05)
    process.kill()
    raise SystemExit("engine did not start")


@contextlib.contextmanager
def engine_client(
    env: dict[str, str] | None = None, timeout: float = 60
) -> Iterator[tuple[httpx.Client, int, dict[str, str]]]:
    """A throwaway engine and a client holding its key: (client, port, auth headers).
    The engine is stopped and its data directory removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="sandbar-bench-") as tmp:
        port = free_port()
        engine, key = start_engine(Path(tmp), port, env)
        try:
            headers = {"Authorization": f"Bearer {key}"}
            base_url = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
                yield client, port, headers
        finally:
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=60)


def create_exec_ms(samples: int, env: dict[str, str] | None = None) -> list[float]:
    """Time create + first exec for ``samples`` default sandboxes on a fresh engine."""
    timings: list[float] = []
    with engine_client(env) as (client, _, _):
        # One warm-up sandbox: the first create pays for imports and page cache.
        warm = client.post("/api/sandbox", json={}).json()
        client.post(f"/toolbox/{warm['id']}/process/execute", json={"command": "true"})
        client.delete(f"/api/sandbox/{warm['id']}")
        for _ in range(samples):
            start = time.perf_counter()
            sandbox = client.post("/api/sandbox", json={}).json()
            assert "id" in sandbox, sandbox
            result = client.post(
                f"/toolbox/{sandbox['id']}/process/execute", json={"command": "echo ready"}
            ).json()
            timings.append((time.perf_counter() - start) * 1000)
            assert result["result"] == "ready\n", result
            # Deleted at once (untimed) so that quotas never cap the run.
            client.delete(f"/api/sandbox/{sandbox['id']}")
    return timings


def main() -> int:
    """Run the benchmark and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--bwrap-runs", type=int, default=30)
    parser.add_argument(
        "--no-terminals", action="store_true", help="skip the PTY, flood and log-follow figures"
    )
    parser.add_argument("--no-previews", action="store_true", help="skip the preview figures")
    parser.add_argument("--fork-samples", type=int, default=10, help="forks timed (0: none)")
    parser.add_argument(
        "--interpreter-runs", type=int, default=20, help="interpreter runs timed (0: none)"
    )
    options = parser.parse_args()
    timings = create_exec_ms(options.samples)
    cold = create_exec_ms(options.samples, {"SANDBAR_ENGINE_WARM_POOL": "0"})
    bwrap = bare_bwrap_ms(options.bwrap_runs)
    p50, p95 = statistics.median(timings), percentile(timings, 0.95)
    cold_p50, cold_p95 = statistics.median(cold), percentile(cold, 0.95)
    bwrap_p50 = statistics.median(bwrap)
    ratio = p50 / bwrap_p50
    print(f"create -> first exec over {len(timings)} sandboxes: p50 {p50:.1f} ms, p95 {p95:.1f} ms")
    print(f"  without the warm pool: p50 {cold_p50:.1f} ms, p95 {cold_p95:.1f} ms")
    print(f"bare bubblewrap spawn over {len(bwrap)} runs: p50 {bwrap_p50:.1f} ms")
    print(f"ratio (create+exec p50 / bwrap p50): {ratio:.1f}x; target p50 < {TARGET_P50_MS:g} ms")
    summary = {
        "create_exec_p50_ms": round(p50, 1),
        "create_exec_p95_ms": round(p95, 1),
        "bwrap_spawn_p50_ms": round(bwrap_p50, 1),
        "ratio_p50": round(ratio, 2),
        "cold_create_exec_p50_ms": round(cold_p50, 1),
        "cold_create_exec_p95_ms": round(cold_p95, 1),
        "target_p50_ms": TARGET_P50_MS,
        "meets_target": p50 < TARGET_P50_MS,
        "samples": len(timings),
        "date": datetime.date.today().isoformat(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if not options.no_terminals:
        summary.update(terminal_figures())
    summary.update(metrics_figures())
    if not options.no_previews:
        summary.update(preview_figures())
    if options.fork_samples > 0:
        summary.update(fork_figures(options.fork_samples))
    if options.interpreter_runs > 0:
        summary.update(interpreter_figures(options.interpreter_runs))
    print(json.dumps(summary))
    return 0


def terminal_figures() -> dict:
    """PTY echo, output flood, RSS and log-follow figures from bench/pty_flood.py.

    That script measures each figure beside its bare baseline in its own run;
    its lines are shown here and its JSON figures join this script's summary.
    """
    script = Path(__file__).with_name("pty_flood.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=900
    )
    lines = result.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    figures = json.loads(lines[-1])
    figures.pop("date", None)
    # Its targets sit beside this script's own, under names that cannot collide.
    figures["terminal_targets"] = figures.pop("targets", None)
    figures["terminal_meets_targets"] = figures.pop("meets_targets", None)
    return figures


def preview_figures() -> dict:
    """preview_rps and preview_ratio (against the sandbox's port reached directly, in
    the same run) from bench/preview.py."""
    script = Path(__file__).with_name("preview.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=600
    )
    lines = result.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    figures = json.loads(lines[-1])
    for shared in ("date", "load_average_1m"):
        figures.pop(shared, None)
    return figures


def metrics_figures() -> dict:
    """metrics_rss_mb and its companions from bench/telemetry.py (a simulated clock)."""
    script = Path(__file__).with_name("telemetry.py")
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=300
    )
    lines = result.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    return json.loads(lines[-1])


def fork_figures(samples: int, written_mib: int = 1024) -> dict:
    """fork_ms: ``POST /sandbox/{id}/fork`` of a sandbox with ``written_mib`` written to its
    disk, p50 over ``samples`` forks (each deleted untimed), and the disk pool's growth."""
    timings: list[float] = []
    with engine_client(timeout=300) as (client, _, _):
        parent = client.post("/api/sandbox", json={"autoStopInterval": 0}).json()
        write = f"head -c {written_mib}M /dev/urandom > ~/big && sync && echo ok"
        result = client.post(
            f"/toolbox/{parent['id']}/process/execute", json={"command": write}
        ).json()
        assert result["result"] == "ok\n", result
        pool = _pool_mount(parent["id"])
        used_before = _used_bytes(pool) if pool else 0
        grown = 0
        for _ in range(samples):
            start = time.perf_counter()
            child = client.post(f"/api/sandbox/{parent['id']}/fork", json={}).json()
            timings.append((time.perf_counter() - start) * 1000)
            assert child.get("state") == "started", child
            grown = max(grown, (_used_bytes(pool) if pool else 0) - used_before)
            client.delete(f"/api/sandbox/{child['id']}")
    p50 = statistics.median(timings)
    print(f"fork of a sandbox with {written_mib} MiB written, {samples} forks: p50 {p50:.1f} ms")
    return {
        "fork_ms": round(p50, 1),
        "fork_p95_ms": round(percentile(timings, 0.95), 1),
        "fork_written_mib": written_mib,
        "fork_pool_growth_mib": round(grown / 2**20, 1) if pool else None,
        "fork_samples": samples,
    }


def interpreter_figures(runs: int) -> dict:
    """interpreter_first_output_ms: from sending ``print('ready')`` over the code
    interpreter's WebSocket to its stdout frame, p50 over ``runs`` runs in the default
    context (the worker already up); the first run, which starts the worker, apart.
    Beside it the floor: the same line as a one-shot ``python3 -c`` through
    ``process/execute``, which starts a fresh interpreter every time."""
    from websockets.sync.client import connect

    code = "print('ready')"
    first = 0.0
    warm: list[float] = []
    floor: list[float] = []
    with engine_client(timeout=120) as (client, port, headers):
        box = client.post("/api/sandbox", json={"autoStopInterval": 0}).json()
        url = f"ws://127.0.0.1:{port}/toolbox/{box['id']}/process/interpreter/execute"
        for index in range(runs + 1):
            with connect(url, additional_headers=headers, open_timeout=60) as socket_:
                start = time.perf_counter()
                socket_.send(json.dumps({"code": code}))
                frame = json.loads(socket_.recv(timeout=60))
                elapsed = (time.perf_counter() - start) * 1000
                assert (frame["type"], frame["text"]) == ("stdout", "ready\n"), frame
            if index == 0:
                first = elapsed
            else:
                warm.append(elapsed)
        for _ in range(runs):
            start = time.perf_counter()
            result = client.post(
                f"/toolbox/{box['id']}/process/execute",
                json={"command": f'python3 -c "{code}"'},
            ).json()
            floor.append((time.perf_counter() - start) * 1000)
            assert result["result"] == "ready\n", result
        client.delete(f"/api/sandbox/{box['id']}")
    p50, floor_p50 = statistics.median(warm), statistics.median(floor)
    print(
        f"interpreter print -> stdout frame over {runs} runs: p50 {p50:.1f} ms "
        f"(first run, starting the worker: {first:.1f} ms); "
        f"one-shot python3 -c through execute: p50 {floor_p50:.1f} ms"
    )
    return {
        "interpreter_first_output_ms": round(p50, 1),
        "interpreter_cold_first_output_ms": round(first, 1),
        "interpreter_oneshot_floor_ms": round(floor_p50, 1),
        "interpreter_ratio": round(p50 / floor_p50, 2),
    }


def _pool_mount(sandbox_id: str) -> Path | None:
    """The engine's disk pool (an XFS image, see dashboard/engine/runtime/disk.py)."""
    for image in Path("/run/sandbar").glob(f"*/disk-pool/{sandbox_id}/disk.img"):
        return image.parent.parent
    return None


def _used_bytes(mount: Path) -> int:
    stats = os.statvfs(mount)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


if __name__ == "__main__":
    raise SystemExit(main())
