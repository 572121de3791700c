"""Start the engine: API key, single-instance lock, uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import resource
import secrets
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import uvicorn

from dashboard.engine import image, prereqs
from dashboard.engine.config import ConfigError, EngineConfig, load_config

log = logging.getLogger("sandbar.engine")
# Idle keep-alive connections are kept well past the dashboard client's 5 s
# (daytona/client.py KEEPALIVE_SECONDS): with equal limits, a connection the engine was
# closing was now and then picked for a request (ReadError, RemoteProtocolError).
KEEP_ALIVE_SECONDS = 30


def key_path(config: EngineConfig) -> Path:
    """Where the API key is kept."""
    return config.engine_dir / "api-key"


def ensure_api_key(config: EngineConfig) -> str:
    """Return the API key, generating it (mode 0600) on first run."""
    path = key_path(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        key = path.read_text().strip()
        if key:
            return key
    key = secrets.token_urlsafe(32)
    # O_EXCL: if two processes race on the first run, one key wins and both use it.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


@contextlib.contextmanager
def instance_lock(config: EngineConfig) -> Iterator[None]:
    """Refuse to run two engines on one data directory (they would fight over sandboxes)."""
    config.engine_dir.mkdir(parents=True, exist_ok=True)
    with open(config.engine_dir / "engine.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SystemExit(f"another engine is already using {config.engine_dir}") from None
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


def uvicorn_config(config: EngineConfig, app: Any) -> uvicorn.Config:
    """How the engine is served.

    The event loop is the standard library's, never uvloop (which uvicorn would pick
    when it is installed): uvloop's pipe transports close their descriptor twice, once
    in libuv and once through the file object they were given (MagicStack/uvloop#763).
    The engine reads every command's output through such pipes while worker threads
    open disk images, loop devices and directories, so the second close now and then
    hit a descriptor another thread had just been given: a client's socket (dropped
    connections), a disk image or loop device (failed starts, mounts left behind), a
    terminal (``File descriptor N is used by transport``, ``[Errno 17] File exists``).
    """
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="asyncio",
        lifespan="on",
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
    )


def host_report(config: EngineConfig) -> prereqs.Report:
    """The host checks, with the default image's among them."""
    report = prereqs.run_checks(first_uid=config.sandbox_uid, uid_count=config.sandbox_uid_count)
    missing = image.DefaultImage.for_data_dir(config.data_dir).missing_message()
    report.checks.append(
        prereqs.Check(
            "default image",
            not missing,
            missing.splitlines()[0] if missing else "built",
            f"{image.BUILD_COMMAND} (as root; make run and make test do it)",
        )
    )
    return report


def raise_open_files_limit() -> int:
    """Raise the soft limit on open descriptors to the hard one; the new soft limit.

    Each terminal holds three (its PTY, its client's socket, the toolbox's), so the
    usual soft 1024 ends near 300 terminals while the hard limit allows far more.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def serve(config: EngineConfig, report: prereqs.Report) -> None:
    """Run the engine in the foreground until SIGINT or SIGTERM."""
    from dashboard.engine import ssh
    from dashboard.engine.app import create_app
    from dashboard.engine.lifecycle import Engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    log.info("open files limit %d", raise_open_files_limit())
    with instance_lock(config):
        api_key = ensure_api_key(config)
        engine = Engine(config, report)
        app = create_app(engine, api_key)
        ssh.install(app, engine)  # the SSH gateway, when SANDBAR_ENGINE_SSH_PORT is set
        log.info("engine API at %s (key in %s)", config.api_url, key_path(config))
        server = uvicorn.Server(uvicorn_config(config, app))
        server.run()
        if not server.started:
            raise SystemExit(1)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add the engine's command-line options (shared with ``manage.py engine``)."""
    parser = parser or argparse.ArgumentParser(prog="engine", description=__doc__)
    parser.add_argument("--host", help="address to listen on (default SANDBAR_ENGINE_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default SANDBAR_ENGINE_PORT)")
    parser.add_argument("--data-dir", help="data directory (default SANDBAR_DATA_DIR)")
    parser.add_argument("--print-key", action="store_true", help="print the API key and exit")
    parser.add_argument("--print-url", action="store_true", help="print the API URL and exit")
    parser.add_argument(
        "--check",
        action="store_true",
        help="check the host's prerequisites, print each with its fix, and exit (1 if one fails)",
    )
    parser.add_argument(
        "--build-image",
        action="store_true",
        help="build the default sandbox image if it is missing (debootstrap, once) and exit",
    )
    return parser


def run(
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: str | None = None,
    print_key: bool = False,
    print_url: bool = False,
    build_image: bool = False,
    check: bool = False,
) -> int:
    """Apply the options over the environment, then print or serve."""
    try:
        config = load_config()
    except ConfigError as error:
        print(f"engine: {error}", file=sys.stderr)
        return 2
    if port is not None and not 0 <= port <= 65535:
        print("engine: --port must be between 0 and 65535", file=sys.stderr)
        return 2
    config = config.with_overrides(
        host=host, port=port, data_dir=Path(data_dir).absolute() if data_dir else None
    )
    if print_key or print_url:
        if print_url:
            print(config.api_url)
        if print_key:
            print(ensure_api_key(config))
        return 0
    if build_image:
        return image.build_command(config.data_dir)
    report = host_report(config)
    if check:
        print(report.text())
        print("all prerequisites are met" if report.ok else "some prerequisites are missing")
        return 0 if report.ok else 1
    # Never fall back to the host's /usr: without its image the engine does not start.
    missing = image.DefaultImage.for_data_dir(config.data_dir).missing_message()
    if missing:
        print(f"engine: {missing}", file=sys.stderr)
        return 1
    if report.fatal:
        print("engine: the host is not ready:", file=sys.stderr)
        print("\n".join(check.line() for check in report.fatal), file=sys.stderr)
        print("(python manage.py engine --check lists every prerequisite)", file=sys.stderr)
        return 1
    serve(config, report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m dashboard.engine``."""
    options = build_parser().parse_args(argv)
    return run(
        host=options.host,
        port=options.port,
        data_dir=options.data_dir,
        print_key=options.print_key,
        print_url=options.print_url,
        build_image=options.build_image,
        check=options.check,
    )
