import re
import shlex

from django import forms

from dashboard.core.converters import DAYTONA_ID

SORTS = [
    ("lastUsedAt", "Last used"),
    ("createdAt", "Created"),
    ("name", "Name"),
    ("state", "State"),
]
PAGE_SIZES = [(10, "10"), (25, "25"), (50, "50"), (100, "100")]
# What the snapshot is built from: how each kind turns into Daytona's `imageName`.
SOURCE_KINDS = [
    ("dir", "Directory"),
    ("tar", "Tarball"),
    ("image", "Container image"),
    ("debian", "Debian base"),
    ("sandbox", "Sandbox"),
]
# Which kinds each connection can build: the embedded engine pulls images where its
# machine has skopeo and umoci (its "images" feature), and dir:/tar:/debian: are its
# own sources that Daytona would take for image names.
ENGINE_KINDS = ("dir", "tar", "image", "debian", "sandbox")
ENGINE_KINDS_NO_IMAGES = ("dir", "tar", "debian", "sandbox")
DAYTONA_KINDS = ("image", "sandbox")
# The source box's label and help for each kind (the page swaps them as the kind changes).
SOURCE_HELP = {
    "dir": ("Directory", "An absolute path on the engine's machine, e.g. /srv/roots/tools."),
    "tar": ("Tarball", "An absolute path to a .tar, .tar.gz or .tar.xz on the engine's machine."),
    "image": ("Image", "A registry image with a version tag, e.g. python:3.12-slim."),
    "debian": ("Debian suite", "A suite name; empty builds bookworm. Needs a Debian mirror."),
    "sandbox": ("Sandbox", "The name or id of a started or stopped sandbox: its files as now."),
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}$")
SUITE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")


class SnapshotFilterForm(forms.Form):
    """Search, sort and page of the list; every field is optional and lives in the URL."""

    q = forms.CharField(required=False, max_length=255, label="Name")
    sort = forms.ChoiceField(required=False, choices=SORTS)
    order = forms.ChoiceField(
        required=False, choices=[("desc", "Descending"), ("asc", "Ascending")]
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=100_000)
    limit = forms.TypedChoiceField(required=False, choices=PAGE_SIZES, coerce=int, empty_value=25)
    refresh = forms.TypedChoiceField(
        required=False,
        choices=[("", "Off"), (10, "10 s"), (30, "30 s"), (60, "1 min"), (300, "5 min")],
        coerce=int,
        empty_value=None,
        label="Auto-refresh",
    )

    def query(self) -> dict:
        data = self.cleaned_data
        sort = data["sort"] or "lastUsedAt"
        return {
            "page": data["page"] or 1,
            "limit": data["limit"] or 25,
            "name": data["q"].strip() or None,
            "sort": sort,
            "order": data["order"] or ("asc" if sort == "name" else "desc"),
        }


class CreateSnapshotForm(forms.Form):
    name = forms.CharField(
        max_length=255,
        help_text="Letters, digits and . _ : / @ -, e.g. python-3.12-tools. Not :latest.",
    )
    kind = forms.ChoiceField(choices=SOURCE_KINDS, initial="dir", label="Built from")
    source = forms.CharField(required=False, max_length=4096)
    cpu = forms.IntegerField(required=False, min_value=1, max_value=64, label="vCPU")
    memory = forms.IntegerField(required=False, min_value=1, max_value=1024, label="Memory GiB")
    disk = forms.IntegerField(required=False, min_value=1, max_value=10_000, label="Disk GiB")
    entrypoint = forms.CharField(
        required=False, max_length=1024, help_text="Optional command, e.g. sleep infinity."
    )

    def __init__(self, *args, kinds: tuple[str, ...] = ENGINE_KINDS, why: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["kind"]
        field.choices = [(k, label) for k, label in SOURCE_KINDS if k in kinds]
        field.initial = kinds[0]
        # Django's own words ("Select a valid choice") would not say why a kind is missing.
        field.error_messages["invalid_choice"] = (
            f"“%(value)s” is not a source this connection builds from. {why}".strip()
        )
        self.kinds = kinds

    def source_help(self) -> list[dict[str, str | bool]]:
        """Each offered kind's label and help; the chosen kind's is the one shown."""
        chosen = self["kind"].value()
        chosen = chosen if chosen in self.kinds else self.kinds[0]
        names = dict(SOURCE_KINDS)
        return [
            {
                "kind": k,
                "name": names[k],
                "label": SOURCE_HELP[k][0],
                "help": SOURCE_HELP[k][1],
                "shown": k == chosen,
            }
            for k in self.kinds
        ]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if name.endswith(":latest"):
            raise forms.ValidationError("Daytona refuses the :latest tag: name a version.")
        if not NAME.match(name):
            raise forms.ValidationError("Use letters, digits and . _ : / @ - only.")
        return name

    def clean_entrypoint(self) -> list[str] | None:
        raw = self.cleaned_data["entrypoint"].strip()
        if not raw:
            return None
        try:
            return shlex.split(raw)
        except ValueError as error:
            raise forms.ValidationError(f"Cannot split this command: {error}.") from None

    def clean(self) -> dict:
        data = super().clean()
        kind, source = data.get("kind"), (data.get("source") or "").strip()
        data["image_name"], data["sandbox"] = "", ""
        if kind == "image":
            if not source:
                self.add_error("source", "Name the image, e.g. python:3.12-slim.")
            elif source.endswith(":latest"):
                self.add_error("source", "Daytona refuses the :latest tag: name a version.")
            data["image_name"] = source
        elif kind in ("dir", "tar"):
            if not source.startswith("/") or "\x00" in source:
                self.add_error("source", "Give an absolute path on the engine's machine.")
            data["image_name"] = f"{kind}:{source}"
        elif kind == "debian":
            suite = source or "bookworm"
            if not SUITE.match(suite):
                self.add_error("source", "Give a Debian suite name, e.g. bookworm.")
            data["image_name"] = f"debian:{suite}"
        elif kind == "sandbox":
            if not re.fullmatch(DAYTONA_ID, source):
                self.add_error("source", "Give the id or name of a started or stopped sandbox.")
            data["sandbox"] = source
        return data
