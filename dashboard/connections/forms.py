from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError

from dashboard.accounts.models import Role, User
from dashboard.connections.models import DEFAULT_NAME, Connection, Kind

# Shorter is no API key or JWT Daytona issues, and the last 4 would be most of it.
MIN_SECRET = 12


class ConnectionForm(forms.ModelForm):
    secret = forms.CharField(
        label="API key or JWT",
        required=False,
        strip=True,
        max_length=8192,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}, render_value=False),
        help_text="Stored encrypted; only its last 4 characters are shown again.",
    )

    class Meta:
        model = Connection
        fields = ["name", "api_url", "kind", "organization_id", "users"]
        widgets = {"users": forms.CheckboxSelectMultiple}
        help_texts = {
            "api_url": "Daytona's API root, e.g. https://app.daytona.io/api.",
            "organization_id": "Needed with a JWT; sent as X-Daytona-Organization-ID.",
            "users": "Members and viewers who may switch to it (admins always may).",
        }

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["users"].queryset = User.objects.exclude(role=Role.ADMIN).order_by("username")
        self.fields["users"].required = False
        if self.instance.pk:
            tail = self.instance.secret_tail
            self.fields[
                "secret"
            ].help_text = (
                f"Saved, ending in …{tail}. Leave empty to keep it; anything typed replaces it."
            )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name.casefold() == DEFAULT_NAME.casefold():
            raise ValidationError(f"“{DEFAULT_NAME}” is the configured connection's name.")
        return name

    def clean_api_url(self) -> str:
        url = self.cleaned_data["api_url"].strip().rstrip("/")
        # A user:token@ in the address would be stored, shown and audited in the clear.
        if "@" in urlsplit(url).netloc:
            raise ValidationError("Put the key in its own field, not in the address.")
        return url

    def clean_organization_id(self) -> str:
        value = self.cleaned_data["organization_id"].strip()
        # It goes into an HTTP header, which carries ASCII only.
        if value and not (value.isascii() and value.isprintable()):
            raise ValidationError("An organization id is visible ASCII characters only.")
        return value

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if not secret:
            if not self.instance.pk:
                raise ValidationError("Enter the API key or JWT.")
            return ""
        # It goes into an HTTP header: one line of visible characters.
        if not (secret.isascii() and secret.isprintable()) or any(c.isspace() for c in secret):
            raise ValidationError("A key or JWT is visible ASCII characters, with no spaces.")
        if len(secret) < MIN_SECRET:
            raise ValidationError(f"A key or JWT is at least {MIN_SECRET} characters long.")
        return secret

    def clean(self) -> dict:
        data = super().clean()
        if data.get("kind") == Kind.JWT and not data.get("organization_id"):
            self.add_error("organization_id", "A JWT needs the organization id.")
        return data

    def save(self, commit: bool = True) -> Connection:
        connection = super().save(commit=False)
        if self.cleaned_data.get("secret"):
            connection.set_secret(self.cleaned_data["secret"])
        if commit:
            connection.save()
            self.save_m2m()
        return connection
