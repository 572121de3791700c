from django import forms

from dashboard.audit.models import Outcome


class AuditFilterForm(forms.Form):
    """Filters for the audit trail; every field is optional and lives in the URL."""

    actor = forms.CharField(required=False, max_length=150)
    # Chosen from the actions on record (see `__init__`); "sandbox." picks all of a kind.
    action = forms.ChoiceField(required=False, choices=[("", "Any action")])
    target = forms.CharField(required=False, max_length=255, label="Target id or name")
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *Outcome.choices])
    since = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    until = forms.DateTimeField(
        required=False, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000)

    def __init__(self, data, *, actions: list[str] = (), **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.fields["action"].choices = [("", "Any action"), *action_choices(actions)]

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("“Since” must be before “until”.")
        return data


def action_choices(actions: list[str]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The actions grouped by kind (sandbox, team…), each group led by "every <kind> action"."""
    groups: dict[str, list[str]] = {}
    for action in sorted(set(actions)):
        groups.setdefault(action.partition(".")[0], []).append(action)
    return [
        (kind, [(f"{kind}.", f"every {kind} action"), *((a, a) for a in names)])
        for kind, names in groups.items()
    ]
