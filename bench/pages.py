"""The sandboxes page next to the raw Daytona call it is built from, in the same run.

Starts a throwaway engine on a free loopback port, fills it with 1,000 sandboxes
(created, then stopped so they hold no processes), then times, alternately:

- the raw API call the page makes: ``GET /api/sandbox?limit=100`` (default sort);
- the dashboard page ``/sandboxes/?limit=100`` for a signed-in admin, through the
  whole Django stack (ASGI handler, middleware, the async view, the client, the
  template), from the same event loop as the raw call.

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
import tempfile
import time
from pathlib import Path

import httpx

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

    work = Path(tempfile.mkdtemp(prefix="sandbar-bench-pages-"))
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
    try:
        started = time.perf_counter()
        asyncio.run(seed(engine.api_url, engine.api_key, args.sandboxes))
        print(f"seeded {args.sandboxes} sandboxes in {time.perf_counter() - started:.1f} s")

        import django

        django.setup()
        from asgiref.sync import async_to_sync
        from django.conf import settings
        from django.core.management import call_command
        from django.test import AsyncClient

        from dashboard.accounts.models import Role, User

        # Static URLs from the source tree, as in the tests: no collectstatic needed.
        settings.STORAGES = {
            **settings.STORAGES,
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        }
        settings.DAYTONA_API_URL = engine.api_url
        settings.DAYTONA_API_KEY = engine.api_key
        settings.ALLOWED_HOSTS = ["testserver"]
        call_command("migrate", verbosity=0)
        admin = User.objects.create_user(username="ada", password="x" * 20, role=Role.ADMIN)
        params = {"limit": "100", "sort": "lastActivityAt", "order": "desc"}

        # Both measured from one event loop, as an ASGI server runs the page.
        async def measure() -> tuple[list[float], list[float]]:
            browser = AsyncClient()
            await browser.aforce_login(admin)
            async with httpx.AsyncClient(
                base_url=engine.api_url,
                headers={"Authorization": f"Bearer {engine.api_key}"},
                timeout=30,
            ) as raw:

                async def time_raw() -> float:
                    start = time.perf_counter()
                    response = await raw.get("/sandbox", params=params)
                    elapsed = (time.perf_counter() - start) * 1000
                    assert len(response.json()["items"]) == 100
                    return elapsed

                async def time_page() -> float:
                    start = time.perf_counter()
                    response = await browser.get("/sandboxes/", {"limit": "100"})
                    elapsed = (time.perf_counter() - start) * 1000
                    assert response.status_code == 200, response.status_code
                    assert response.content.count(b'<tr id="sb-') == 100
                    return elapsed

                for _ in range(3):  # warm both paths (connections, template cache)
                    await time_raw()
                    await time_page()
                raw_ms, page_ms = [], []
                for _ in range(args.samples):
                    raw_ms.append(await time_raw())
                    page_ms.append(await time_page())
            return raw_ms, page_ms

        raw_ms, page_ms = async_to_sync(measure)()
    finally:
        engine.stop()
    raw_median = statistics.median(raw_ms)
    page_median = statistics.median(page_ms)
    ratio = page_median / raw_median
    print(
        f"sandboxes page (100 of {args.sandboxes}): {page_median:.1f} ms; "
        f"raw API call: {raw_median:.1f} ms; ratio {ratio:.2f} (target <= {TARGET_RATIO})"
    )
    print(
        json.dumps(
            {
                "bench": "pages",
                "sandboxes": args.sandboxes,
                "samples": args.samples,
                "sandboxes_page_ms": round(page_median, 2),
                "raw_api_ms": round(raw_median, 2),
                "sandboxes_page_ratio": round(ratio, 3),
                "target_ratio": TARGET_RATIO,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
