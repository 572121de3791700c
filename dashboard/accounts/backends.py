from django.contrib.auth.backends import ModelBackend

from dashboard.accounts.models import User


class SignInBackend(ModelBackend):
    """Password sign-in that can tell a deactivated account apart.

    `authenticate` accepts inactive accounts so the sign-in form can say the
    account is deactivated instead of "wrong password"; `get_user` refuses them,
    so deactivating someone ends their open sessions at their next request.
    """

    def user_can_authenticate(self, user) -> bool:
        return True

    def get_user(self, user_id) -> User | None:
        user = super().get_user(user_id)
        return user if user is not None and user.is_active else None

    async def aget_user(self, user_id) -> User | None:
        # `request.auser()` asks this one; it must refuse the same accounts.
        user = await super().aget_user(user_id)
        return user if user is not None and user.is_active else None
