from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from dashboard.audit.trail import prune


class Command(BaseCommand):
    help = (
        "Remove audit entries older than SANDBAR_AUDIT_RETENTION_DAYS, keeping an anchor "
        "so verify_audit_chain still proves the rest. Run it daily (cron, a systemd timer)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, help="override SANDBAR_AUDIT_RETENTION_DAYS")

    def handle(self, *args, days: int | None = None, **options) -> None:
        days = days if days is not None else settings.AUDIT_RETENTION_DAYS
        if not days:
            self.stdout.write("SANDBAR_AUDIT_RETENTION_DAYS is not set: every entry is kept.")
            return
        if days < 1:
            raise CommandError("--days must be at least 1")
        made = prune(days)
        if made is None:
            self.stdout.write(f"nothing older than {days} days")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"removed {made.pruned} entries through #{made.seq} "
                f"({made.created_at:%Y-%m-%d %H:%M:%S %Z}); anchor {made.hash[:16]}…"
            )
        )
