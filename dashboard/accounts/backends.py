from django.contrib.auth.backends import ModelBackend

from dashboard.accounts.models import ROLE_PERMISSIONS, User


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

    def has_perm(self, user_obj, perm: str, obj=None) -> bool:
        # Role permissions first: no query for the common case (the audit pages).
        if user_obj.is_active and perm in ROLE_PERMISSIONS.get(getattr(user_obj, "role", ""), ()):
            return True
        return super().has_perm(user_obj, perm, obj)
