from django.core.management.base import BaseCommand, CommandError

from dashboard.audit.models import AuditEntry
from dashboard.audit.trail import verify_chain


class Command(BaseCommand):
    help = "Check that no audit entry was changed, removed or inserted out of order."

    def handle(self, *args, **options) -> None:
        problems = list(verify_chain())
        for problem in problems:
            self.stderr.write(f"entry #{problem.seq}: {problem.reason}")
        if problems:
            raise CommandError(f"the audit chain is broken in {len(problems)} place(s)")
        count = AuditEntry.objects.count()
        self.stdout.write(self.style.SUCCESS(f"audit chain intact: {count} entries verified"))
