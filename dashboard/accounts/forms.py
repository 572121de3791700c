from django import forms
from django.contrib.auth.forms import AuthenticationForm

from dashboard.accounts.models import ConnectionQuota, Role, User


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


class QuotaForm(forms.ModelForm):
    """A member's personal quota on one connection; an empty field means no personal limit."""

    class Meta:
        model = ConnectionQuota
        fields = ["quota_sandboxes", "quota_cpu", "quota_memory", "quota_disk"]
        widgets = {
            name: forms.NumberInput(attrs={"min": 0, "max": 10_000, "placeholder": "no limit"})
            for name in ["quota_sandboxes", "quota_cpu", "quota_memory", "quota_disk"]
        }

    def clean(self):
        data = super().clean()
        for name, value in list(data.items()):
            if value is not None and value > 10_000:
                self.add_error(name, "That is more than any organization holds; use at most 10000.")
        return data
