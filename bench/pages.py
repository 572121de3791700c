"""The sandboxes page next to the raw Daytona call it is built from, in the same run.

Starts a throwaway engine on a free loopback port, fills it with 1,000 sandboxes
(created, then stopped so they hold no processes), serves the dashboard with uvicorn
in its own process, with the options `make run` uses (bench/pages_app.py adds one
bench-only view), and times, alternately, from one client (httpx, one event loop):

- the raw API call the page makes: ``GET /api/sandbox?limit=100`` (default sort);
- the dashboard page ``GET /sandboxes/?limit=100`` for a signed-in admin: HTTP,
  middleware, the async view, the Daytona client, the template;
- the floor: a view behind the same server and stack that makes the same Daytona
  call through the same client and draws nothing (``floor_ms``). Its ratio to the
  raw call is what serving any page of this data costs before the first byte of
  HTML; the page's time above it is the page's own.

The ratio of the medians is the dashboard's own cost. The last line printed is one
JSON object. All traffic stays on 127.0.0.1.

    python bench/pages.py [--sandboxes 1000] [--samples 30]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sandboxes", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30)
    args = parser.parse_args()

    with scratch("sandbar-bench-pages-") as work:
        os.environ["SANDBAR_DATA_DIR"] = str(work / "web")
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
        from tests.engine_server import start_engine

        # Stopped sandboxes still count against the disk quota: make room for all of them.
        engine = start_engine(
            work / "engine",
            SANDBAR_QUOTA_DISK=str(args.sandboxes * 4),
            SANDBAR_QUOTA_CPU="64",
            SANDBAR_QUOTA_MEMORY="128",
        )
        dashboard = None
        try:
            started = time.perf_counter()
            asyncio.run(seed(engine.api_url, engine.api_key, args.sandboxes))
            print(f"seeded {args.sandboxes} sandboxes in {time.perf_counter() - started:.1f} s")

            import django

            django.setup()
            from django.core.management import call_command
            from django.test import Client

            from dashboard.accounts.models import Role, User

            call_command("migrate", verbosity=0)
            call_command("collectstatic", interactive=False, verbosity=0)  # as `make run` does
            admin = User.objects.create_user(username="ada", password="x" * 20, role=Role.ADMIN)
            browser = Client()
            browser.force_login(admin)
            cookie = browser.cookies["sessionid"].value
            port = free_port()
            dashboard = serve_dashboard(work / "web", engine, port, app="pages_app:application")
            params = {"limit": "100", "sort": "lastActivityAt", "order": "desc"}

            async def measure() -> tuple[list[float], list[float], list[float]]:
                api = httpx.AsyncClient(
                    base_url=engine.api_url,
                    headers={"Authorization": f"Bearer {engine.api_key}"},
                    timeout=30,
                )
                web = httpx.AsyncClient(
                    base_url=f"http://127.0.0.1:{port}", cookies={"sessionid": cookie}, timeout=30
                )
                async with api, web:

                    async def timed(http: httpx.AsyncClient, url: str, query: dict) -> tuple:
                        start = time.perf_counter()
                        response = await http.get(url, params=query)
                        return (time.perf_counter() - start) * 1000, response

                    async def time_raw() -> float:
                        elapsed, response = await timed(api, "/sandbox", params)
                        assert len(response.json()["items"]) == 100
                        return elapsed

                    async def time_floor() -> float:
                        elapsed, response = await timed(web, "/bench-floor/", {"limit": "100"})
                        assert response.content == b"100", response.content
                        return elapsed

                    async def time_page() -> float:
                        elapsed, response = await timed(web, "/sandboxes/", {"limit": "100"})
                        assert response.status_code == 200, response.status_code
                        assert response.content.count(b'<tr id="sb-') == 100
                        return elapsed

                    for _ in range(5):  # warm every path (connections, template cache)
                        await time_raw()
                        await time_floor()
                        await time_page()
                    raw_ms, floor_ms, page_ms = [], [], []
                    for _ in range(args.samples):
                        raw_ms.append(await time_raw())
                        floor_ms.append(await time_floor())
                        page_ms.append(await time_page())
                return raw_ms, floor_ms, page_ms

            raw_ms, floor_ms, page_ms = asyncio.run(measure())
        finally:
            if dashboard is not None:
                dashboard.terminate()
                dashboard.wait(10)
            engine.stop()
    raw_median = statistics.median(raw_ms)
    floor_median = statistics.median(floor_ms)
    page_median = statistics.median(page_ms)
    ratio = page_median / raw_median
    print(
        f"sandboxes page (100 of {args.sandboxes}): {page_median:.1f} ms; "
        f"raw API call: {raw_median:.1f} ms; ratio {ratio:.2f} (target <= {TARGET_RATIO})"
    )
    print(
        f"floor (same server, stack and call, no page): {floor_median:.1f} ms, "
        f"ratio {floor_median / raw_median:.2f}; the page adds {page_median - floor_median:.1f} ms"
    )
    print(
        json.dumps(
            {
                "bench": "pages",
                "sandboxes": args.sandboxes,
                "samples": args.samples,
                "sandboxes_page_ms": round(page_median, 2),
                "raw_api_ms": round(raw_median, 2),
                "floor_ms": round(floor_median, 2),
                "floor_ratio": round(floor_median / raw_median, 3),
                "sandboxes_page_ratio": round(ratio, 3),
                "target_ratio": TARGET_RATIO,
                "meets_target": ratio <= TARGET_RATIO,
                "date": time.strftime("%Y-%m-%d"),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
