"""What Daytona returns, decoded into typed, immutable msgspec Structs.

Field names are Daytona's camelCase on the wire (`rename="camel"`); unknown keys are
ignored, since Daytona adds fields often. Daytona writes null for an unset field, and
a null or missing field gets the field's default. A reply that does not fit (not an
object, no id, a number where a name belongs) is refused as `Unavailable`, naming
what did not fit, so a page shows "Daytona is not answering" with the reason, not a
500.

Decoded objects are frozen and hold only immutable values (tuples, read-only
mappings), so one can be shared between requests and tasks without copies.
"""

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from operator import attrgetter
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Self

import msgspec
from msgspec.structs import force_setattr

from dashboard.daytona.client import Unavailable
from dashboard.daytona.labels import OWNER_LABEL
from dashboard.daytona.states import SANDBOX_TRANSITIONAL, SandboxState

# A time without its zone could not be compared with "now": refused, not guessed.
Time = Annotated[datetime, msgspec.Meta(tz=True)]
EMPTY: Mapping[str, str] = MappingProxyType({})


@cache
def _defaults(kind: type) -> tuple[Callable[[Any], tuple], tuple[tuple[str, Any], ...]]:
    """The fields of `kind` whose null means their default (those that have one), and a
    getter of all their values at once (most replies have no null: one look, in C)."""
    pairs = tuple(
        (f.name, f.default)
        for f in msgspec.structs.fields(kind)
        if f.default is not msgspec.NODEFAULT and f.default is not None
    )
    names = [name for name, _ in pairs]
    # Two names at least: attrgetter of one gives the value itself, not a tuple.
    getter = attrgetter(*names, names[0]) if names else lambda _: ()
    return getter, pairs


def _frozen(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value)) if value else EMPTY


class Wire(msgspec.Struct, frozen=True, rename="camel"):
    """One of Daytona's objects as it is sent; `from_api` decodes one from parsed JSON."""

    # How an error names the object and who sent it.
    what: ClassVar[str] = ""
    sender: ClassVar[str] = "Daytona"

    def __post_init__(self) -> None:
        values, pairs = _defaults(type(self))
        if None not in values(self):
            return
        for name, default in pairs:
            if getattr(self, name) is None:
                force_setattr(self, name, default)

    @classmethod
    def from_api(cls, data: Any) -> Self:
        return convert(data, cls)


def _malformed(kind: type, error: Exception | None = None) -> Unavailable:
    what = getattr(kind, "what", "") or kind.__name__.lower()
    reason = f": {error}" if error else ""
    return Unavailable(f"{getattr(kind, 'sender', 'Daytona')} sent a malformed {what}{reason}.")


def convert[T](data: Any, kind: type[T]) -> T:
    """`data` (parsed JSON) as a `kind`, or `Unavailable` saying what did not fit."""
    if not isinstance(data, dict):
        raise _malformed(kind)
    try:
        return msgspec.convert(data, kind, strict=False)
    except msgspec.ValidationError as error:
        raise _malformed(kind, error) from None


def decode[T](body: bytes, kind: type[T]) -> T:
    """`body` (JSON text) as a `kind`, or `Unavailable` saying why not."""
    try:
        return msgspec.json.decode(body, type=kind, strict=False)
    except msgspec.ValidationError as error:
        raise _malformed(kind, error) from None
    except msgspec.DecodeError:
        raise Unavailable("Daytona answered with something that is not JSON.") from None


def _need_id(thing: Wire) -> None:
    if not getattr(thing, "id", ""):
        raise ValueError("it has no id")
    if not getattr(thing, "name", "x"):
        force_setattr(thing, "name", thing.id)


def _lower_state(thing: Wire) -> None:
    state = thing.state.lower() if thing.state else "unknown"
    if state != thing.state:
        force_setattr(thing, "state", state)


# Every field with a default also takes null (as that default): hence `| None` below.


class VolumeMount(Wire):
    what = "volume mount"
    volume_id: str | None = ""
    mount_path: str | None = ""
    subpath: str | None = ""


class Sandbox(Wire):
    id: str
    name: str | None = ""
    state: str | None = SandboxState.UNKNOWN.value
    desired_state: str | None = ""
    error_reason: str | None = ""
    recoverable: bool | None = False
    organization_id: str | None = ""
    snapshot: str | None = ""
    user: str | None = ""
    target: str | None = ""
    sandbox_class: str | None = ""
    cpu: int | None = 0
    gpu: int | None = 0
    memory: int | None = 0
    disk: int | None = 0
    labels: Mapping[str, str] | None = EMPTY
    env: Mapping[str, str] | None = EMPTY
    public: bool | None = False
    network_block_all: bool | None = False
    network_allow_list: str | None = ""
    domain_allow_list: str | None = ""
    auto_stop_interval: int | None = None
    auto_archive_interval: int | None = None
    auto_delete_interval: int | None = None
    volumes: tuple[VolumeMount, ...] | None = ()
    backup_state: str | None = ""
    toolbox_proxy_url: str | None = ""
    created_at: Time | None = None
    updated_at: Time | None = None
    last_activity_at: Time | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _need_id(self)
        _lower_state(self)
        if self.desired_state and not self.desired_state.islower():
            force_setattr(self, "desired_state", self.desired_state.lower())
        # Shared between requests (one decoded list serves every row): read-only.
        force_setattr(self, "labels", _frozen(self.labels))
        force_setattr(self, "env", _frozen(self.env))

    @property
    def transitional(self) -> bool:
        """Daytona is still moving it; a lifecycle call now would get 409."""
        if self.state in SANDBOX_TRANSITIONAL:
            return True
        return bool(self.desired_state) and self.desired_state not in (self.state, "resized")

    @property
    def gone(self) -> bool:
        """Destroyed, or failed on its way to being destroyed."""
        if self.state == "destroyed":
            return True
        return self.desired_state == "destroyed" and self.state in ("error", "build_failed")

    @property
    def last_event_at(self) -> datetime | None:
        return self.last_activity_at or self.updated_at

    @property
    def owner(self) -> str:
        return self.labels.get(OWNER_LABEL, "")

    def to_api(self) -> dict[str, Any]:
        """Back to Daytona's JSON shape, for a message to other processes (`from_api` reads it)."""
        return msgspec.to_builtins(self, enc_hook=dict)


class SandboxPage(Wire):
    """One page of the sandbox list and the cursor of the next."""

    what = "sandbox list"
    items: tuple[Sandbox, ...]
    next_cursor: str | int | None = None

    def __post_init__(self) -> None:
        if self.next_cursor is not None:
            force_setattr(self, "next_cursor", str(self.next_cursor) or None)

    @classmethod
    def from_json(cls, body: bytes) -> "SandboxPage":
        """A page straight from Daytona's JSON text (the list's hot path: no dicts between)."""
        return decode(body, cls)


class Snapshot(Wire):
    id: str
    name: str | None = ""
    state: str | None = "unknown"
    image_name: str | None = ""
    general: bool | None = False
    size: int | float | None = None
    cpu: int | None = 0
    gpu: int | None = 0
    # Daytona calls it `mem` on snapshots (and `memory` on sandboxes): either is read.
    mem: int | None = 0
    memory: int | None = 0
    disk: int | None = 0
    error_reason: str | None = ""
    created_at: Time | None = None
    updated_at: Time | None = None
    last_used_at: Time | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _need_id(self)
        _lower_state(self)
        if self.mem:
            force_setattr(self, "memory", self.mem)


class SnapshotPage(Wire):
    what = "snapshot list"
    items: tuple[Snapshot, ...]
    total: int | None = None
    page: int | None = 1
    total_pages: int | None = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.total is None:
            force_setattr(self, "total", len(self.items))


class Volume(Wire):
    id: str
    name: str | None = ""
    state: str | None = "unknown"
    error_reason: str | None = ""
    created_at: Time | None = None
    updated_at: Time | None = None
    last_used_at: Time | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _need_id(self)
        _lower_state(self)


class Organization(Wire):
    id: str
    name: str | None = ""
    default_region: str | None = msgspec.field(default="", name="defaultRegionId")
    max_cpu_per_sandbox: int | None = None
    max_memory_per_sandbox: int | None = None
    max_disk_per_sandbox: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _need_id(self)


class RegionUsage(Wire):
    what = "region usage"
    region_id: str | None = ""
    sandbox_class: str | None = ""
    total_cpu_quota: int | float | None = 0
    current_cpu_usage: int | float | None = 0
    total_memory_quota: int | float | None = 0
    current_memory_usage: int | float | None = 0
    total_disk_quota: int | float | None = 0
    current_disk_usage: int | float | None = 0
    total_gpu_quota: int | float | None = 0
    current_gpu_usage: int | float | None = 0
    max_cpu_per_sandbox: int | None = None
    max_memory_per_sandbox: int | None = None
    max_disk_per_sandbox: int | None = None


class Usage(Wire):
    what = "usage overview"
    regions: tuple[RegionUsage, ...] | None = msgspec.field(default=(), name="regionUsage")
    total_snapshot_quota: int | None = None
    current_snapshot_usage: int | None = 0
    total_volume_quota: int | None = None
    current_volume_usage: int | None = 0


class AuditLogEntry(Wire):
    what = "audit log entry"
    id: str
    action: str | None = ""
    actor_email: str | None = ""
    target_type: str | None = ""
    target_id: str | None = ""
    status_code: int | None = None
    error_message: str | None = ""
    ip_address: str | None = ""
    source: str | None = ""
    created_at: Time | None = None
    actor_id: str | None = ""
    api_key_prefix: str | None = msgspec.field(default="", name="actorApiKeyPrefix")
    api_key_suffix: str | None = msgspec.field(default="", name="actorApiKeySuffix")
    user_agent: str | None = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        _need_id(self)

    @property
    def actor(self) -> str:
        """Who acted, as Daytona's dashboard shows it: an email, else the API key's ends."""
        if self.actor_email:
            return self.actor_email
        if self.api_key_prefix or self.api_key_suffix:
            return f"API key {self.api_key_prefix}…{self.api_key_suffix}"
        return self.actor_id


class AuditLogPage(Wire):
    what = "audit log"
    items: tuple[AuditLogEntry, ...]
    total: int | None = None
    page: int | None = 1
    total_pages: int | None = 1
    next_token: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.total is None:
            force_setattr(self, "total", len(self.items))
        if not self.next_token:
            force_setattr(self, "next_token", None)


class EngineCheck(Wire):
    """One of the embedded engine's host prerequisites."""

    what = "engine check"

    name: str | None = ""
    ok: bool | None = False
    detail: str | None = ""
    fix: str | None = ""
    feature: str | None = None  # None: the engine cannot run without it

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.feature:
            force_setattr(self, "feature", None)


class EngineHost(Wire):
    """What the embedded engine found on its machine (not a Daytona Cloud API)."""

    what = "engine status"

    version: str | None = ""
    checks: tuple[EngineCheck, ...] | None = ()
    # Sent as {name: on}; kept as sorted (name, on) pairs, the order the page lists them.
    features: Mapping[str, bool] | tuple[tuple[str, bool], ...] | None = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.features, Mapping):
            force_setattr(self, "features", tuple(sorted(self.features.items())))

    @property
    def failing(self) -> tuple[EngineCheck, ...]:
        return tuple(check for check in self.checks if not check.ok)
