from django.core.management.base import BaseCommand, CommandError

from dashboard.audit.trail import check_chain


class Command(BaseCommand):
    help = (
        "Check that no audit entry was changed, removed or inserted out of order "
        "(from the retention anchor when old entries were pruned)."
    )

    def handle(self, *args, **options) -> None:
        report = check_chain()
        for problem in report.problems:
            self.stderr.write(f"entry #{problem.seq}: {problem.reason}")
        if not report.intact:
            raise CommandError(f"the audit chain is broken in {len(report.problems)} place(s)")
        start = f"from the anchor at #{report.anchor_seq}" if report.anchor_seq else "from #1"
        self.stdout.write(
            self.style.SUCCESS(
                f"audit chain intact: {report.checked} entries verified {start} "
                f"through #{report.through_seq}"
            )
        )
