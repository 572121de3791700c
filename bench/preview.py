"""Requests per second through a preview URL, next to the same server reached directly.

Starts a throwaway engine on a free loopback port and a sandbox running
``python3 -m http.server`` (HTTP/1.1, keep-alive) over a small file. The same load
client then runs twice in one run, each in a subprocess: once inside the sandbox's
network namespace (nsenter, as root) against 127.0.0.1:PORT directly, once against the
engine's port with the preview Host and token. ``preview_ratio`` is preview over
direct. All traffic stays on 127.0.0.1. The last line printed is one JSON object.

    python bench/preview.py [--seconds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.engine_server import EngineServer, start_engine  # noqa: E402

PORT = 8417  # inside the sandbox; unusual, so its server is easy to find in /proc


async def load(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> float:
    """Requests per second from ``concurrency`` keep-alive clients for ``seconds``."""
    done = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        await client.get(url)  # connections and the page cache warm
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await client.get(url)
                assert response.status_code == 200, response.text
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - start)


def run_client(
    prefix: list[str], url: str, headers: dict[str, str], options: argparse.Namespace
) -> float:
    """The load client in a subprocess (behind ``prefix``, e.g. nsenter); its figure."""
    result = subprocess.run(
        [
            *prefix, sys.executable, __file__, "--client", url, json.dumps(headers),
            "--seconds", str(options.seconds), "--concurrency", str(options.concurrency),
        ],
        capture_output=True, text=True, check=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    return float(result.stdout.strip().splitlines()[-1])


def server_pid() -> int:
    """The host pid of the sandbox's http.server (found by its command line)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    argv = (entry / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"http.server" in argv and str(PORT).encode() in argv:
                    return int(entry.name)
        time.sleep(0.1)
    raise SystemExit("the sandbox's server did not start")


def start_site(server: EngineServer) -> tuple[str, str]:
    """A sandbox serving a small file on PORT; its id and preview token."""
    with server.client() as api:
        sandbox = api.post("/sandbox", json={}).json()
        toolbox = f"http://127.0.0.1:{server.port}/toolbox/{sandbox['id']}"
        headers = {"Authorization": f"Bearer {server.api_key}"}
        command = (
            "mkdir -p ~/site && echo hello > ~/site/index.txt && cd ~/site && exec python3 "
            f"-m http.server {PORT} --bind 127.0.0.1 --protocol HTTP/1.1"
        )
        httpx.post(f"{toolbox}/process/session", json={"sessionId": "site"}, headers=headers)
        httpx.post(
            f"{toolbox}/process/session/site/exec",
            json={"command": command, "runAsync": True},
            headers=headers,
        )
        token = api.get(f"/sandbox/{sandbox['id']}/ports/{PORT}/preview-url").json()["token"]
    return sandbox["id"], token


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--client", nargs=2, metavar=("URL", "HEADERS"), help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.client:
        url, headers = options.client
        print(asyncio.run(load(url, json.loads(headers), options.seconds, options.concurrency)))
        return 0
    with tempfile.TemporaryDirectory(prefix="sandbar-bench-") as tmp:
        server = start_engine(Path(tmp))
        try:
            sandbox_id, token = start_site(server)
            pid = server_pid()
            time.sleep(0.5)  # the server's listen() follows its exec
            direct = run_client(
                ["nsenter", f"--net=/proc/{pid}/ns/net", "--"],
                f"http://127.0.0.1:{PORT}/index.txt",
                {},
                options,
            )
            preview = run_client(
                [],
                f"http://127.0.0.1:{server.port}/index.txt",
                {
                    "Host": f"{PORT}-{sandbox_id}.localhost:{server.port}",
                    "X-Daytona-Preview-Token": token,
                },
                options,
            )
        finally:
            server.stop()
    ratio = preview / direct
    print(f"direct to the sandbox's port: {direct:.0f} requests/s")
    print(f"through the preview URL:      {preview:.0f} requests/s ({ratio:.2f} of direct)")
    print(
        json.dumps(
            {
                "preview_rps": round(preview, 1),
                "preview_direct_rps": round(direct, 1),
                "preview_ratio": round(ratio, 3),
                "preview_concurrency": options.concurrency,
                "preview_seconds": options.seconds,
                "date": datetime.date.today().isoformat(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
