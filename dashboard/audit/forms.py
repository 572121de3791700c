"""The audit trail's filters. Every one lives in the URL, so a link reproduces the view."""

from datetime import UTC, datetime, timedelta

from django import forms
from django.core.validators import RegexValidator
from django.utils import timezone

from dashboard.audit.models import Outcome

# Quick ranges are relative to the moment the page is asked for: a link to "last hour"
# shows the last hour whenever it is opened.
QUICK_RANGES: dict[str, tuple[str, timedelta]] = {
    "15m": ("15 min", timedelta(minutes=15)),
    "1h": ("1 h", timedelta(hours=1)),
    "24h": ("24 h", timedelta(hours=24)),
    "7d": ("7 d", timedelta(days=7)),
    "30d": ("30 d", timedelta(days=30)),
}
CUSTOM = "custom"
# A cursor is an entry's seq; anything past this is not one (and would overflow SQLite).
MAX_CURSOR = 2**62
REFRESH_CHOICES = [("", "Off"), (10, "10 s"), (30, "30 s"), (60, "1 min")]

_action = RegexValidator(r"^[a-z0-9_]+(\.[a-z0-9_]+)*\.?$", "Not an action name.")
_kind = RegexValidator(r"^[a-z0-9_-]+$", "Not a target type.")


def _storable(moment: datetime) -> None:
    """The database compares in UTC: a time near year 1 or 9999 with an offset has none."""
    try:
        moment.astimezone(UTC)
    except OverflowError:
        raise forms.ValidationError("Enter a date between the years 1 and 9999.") from None


def _datetime_field() -> forms.DateTimeField:
    return forms.DateTimeField(
        validators=[_storable],
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        error_messages={"invalid": "Enter a date and time like 2026-12-03T14:30."},
    )


class AuditFilterForm(forms.Form):
    """Filters for the audit trail; every field is optional. Unknown keys are an error,
    not ignored: a mistyped filter silently ignored shows more than the reader asked."""

    range = forms.ChoiceField(
        required=False,
        choices=[
            ("", "All time"),
            *((key, label) for key, (label, _) in QUICK_RANGES.items()),
            (CUSTOM, "Custom"),
        ],
        label="Time",
    )
    since = _datetime_field()
    until = _datetime_field()
    actor = forms.CharField(required=False, max_length=150, label="Who")
    # An exact action, or "sandbox." for every action of a kind.
    action = forms.CharField(required=False, max_length=64, validators=[_action])
    target_kind = forms.CharField(
        required=False, max_length=32, validators=[_kind], label="Target type"
    )
    target = forms.CharField(required=False, max_length=255, label="Target id or name")
    outcome = forms.ChoiceField(required=False, choices=[("", "Any outcome"), *Outcome.choices])
    q = forms.CharField(required=False, max_length=200, label="Text")
    # Keyset cursors: entries older than `before`, or newer than `after`.
    before = forms.IntegerField(required=False, min_value=1, max_value=MAX_CURSOR)
    after = forms.IntegerField(required=False, min_value=0, max_value=MAX_CURSOR)
    refresh = forms.TypedChoiceField(
        required=False, choices=REFRESH_CHOICES, coerce=int, empty_value=None, label="Auto-refresh"
    )

    extra_fields: tuple[str, ...] = ()

    def __init__(self, data, **kwargs) -> None:
        super().__init__(data, **kwargs)
        self.unknown = sorted(set(data or ()) - set(self.fields) - set(self.extra_fields))

    def clean(self):
        data = super().clean()
        if self.unknown:
            known = ", ".join(sorted((*self.fields, *self.extra_fields)))
            names = ", ".join(f"“{name}”" for name in self.unknown[:5])
            raise forms.ValidationError(f"Unknown filter {names}. Filters are: {known}.")
        if data.get("before") and data.get("after") is not None:
            raise forms.ValidationError("Page with “before” or “after”, not both.")
        since, until = data.get("since"), data.get("until")
        chosen = data.get("range")
        if chosen in QUICK_RANGES and (since or until):
            raise forms.ValidationError(
                "A quick range and custom dates together: choose “Custom” to use the dates."
            )
        if since and until and since > until:
            raise forms.ValidationError("“Since” must be before “until”.")
        return data

    def time_range(self, now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
        """The (since, until) the filters mean now; None on a side means open."""
        data = self.cleaned_data
        if data.get("range") in QUICK_RANGES:
            return (now or timezone.now()) - QUICK_RANGES[data["range"]][1], None
        return data.get("since"), data.get("until")


class ExportForm(AuditFilterForm):
    """The page's filters plus the file's format; the cursors and refresh make no sense."""

    format = forms.ChoiceField(choices=[("csv", "CSV"), ("jsonl", "JSON Lines")])

    def clean(self):
        data = super().clean()
        if data.get("before") or data.get("after") is not None:
            raise forms.ValidationError("An export takes every matching entry: no page cursor.")
        return data
