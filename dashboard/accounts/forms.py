from django import forms
from django.contrib.auth.forms import AuthenticationForm

from dashboard.accounts.models import Role, User


class SignInForm(AuthenticationForm):
    error_messages = {
        "invalid_login": "That username and password do not match. Check both and try again.",
        "inactive": "This account has been deactivated. Ask an admin to reactivate it.",
    }


class PersonForm(forms.ModelForm):
    """An admin adds someone; they set their own password through an invitation link."""

    class Meta:
        model = User
        fields = ["username", "first_name", "last_name", "email", "role"]
        help_texts = {"username": "Letters, digits and @ . + - _ only; what they sign in with."}

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError("Someone on the team already has that username.")
        return username


class RoleForm(forms.Form):
    role = forms.ChoiceField(
        choices=Role.choices,
        error_messages={
            "invalid_choice": "%(value)s is not a role: choose admin, member or viewer."
        },
    )


class ActiveForm(forms.Form):
    active = forms.TypedChoiceField(
        choices=[("true", "Active"), ("false", "Deactivated")],
        coerce=lambda value: value == "true",
        error_messages={"invalid_choice": "Choose whether the account is active or deactivated."},
    )
