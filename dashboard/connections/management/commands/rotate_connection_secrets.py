from django.core.management.base import BaseCommand, CommandError

from dashboard.connections import vault
from dashboard.connections.models import Connection


class Command(BaseCommand):
    help = (
        "Seal every connection's secret again under the newest key of SANDBAR_SECRET_KEYS "
        "(after adding a key in front), so older keys can then be removed. --new-key prints "
        "a fresh key and changes nothing."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--new-key", action="store_true", help="print a new Fernet key")

    def handle(self, *args, new_key: bool = False, **options) -> None:
        if new_key:
            self.stdout.write(vault.new_key())
            return
        unreadable = []
        done = 0
        for connection in Connection.objects.all():
            try:
                sealed = vault.reseal(connection.sealed_secret)
            except vault.SecretUnreadable:
                unreadable.append(connection.name)
                continue
            # update(): the secret only, not updated_at's meaning of "edited by someone".
            Connection.objects.filter(pk=connection.pk).update(sealed_secret=sealed)
            done += 1
        self.stdout.write(f"Sealed {done} connection secret(s) under the newest key.")
        if unreadable:
            raise CommandError(
                "No configured key opens the secret of: " + ", ".join(unreadable) + ". "
                "Put the old key back in SANDBAR_SECRET_KEYS, or enter these secrets again."
            )
