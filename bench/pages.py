"""The dashboard's pages next to the calls they are built from, in the same run.

Starts a throwaway engine on a free loopback port, fills it with 1,000 sandboxes
(created, then stopped so they hold no processes), 100 snapshots (each a copy of a
tiny directory) and 100 volumes, fills the dashboard's database with 1,000,000 chained
audit entries (written in bulk, hashed as the trail hashes them), serves the dashboard
with uvicorn in its own process, with the options `make run` uses (bench/pages_app.py
adds the bench-only floor views), and times, alternately, from one client (httpx, one
event loop):

- the raw API call the sandboxes page makes: ``GET /api/sandbox?limit=100``;
- each page for a signed-in admin: ``/sandboxes/?limit=100``, ``/snapshots/?limit=100``,
  ``/volumes/``, ``/limits/``, ``/audit/`` (the newest 50 of the million entries, and
  a page from the middle by its keyset cursor): HTTP, middleware, the view, the data
  calls, the template;
- beside each, its floor: a view behind the same server and stack that makes the same
  data calls (the Daytona client, or the audit queries) and draws nothing. The page's
  ratio to its own floor is what drawing the page costs;
- the audit page at a cursor no sample has loaded before, so none of its rows is kept
  (``audit_cold``): what a reader paging back through the trail waits for;
- the export of all 1,000,000 audit entries as CSV, streamed: rows per second, and the
  server's peak RSS growth over its RSS before the export (/proc, sampled every 20 ms);
  beside it its floor, the same chunked reads streamed as one empty line per entry
  with nothing encoded: what the database and the server cost before a byte of the file.

The last line printed is one JSON object. All traffic stays on 127.0.0.1.

    python bench/pages.py [--sandboxes 1000] [--snapshots 100] [--volumes 100]
                          [--audit-entries 1000000] [--samples 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
from serving import free_port, scratch, serve_dashboard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_RATIO = 1.3
FLOOR_TARGET = 1.5  # each page against its own floor
EXPORT_ROWS_TARGET = 100_000  # rows per second
EXPORT_MB_TARGET = 32


async def seed(api_url: str, key: str, count: int) -> None:
    """Create `count` sandboxes, then stop them all, a few at a time."""
    headers = {"Authorization": f"Bearer {key}"}
    gate = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=120) as http:

        async def one(index: int) -> None:
            async with gate:
                body = {"name": f"bench-{index:04d}", "labels": {"sandbar.owner": "ada"}}
                created = (await http.post("/sandbox", json=body)).raise_for_status().json()
                (await http.post(f"/sandbox/{created['id']}/stop")).raise_for_status()

        await asyncio.gather(*(one(i) for i in range(count)))


async def seed_resources(api_url: str, key: str, snapshots: int, volumes: int, src: Path) -> None:
    """`snapshots` snapshots (copies of a tiny directory) and `volumes` volumes, then wait
    for the snapshots to be active."""
    headers = {"Authorization": f"Bearer {key}"}
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=120) as http:

        async def snapshot(index: int) -> None:
            async with gate:
                body = {"name": f"bench-snap-{index:04d}", "imageName": f"dir:{src}"}
                (await http.post("/snapshots", json=body)).raise_for_status()

        async def volume(index: int) -> None:
            async with gate:
                body = {"name": f"bench-vol-{index:04d}"}
                (await http.post("/volumes", json=body)).raise_for_status()

        await asyncio.gather(*(snapshot(i) for i in range(snapshots)))
        await asyncio.gather(*(volume(i) for i in range(volumes)))
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            page = (await http.get("/snapshots", params={"limit": 200})).json()
            states = [s["state"] for s in page["items"] if s["name"].startswith("bench-snap-")]
            if len(states) == snapshots and all(state == "active" for state in states):
                return
            await asyncio.sleep(0.5)
        raise RuntimeError("the snapshots did not become active")


def seed_audit(count: int, actor) -> None:
    """`count` entries over the last 60 days, chained and hashed as `record` does, written
    in batches (record() takes a lock and a query per entry: hours for a million)."""
    from datetime import timedelta

    from django.utils import timezone

    from dashboard.audit.models import GENESIS_HASH, AuditEntry

    actions = ["sandbox.start", "sandbox.stop", "terminal.open", "file.download", "team.role"]
    outcomes = ["success"] * 8 + ["failure", "denied"]
    start = timezone.now() - timedelta(days=60)
    step = timedelta(days=60) / max(count, 1)
    previous, batch = GENESIS_HASH, []
    for seq in range(1, count + 1):
        entry = AuditEntry(
            seq=seq,
            created_at=start + step * seq,
            actor_id=actor.pk,
            actor_name=actor.get_username(),
            action=actions[seq % len(actions)],
            target_kind="sandbox",
            target_id=f"sb-{seq % 5000:04d}",
            target_name=f"bench-{seq % 5000:04d}",
            outcome=outcomes[seq % len(outcomes)],
            client_ip="127.0.0.1",
            user_agent="bench/pages.py",
            detail={"n": seq},
            prev_hash=previous,
        )
        entry.hash = previous = entry.compute_hash()
        batch.append(entry)
        if len(batch) == 20_000:
            AuditEntry.objects.bulk_create(batch)
            batch = []
    AuditEntry.objects.bulk_create(batch)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """The process's user and system CPU time so far (/proc/<pid>/stat, fields 14-15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandboxes", type=int, default=1000)
    parser.add_argument("--snapshots", type=int, default=100)
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--audit-entries", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()

    with scratch("sandbar-bench-pages-") as work:
        os.environ["SANDBAR_DATA_DIR"] = str(work / "web")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        from tests.engine_server import start_engine

        # Stopped sandboxes still count against the disk quota: make room for all of them.
        engine = start_engine(
            work / "engine",
            SANDBAR_QUOTA_DISK=str(args.sandboxes * 4 + args.volumes * 4),
            SANDBAR_QUOTA_CPU="64",
            SANDBAR_QUOTA_MEMORY="128",
            SANDBAR_QUOTA_SNAPSHOTS=str(args.snapshots + 10),
            SANDBAR_QUOTA_VOLUMES=str(args.volumes + 10),
        )
        dashboard = None
        try:
            started = time.perf_counter()
            asyncio.run(seed(engine.api_url, engine.api_key, args.sandboxes))
            tiny = work / "tiny-root"
            (tiny / "etc").mkdir(parents=True)
            (tiny / "etc" / "hostname").write_text("bench\n")
            asyncio.run(
                seed_resources(engine.api_url, engine.api_key, args.snapshots, args.volumes, tiny)
            )
            print(
                f"seeded {args.sandboxes} sandboxes, {args.snapshots} snapshots, "
                f"{args.volumes} volumes in {time.perf_counter() - started:.1f} s"
            )

            import django

            django.setup()
            from django.core.management import call_command
            from django.test import Client

            from dashboard.accounts.models import Role, User

            call_command("migrate", verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)  # as `make run` does
            admin = User.objects.create_user(username="ada", password="x" * 20, role=Role.ADMIN)
            started = time.perf_counter()
            seed_audit(args.audit_entries, admin)
            print(
                f"seeded {args.audit_entries} audit entries "
                f"in {time.perf_counter() - started:.1f} s"
            )
            browser = Client()
            browser.force_login(admin)
            cookie = browser.cookies["sessionid"].value
            port = free_port()
            dashboard = serve_dashboard(work / "web", engine, port, app="pages_app:application")
            results = asyncio.run(measure(args, engine, port, cookie, dashboard.pid))
        finally:
            if dashboard is not None:
                dashboard.terminate()
                dashboard.wait(10)
            engine.stop()
    report(args, results)
    return 0


PAGES = {
    # name: (page path, query, what the page must hold, floor path, what the floor answers)
    "sandboxes": ("/sandboxes/", {"limit": "100"}, b'<tr id="sb-', "/bench-floor/", None),
    "snapshots": ("/snapshots/", {"limit": "100"}, b"bench-snap-", "/bench-floor/snapshots/", None),
    "volumes": ("/volumes/", {}, b"bench-vol-", "/bench-floor/volumes/", None),
    "limits": ("/limits/", {}, b"ada", "/bench-floor/limits/", None),
    "audit": ("/audit/", {}, b'class="audit-entry"', "/bench-floor/audit/", b"50"),
}


async def measure(args, engine, port: int, cookie: str, pid: int) -> dict:
    api = httpx.AsyncClient(
        base_url=engine.api_url, headers={"Authorization": f"Bearer {engine.api_key}"}, timeout=60
    )
    web = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", cookies={"sessionid": cookie}, timeout=120
    )
    pages = dict(PAGES)
    # A page from the middle of the trail, by its keyset cursor: as fast as the first.
    middle = {"before": str(args.audit_entries // 2)}
    pages["audit_middle"] = (
        "/audit/",
        middle,
        b'class="audit-entry"',
        "/bench-floor/audit/",
        b"50",
    )
    async with api, web:

        async def timed(http: httpx.AsyncClient, url: str, query: dict) -> tuple:
            start = time.perf_counter()
            response = await http.get(url, params=query)
            return (time.perf_counter() - start) * 1000, response

        async def time_raw() -> float:
            elapsed, response = await timed(api, "/sandbox", {"limit": "100"})
            assert response.status_code == 200
            return elapsed

        async def time_page(name: str) -> float:
            path, query, marker, _, _ = pages[name]
            elapsed, response = await timed(web, path, query)
            assert response.status_code == 200, (name, response.status_code)
            assert marker in response.content, name
            return elapsed

        async def time_floor(name: str) -> float:
            _, query, _, path, expected = pages[name]
            elapsed, response = await timed(web, path, query)
            assert response.status_code == 200, (name, response.status_code)
            assert expected is None or response.content == expected, response.content
            return elapsed

        for _ in range(3):  # warm every path (connections, template cache)
            await time_raw()
            for name in pages:
                await time_page(name)
                await time_floor(name)
        times: dict[str, list[float]] = {"raw": []}
        for name in pages:
            times[name], times[f"{name}_floor"] = [], []
        times["audit_cold"], times["audit_cold_floor"] = [], []
        for sample in range(args.samples):
            times["raw"].append(await time_raw())
            for name in pages:
                times[f"{name}_floor"].append(await time_floor(name))
                times[name].append(await time_page(name))
            # A page no one has loaded yet (each sample its own): no row of it is kept.
            cold = {"before": str(args.audit_entries // 3 - sample * 50)}
            pages["audit_cold"] = (*pages["audit_middle"][:1], cold, *pages["audit_middle"][2:])
            times["audit_cold_floor"].append(await time_floor("audit_cold"))
            times["audit_cold"].append(await time_page("audit_cold"))
        export = await measure_export(web, pid, "/bench-floor/audit/export/")
        export["written"] = await measure_export(web, pid, "/audit/export/")
    return {"medians": {k: statistics.median(v) for k, v in times.items()}, "export": export}


async def measure_export(web: httpx.AsyncClient, pid: int, path: str) -> dict:
    """Every entry as CSV (or, from the floor, a line per entry), read to the end; the
    server's RSS sampled meanwhile."""
    baseline = peak = rss_mb(pid)
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    lines = 0
    cpu_before = cpu_seconds(pid)
    start = time.perf_counter()
    async with web.stream("GET", path, params={"format": "csv"}) as response:
        assert response.status_code == 200, response.status_code
        async for chunk in response.aiter_bytes():
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - start
    # Wall time follows the machine's load; the server's CPU time much less so.
    cpu = cpu_seconds(pid) - cpu_before
    done.set()
    await sampler
    rows = lines - 1  # the header
    return {"rows": rows, "seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak - baseline}


def report(args, results: dict) -> None:
    medians, export = results["medians"], results["export"]
    raw = medians["raw"]
    out: dict = {
        "bench": "pages",
        "sandboxes": args.sandboxes,
        "snapshots": args.snapshots,
        "volumes": args.volumes,
        "audit_entries": args.audit_entries,
        "samples": args.samples,
        "sandboxes_page_ms": round(medians["sandboxes"], 2),
        "raw_api_ms": round(raw, 2),
        "floor_ms": round(medians["sandboxes_floor"], 2),
        "floor_ratio": round(medians["sandboxes_floor"] / raw, 3),
        "sandboxes_page_ratio": round(medians["sandboxes"] / raw, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": medians["sandboxes"] / raw <= TARGET_RATIO,
    }
    names = ("sandboxes", "snapshots", "volumes", "limits", "audit", "audit_middle", "audit_cold")
    for name in names:
        ratio = medians[name] / medians[f"{name}_floor"]
        out[f"{name}_page_ms"] = round(medians[name], 2)
        out[f"{name}_floor_page_ms"] = round(medians[f"{name}_floor"], 2)
        out[f"{name}_floor_ratio"] = round(ratio, 3)
        print(
            f"{name}: page {medians[name]:.1f} ms, floor {medians[f'{name}_floor']:.1f} ms, "
            f"ratio {ratio:.2f} (goal <= {FLOOR_TARGET})"
        )
    out["floor_target"] = FLOOR_TARGET
    floor, written = export, export["written"]
    out["export_rows"] = written["rows"]
    out["export_rows_s"] = round(written["rows"] / written["seconds"])
    out["export_rows_per_cpu_s"] = round(written["rows"] / max(written["cpu_seconds"], 0.01))
    out["export_peak_mb"] = round(written["peak_mb"], 1)
    out["export_floor_rows_s"] = round(floor["rows"] / floor["seconds"])
    out["export_floor_rows_per_cpu_s"] = round(floor["rows"] / max(floor["cpu_seconds"], 0.01))
    out["export_floor_ratio"] = round(out["export_floor_rows_s"] / out["export_rows_s"], 3)
    out["export_targets"] = {"rows_s": EXPORT_ROWS_TARGET, "peak_mb": EXPORT_MB_TARGET}
    print(
        f"export floor (the same reads, nothing written): {out['export_floor_rows_s']} rows/s, "
        f"{out['export_floor_rows_per_cpu_s']} rows per server CPU-second"
    )
    print(
        f"export of {written['rows']} entries: {out['export_rows_s']} rows/s "
        f"(goal >= {EXPORT_ROWS_TARGET}), {out['export_rows_per_cpu_s']} rows per server "
        f"CPU-second, peak RSS growth {out['export_peak_mb']} MB "
        f"(goal <= {EXPORT_MB_TARGET})"
    )
    out["date"] = time.strftime("%Y-%m-%d")
    out["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    raise SystemExit(main())
