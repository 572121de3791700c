"""Forms for the sandboxes area: the list's filters, create, and the editable settings."""

import ipaddress
import posixpath
import re
from datetime import UTC

from django import forms
from django.http import QueryDict

from dashboard import daytona
from dashboard.daytona.labels import OWNER_LABEL

PAGE_SIZES = (10, 25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 25
# The states people filter by, in the order Daytona's dashboard offers them.
STATE_CHOICES = [
    (s, s.replace("_", " ").capitalize())
    for s in (
        "started",
        "stopped",
        "error",
        "build_failed",
        "creating",
        "starting",
        "stopping",
        "destroying",
        "archived",
        "archiving",
        "restoring",
        "paused",
    )
]
SORT_CHOICES = [
    ("lastActivityAt", "Last event"),
    ("createdAt", "Created"),
    ("name", "Name"),
]
ORDER_CHOICES = [("desc", "Descending"), ("asc", "Ascending")]
PUBLIC_CHOICES = [("", "Any"), ("true", "Public"), ("false", "Private")]
# Opaque to us, but never a place for markup or control characters.
CURSOR_RE = re.compile(r"^[A-Za-z0-9._~:+/=-]{1,512}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-/]{0,127}$")
ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_PAIRS = 50
# Where Daytona's own examples mount a volume; the blank row's path, a real value.
DEFAULT_MOUNT_PATH = "/home/daytona/volume"
MAX_TRAIL = 50


class _RangeMixin:
    RANGES = (("min_cpu", "max_cpu"), ("min_memory", "max_memory"), ("min_disk", "max_disk"))
    DATES = (("created_after", "created_before"), ("last_event_after", "last_event_before"))

    def _check_ranges(self, data: dict) -> None:
        for low, high in self.RANGES + self.DATES:
            if data.get(low) is not None and data.get(high) is not None and data[low] > data[high]:
                self.add_error(high, "Must not be less than the lower bound.")


def _number(label: str, maximum: int = 1024) -> forms.IntegerField:
    return forms.IntegerField(
        required=False,
        min_value=0,
        max_value=maximum,
        label=label,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "placeholder": "any"}),
    )


def _when(label: str) -> forms.DateTimeField:
    return forms.DateTimeField(
        required=False, label=label, widget=forms.DateTimeInput(attrs={"type": "datetime-local"})
    )


def parse_label_filter(text: str) -> dict[str, str]:
    """`team=web, tier=prod` into {"team": "web", "tier": "prod"}."""
    labels: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not KEY_RE.match(key):
            raise forms.ValidationError(
                "Write labels as key=value, separated by commas (e.g. team=web, tier=prod)."
            )
        labels[key] = value
    if len(labels) > MAX_PAIRS:
        raise forms.ValidationError(f"At most {MAX_PAIRS} labels.")
    return labels


class SandboxFilterForm(_RangeMixin, forms.Form):
    """The list's search, filters, sort and page: all optional, all in the URL."""

    q = forms.CharField(
        required=False, max_length=255, label="Name or id", widget=forms.SearchInput
    )
    states = forms.MultipleChoiceField(
        required=False, choices=STATE_CHOICES, widget=forms.CheckboxSelectMultiple
    )
    snapshot = forms.CharField(required=False, max_length=255)
    labels = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "team=web"}),
    )
    owner = forms.CharField(required=False, max_length=150)
    min_cpu = _number("CPU from")
    max_cpu = _number("CPU to")
    min_memory = _number("Memory GiB from")
    max_memory = _number("Memory GiB to")
    min_disk = _number("Disk GiB from", 100_000)
    max_disk = _number("Disk GiB to", 100_000)
    created_after = _when("Created after")
    created_before = _when("Created before")
    last_event_after = _when("Last event after")
    last_event_before = _when("Last event before")
    public = forms.ChoiceField(required=False, choices=PUBLIC_CHOICES)
    sort = forms.ChoiceField(required=False, choices=SORT_CHOICES)
    order = forms.ChoiceField(required=False, choices=ORDER_CHOICES)
    limit = forms.TypedChoiceField(
        required=False,
        coerce=int,
        empty_value=DEFAULT_PAGE_SIZE,
        choices=[(n, f"{n} per page") for n in PAGE_SIZES],
        label="Page size",
    )
    cursor = forms.CharField(required=False, max_length=512)
    trail = forms.CharField(required=False, max_length=512 * MAX_TRAIL)

    # Filters shown as chips: field name -> label.
    CHIPS = {
        "q": "Name",
        "states": "State",
        "snapshot": "Snapshot",
        "labels": "Labels",
        "owner": "Owner",
        "min_cpu": "CPU ≥",
        "max_cpu": "CPU ≤",
        "min_memory": "Memory ≥",
        "max_memory": "Memory ≤",
        "min_disk": "Disk ≥",
        "max_disk": "Disk ≤",
        "created_after": "Created after",
        "created_before": "Created before",
        "last_event_after": "Last event after",
        "last_event_before": "Last event before",
        "public": "Public",
    }

    def __init__(self, data: QueryDict, *args, **kwargs) -> None:
        # The page size select shows the size in use, also when the URL leaves it out.
        if not data.get("limit"):
            data = data.copy()
            data["limit"] = str(DEFAULT_PAGE_SIZE)
        super().__init__(data, *args, **kwargs)

    def clean_cursor(self) -> str:
        cursor = self.cleaned_data["cursor"]
        if cursor and not CURSOR_RE.match(cursor):
            raise forms.ValidationError("This page link is not valid; start from the first page.")
        return cursor

    def clean_trail(self) -> list[str]:
        trail = [c for c in self.cleaned_data["trail"].split(" ") if c]
        if len(trail) > MAX_TRAIL or not all(CURSOR_RE.match(c) for c in trail):
            raise forms.ValidationError("This page link is not valid; start from the first page.")
        return trail

    def clean_labels(self) -> dict[str, str]:
        return parse_label_filter(self.cleaned_data["labels"])

    def clean(self) -> dict:
        data = super().clean()
        self._check_ranges(data)
        return data

    def query(self) -> daytona.SandboxQuery:
        """The Daytona query for these (valid) filters."""
        data = self.cleaned_data
        labels = dict(data["labels"])
        if data["owner"]:
            labels[OWNER_LABEL] = data["owner"]

        def utc(value):
            return value.astimezone(UTC) if value else None

        return daytona.SandboxQuery(
            cursor=data["cursor"] or None,
            limit=data["limit"] or DEFAULT_PAGE_SIZE,
            name=data["q"] or None,
            labels=labels,
            states=tuple(data["states"]),
            snapshots=(data["snapshot"],) if data["snapshot"] else (),
            min_cpu=data["min_cpu"],
            max_cpu=data["max_cpu"],
            min_memory_gib=data["min_memory"],
            max_memory_gib=data["max_memory"],
            min_disk_gib=data["min_disk"],
            max_disk_gib=data["max_disk"],
            is_public={"true": True, "false": False}.get(data["public"]),
            created_after=utc(data["created_after"]),
            created_before=utc(data["created_before"]),
            last_event_after=utc(data["last_event_after"]),
            last_event_before=utc(data["last_event_before"]),
            sort=data["sort"] or "lastActivityAt",
            order=data["order"] or ("asc" if data["sort"] == "name" else "desc"),
        )

    def chips(self, params: QueryDict) -> list[dict]:
        """The active filters, each with the URL that removes it."""
        chips = []
        for name, label in self.CHIPS.items():
            for value in params.getlist(name):
                if not value:
                    continue
                rest = params.copy()
                rest.setlist(name, [v for v in params.getlist(name) if v != value])
                for paging in ("cursor", "trail"):
                    rest.pop(paging, None)
                shown = value.replace("_", " ") if name == "states" else value
                if name == "public":
                    shown = "yes" if value == "true" else "no"
                chips.append({"label": label, "value": shown, "remove": rest.urlencode()})
        return chips


class KeyValueRows:
    """Key/value rows posted as repeated `<prefix>_key` and `<prefix>_value` fields."""

    def __init__(self, data: QueryDict, prefix: str, *, key_re: re.Pattern = KEY_RE) -> None:
        self.prefix = prefix
        keys = data.getlist(f"{prefix}_key")
        values = data.getlist(f"{prefix}_value")
        self.rows = [
            (k.strip(), (values[i] if i < len(values) else ""))
            for i, k in enumerate(keys)
            if k.strip() or (i < len(values) and values[i].strip())
        ]
        self.key_re = key_re
        self.errors: list[str] = []
        # Row index -> its problem, so a form can show it beside that row's inputs.
        self.row_errors: dict[int, str] = {}

    def clean(self) -> dict[str, str]:
        result: dict[str, str] = {}
        if len(self.rows) > MAX_PAIRS:
            self.errors.append(f"At most {MAX_PAIRS} entries.")
        for index, (key, value) in enumerate(self.rows):
            problem = ""
            if not key:
                problem = f"The value “{value[:40]}” has no key."
            elif not self.key_re.match(key):
                problem = f"“{key[:60]}” is not a valid key."
            elif key in result:
                problem = f"The key “{key}” appears twice; each key once."
            elif len(value) > 4096:
                problem = f"The value of “{key}” is too long (4,096 characters at most)."
            else:
                result[key] = value
            if problem:
                self.errors.append(problem)
                self.row_errors[index] = problem
        return result

    def refuse(self, key: str, why: str) -> None:
        """Mark the row holding `key` as refused, for a rule beyond the key's shape."""
        index = next(i for i, (k, _) in enumerate(self.rows) if k == key)
        self.row_errors[index] = f"“{key}” {why}"
        self.errors.append(self.row_errors[index])

    def shown(self) -> list[tuple[str, str, str]]:
        """(key, value, problem) for each row to draw, and one empty row to start with."""
        rows = [(k, v, self.row_errors.get(i, "")) for i, (k, v) in enumerate(self.rows)]
        return rows or [("", "", "")]

    def general_errors(self) -> list[str]:
        """Problems of the rows as a whole (too many), shown once under them."""
        return [e for e in self.errors if e not in self.row_errors.values()]


def minutes(label: str, *, minimum: int = 0, help_text: str = "") -> forms.IntegerField:
    return forms.IntegerField(
        required=False, min_value=minimum, max_value=525_600, label=label, help_text=help_text
    )


class LifecycleForm(forms.Form):
    """Auto-stop, auto-archive and auto-delete, in minutes."""

    auto_stop = minutes("Auto-stop (min)", help_text="After this long idle; 0 never stops it.")
    auto_archive = minutes(
        "Auto-archive (min)", help_text="After this long stopped; 0 means Daytona's maximum."
    )
    auto_delete = minutes(
        "Auto-delete (min)",
        minimum=-1,
        help_text="After this long stopped; 0 deletes it when it stops; empty never.",
    )


class ResizeForm(forms.Form):
    """A sandbox's CPU, memory and disk; empty keeps what it has."""

    cpu = forms.IntegerField(required=False, min_value=1, max_value=64, label="vCPUs")
    memory = forms.IntegerField(required=False, min_value=1, max_value=512, label="Memory GiB")
    disk = forms.IntegerField(required=False, min_value=1, max_value=4096, label="Disk GiB")


class CreateSandboxForm(LifecycleForm):
    """A new sandbox: everything Daytona's create takes that a person sets by hand."""

    name = forms.CharField(
        required=False,
        max_length=63,
        help_text="Letters, digits, dot, dash and underscore; empty lets Daytona pick one.",
    )
    snapshot = forms.CharField(required=False, max_length=255, help_text="Empty: the default.")
    cpu = forms.IntegerField(required=False, min_value=1, max_value=64, label="vCPUs")
    memory = forms.IntegerField(required=False, min_value=1, max_value=512, label="Memory GiB")
    disk = forms.IntegerField(required=False, min_value=1, max_value=4096, label="Disk GiB")
    ephemeral = forms.BooleanField(
        required=False, help_text="Deleted as soon as it stops (auto-delete 0)."
    )
    public = forms.BooleanField(required=False, label="Public preview URLs")
    network_block_all = forms.BooleanField(required=False, label="Block all network")
    # Never drawn as inputs: they hold the rows' errors so each shows at its rows, not on top.
    env = forms.Field(required=False)
    labels = forms.Field(required=False)
    volumes = forms.Field(required=False)

    def __init__(
        self, *args, volumes: list[daytona.Volume] = (), limits: dict | None = None, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.fields["auto_stop"].initial = 15
        self.volumes = list(volumes)
        self.limits = {name: m for name, m in (limits or {}).items() if m}
        for name, maximum in self.limits.items():
            self.fields[name].widget.attrs["max"] = maximum
            self.fields[name].help_text = f"At most {maximum}."
        data = self.data if self.is_bound else QueryDict()
        self.env_rows = KeyValueRows(data, "env", key_re=ENV_KEY_RE)
        self.label_rows = KeyValueRows(data, "label")
        # A row left at "no volume" with the path untouched is the form's blank row, not a mount.
        self.volume_rows = [
            (v, p.strip())
            for v, p in zip(data.getlist("volume_id"), data.getlist("volume_path"), strict=False)
            if v or p.strip() not in ("", DEFAULT_MOUNT_PATH)
        ]
        # Row index -> ("volume" or "path", the problem), shown beside that input.
        self.volume_errors: dict[int, tuple[str, str]] = {}

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name and not NAME_RE.match(name):
            raise forms.ValidationError(
                "Use letters, digits, dot, dash and underscore, starting with a letter or digit."
            )
        return name

    def clean(self) -> dict:
        data = super().clean()
        env = self.env_rows.clean()
        for error in self.env_rows.errors:
            self.add_error("env", error)
        labels = self.label_rows.clean()
        if OWNER_LABEL in labels:
            self.label_rows.refuse(OWNER_LABEL, "is set by Sandbar to who created it.")
        for error in self.label_rows.errors:
            self.add_error("labels", error)
        mounts = self._mounts()
        for index, (_, problem) in sorted(self.volume_errors.items()):
            self.add_error("volumes", f"Row {index + 1}: {problem}")
        data.update(env=env, labels=labels, volumes=mounts)
        for name, maximum in self.limits.items():
            if data.get(name) and data[name] > maximum:
                self.add_error(name, f"The organization allows at most {maximum} per sandbox.")
        if data.get("ephemeral"):
            data["auto_delete"] = 0
        return data

    def _mounts(self) -> list[daytona.VolumeMount]:
        """The chosen mounts; each bad row's problem goes to `volume_errors`."""
        names = {v.id: v.name for v in self.volumes}
        mounts, paths = [], set()
        for index, (volume_id, path) in enumerate(self.volume_rows):
            if volume_id not in names:
                problem = ("volume", f"Choose a volume to mount at {path[:60]}, or clear the path.")
            elif not path:
                problem = (
                    "path",
                    f"Give a path to mount it at, e.g. /home/daytona/{names[volume_id]}.",
                )
            elif not path.startswith("/") or len(path) > 255:
                problem = (
                    "path",
                    "Give an absolute path (starting with /), 255 characters at most.",
                )
            elif path == "/" or posixpath.normpath(path) != path:
                problem = (
                    "path",
                    "Give a plain path without . or .. or a trailing /, not / itself.",
                )
            elif path in paths:
                problem = ("path", "Another volume is mounted here already; use each path once.")
            else:
                paths.add(path)
                mounts.append(daytona.VolumeMount(volume_id, path))
                continue
            self.volume_errors[index] = problem
        return mounts

    def refused(self, message: str) -> None:
        """Daytona's refusal, put beside what it is about when its words say so."""
        if "mountPath" in message:
            shown = message.replace("mountPath", "Mount path")
            for index, (_, path) in enumerate(self.volume_rows):
                if path and path in message:
                    self.volume_errors[index] = ("path", shown)
                    self.add_error("volumes", shown)
                    return
        elif message.lower().startswith("snapshot") and "snapshot" in self.fields:
            self.add_error("snapshot", message)
            return
        self.add_error(None, message)

    def shown_volume_rows(self) -> list[dict[str, str]]:
        """Each volume row to draw with its problem; with none, a blank row with a real path."""
        rows = self.volume_rows or [("", DEFAULT_MOUNT_PATH)]
        return [
            {
                "volume_id": volume_id,
                "path": path,
                "error_on": self.volume_errors.get(index, ("", ""))[0],
                "error": self.volume_errors.get(index, ("", ""))[1],
            }
            for index, (volume_id, path) in enumerate(rows)
        ]


class LabelsForm(forms.Form):
    """A sandbox's labels; the owner label is kept as it is."""

    def __init__(self, data: QueryDict) -> None:
        super().__init__(data)
        self.rows = KeyValueRows(data, "label")

    def clean(self) -> dict:
        data = super().clean()
        labels = self.rows.clean()
        for error in self.rows.errors:
            self.add_error(None, error)
        if OWNER_LABEL in labels:
            self.add_error(None, f"“{OWNER_LABEL}” is set by Sandbar and cannot be edited here.")
        data["labels"] = labels
        return data


# Daytona's rules for networkAllowList: IPv4 networks with a prefix length, at most ten.
MAX_ALLOWED_NETWORKS = 10


class NetworkForm(forms.Form):
    """Public previews and network access."""

    public = forms.BooleanField(required=False, label="Public preview URLs")
    network_block_all = forms.BooleanField(required=False, label="Block all network")
    network_allow_list = forms.CharField(
        required=False,
        max_length=1000,
        label="Allowed networks",
        help_text="Comma-separated IPv4 networks, e.g. 203.0.113.0/24; empty: no narrowing.",
    )

    def clean_network_allow_list(self) -> str:
        value = self.cleaned_data["network_allow_list"]
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if len(parts) > MAX_ALLOWED_NETWORKS:
            raise forms.ValidationError(
                f"At most {MAX_ALLOWED_NETWORKS} networks can be allowed ({len(parts)} given)."
            )
        return ",".join(_ipv4_network(part) for part in parts)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("network_block_all") and data.get("network_allow_list"):
            self.add_error(
                "network_allow_list",
                "Blocking all network and allowing some networks cannot go together: "
                "clear one of them.",
            )
        return data


def _ipv4_network(text: str) -> str:
    """One allowed network in canonical form, or the reason it is not one."""
    address, slash, prefix = text.partition("/")
    shown = text[:60]
    if not slash or not prefix.isdigit() or int(prefix) > 32:
        raise forms.ValidationError(
            f"“{shown}” is not a network: write an IPv4 address, a slash and a prefix "
            "length from 0 to 32, e.g. 203.0.113.0/24."
        )
    try:
        return str(ipaddress.IPv4Network(f"{address}/{int(prefix)}", strict=False))
    except ValueError:
        raise forms.ValidationError(
            f"“{shown}” is not a network: “{address[:40]}” is not an IPv4 address."
        ) from None


VERBS = ("start", "stop", "archive", "recover", "delete")


class BulkForm(forms.Form):
    """A bulk action over selected sandboxes."""

    verb = forms.ChoiceField(choices=[(v, v) for v in VERBS if v != "recover"])
    ids = forms.MultipleChoiceField(required=True)
    confirmed = forms.BooleanField(required=False)

    def __init__(self, data: QueryDict) -> None:
        super().__init__(data)
        # Any id shape Daytona might use; only its length and characters are checked here.
        self.fields["ids"].choices = [
            (i, i) for i in data.getlist("ids")[:200] if re.match(r"^[A-Za-z0-9._-]{1,255}$", i)
        ]
