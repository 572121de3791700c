from django import forms

from dashboard.audit.models import Outcome


class AuditFilterForm(forms.Form):
    """Filters for the audit trail; every field is optional and lives in the URL."""

    actor = forms.CharField(required=False, max_length=150)
    action = forms.CharField(
        required=False, max_length=64, help_text="Prefix, e.g. sandbox. or team."
    )
    target = forms.CharField(required=False, max_length=255, label="Target id or name")
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *Outcome.choices])
    since = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“Since” must be before “until”.")
        return data
