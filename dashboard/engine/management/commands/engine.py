"""``python manage.py engine``: run the embedded Daytona-compatible engine."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from dashboard.engine import server


class Command(BaseCommand):
    """Thin wrapper: the engine itself does not depend on Django."""

    help = "Run the embedded engine (a local Daytona-compatible API on bubblewrap sandboxes)."

    def add_arguments(self, parser: CommandParser) -> None:
        """Same options as ``python -m dashboard.engine``."""
        server.build_parser(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        """Print the key or URL, or serve until interrupted."""
        code = server.run(
            host=options["host"],
            port=options["port"],
            data_dir=options["data_dir"],
            print_key=options["print_key"],
            print_url=options["print_url"],
            build_image=options["build_image"],
            check=options["check"],
        )
        if code:
            raise SystemExit(code)
