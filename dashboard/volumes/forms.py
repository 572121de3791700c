import re

from django import forms

# Daytona's rule for volume names (the engine enforces the same).
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class VolumeFilterForm(forms.Form):
    """Search and page of the list; Daytona returns every volume, so both happen here."""

    q = forms.CharField(required=False, max_length=255, label="Name, id or state")
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000)
    refresh = forms.TypedChoiceField(
        required=False,
        choices=[("", "Off"), (10, "10 s"), (30, "30 s"), (60, "1 min"), (300, "5 min")],
        coerce=int,
        empty_value=None,
        label="Auto-refresh",
    )


class CreateVolumeForm(forms.Form):
    name = forms.CharField(
        max_length=63,
        label="Volume name",
        help_text="1 to 63 letters, digits, . _ or -, starting with a letter or digit.",
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not NAME.match(name):
            raise forms.ValidationError(
                "Use 1 to 63 letters, digits, . _ or -, starting with a letter or digit."
            )
        return name
