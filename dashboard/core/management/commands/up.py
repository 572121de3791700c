import os
import signal
import subprocess
import sys
import time

import httpx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Run the dashboard (and the embedded engine, unless Daytona is elsewhere) until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("SANDBAR_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("SANDBAR_PORT", "8000")))
        parser.add_argument(
            "--no-engine", action="store_true", help="Do not start the embedded engine."
        )

    def handle(self, *args, host: str, port: int, no_engine: bool, **options) -> None:
        children: list[subprocess.Popen] = []
        embedded = (
            f"http://{settings.ENGINE_HOST}:{settings.ENGINE_PORT}/api" == settings.DAYTONA_API_URL
        )

        def stop(*_):
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for child in children:
                try:
                    child.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
            sys.exit(0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        if embedded and not no_engine:
            children.append(subprocess.Popen([*manage, "engine"]))
            self._wait_for(
                f"http://{settings.ENGINE_HOST}:{settings.ENGINE_PORT}/api/health", children[0]
            )
        children.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "dashboard.asgi:application",
                    "--host",
                    host,
                    "--port",
                    str(port),
                    "--ws",
                    "websockets-sansio",
                    "--lifespan",
                    "on",
                    "--no-server-header",
                    "--timeout-graceful-shutdown",
                    "5",
                    *(["--proxy-headers"] if settings.BEHIND_PROXY else []),
                ],
                cwd=settings.BASE_DIR,
            )
        )
        self._wait_for(f"http://{host}:{port}/healthz", children[-1])
        self.stdout.write(
            self.style.SUCCESS(
                f"\nSandbar is running at http://{host}:{port}/  (Ctrl-C stops it)\n"
            )
        )
        while True:
            for child in children:
                if child.poll() is not None:
                    self.stderr.write(
                        f"{' '.join(child.args[1:3])} exited ({child.returncode}); stopping."
                    )
                    stop()
            time.sleep(0.5)

    def _wait_for(self, url: str, child: subprocess.Popen, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise CommandError(
                    f"{url} did not come up: its process exited with {child.returncode}"
                )
            try:
                # Any HTTP answer (even 401) means it is listening.
                httpx.get(url, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise CommandError(f"{url} did not answer within {timeout:.0f} s")
