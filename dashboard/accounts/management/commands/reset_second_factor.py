from django.core.management.base import BaseCommand, CommandError

from dashboard.accounts.models import SecondFactor, User
from dashboard.audit.trail import record


class Command(BaseCommand):
    help = "Turn off someone's two-step sign-in (they lost their authenticator app)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")

    def handle(self, *args, username: str, **options) -> None:
        person = User.objects.filter(username=username).first()
        if person is None:
            raise CommandError(f"Nobody is called {username!r}.")
        deleted, _ = SecondFactor.objects.filter(user=person).delete()
        if not deleted:
            raise CommandError(f"{username} has no second factor.")
        record(
            None,
            "auth.second_factor_off",
            actor_name="manage.py",
            target_kind="user",
            target_id=str(person.pk),
            target_name=person.username,
        )
        self.stdout.write(
            f"{username} signs in with the password alone until they set it up again."
        )
