import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from dashboard.accounts.models import Role, User
from dashboard.audit.trail import record


class Command(BaseCommand):
    help = "Create the first admin account if there is nobody yet, and say how to sign in."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        # Where `manage.py up` serves (the same settings), so the message is right first time.
        host = os.environ.get("SANDBAR_HOST", "127.0.0.1")
        port = os.environ.get("SANDBAR_PORT", "8000")
        parser.add_argument("--url", default=f"http://{host}:{port}/")

    def handle(self, *args, username: str, url: str, **options) -> None:
        password_file = settings.DATA_DIR / "initial-admin-password"
        if not User.objects.exists():
            password = secrets.token_urlsafe(12)
            admin = User.objects.create_user(username=username, password=password, role=Role.ADMIN)
            password_file.touch(mode=0o600)
            password_file.write_text(password + "\n")
            record(
                None,
                "team.create",
                target_kind="user",
                target_id=str(admin.pk),
                target_name=admin.username,
                actor_name="bootstrap",
                detail={"role": Role.ADMIN},
            )
            self.stdout.write(self.style.SUCCESS("Created the first admin account."))
        if not password_file.exists():
            return
        password = password_file.read_text().strip()
        admin = User.objects.filter(username=username).first()
        if admin is None or not admin.check_password(password):
            # The admin chose their own password: the generated one is of no use any more.
            password_file.unlink()
            return
        self.stdout.write(
            f"\n  Sign in at {url}\n    username: {username}\n    password: {password}\n"
            f"  (kept in {password_file} until you change it under “Your account”)\n"
        )
