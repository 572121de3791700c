"""What Daytona returns, as small typed objects.

Parsing is tolerant on purpose: Daytona adds fields often, so unknown keys are
ignored and a missing optional field gets a default. Only a reply that is not
even the right shape (not an object, no id) is refused, as `Unavailable`.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from dashboard.daytona.client import Unavailable

# States in which Daytona is still working towards the desired state.
TRANSITIONAL = frozenset(
    {
        "creating",
        "restoring",
        "destroying",
        "starting",
        "stopping",
        "pending_build",
        "building_snapshot",
        "pulling_snapshot",
        "archiving",
        "resizing",
        "snapshotting",
        "forking",
        "pausing",
        "resuming",
    }
)


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise Unavailable(f"Daytona sent a malformed {what}.")
    return data


def _str(data: dict, key: str, default: str = "") -> str:
    value = data.get(key)
    return value if isinstance(value, str) else default


def _opt_str(data: dict, key: str) -> str | None:
    value = data.get(key)
    return value if isinstance(value, str) and value else None


def _int(data: dict, key: str, default: int = 0) -> int:
    value = data.get(key)
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return default


def _opt_int(data: dict, key: str) -> int | None:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _number(data: dict, key: str, default: float = 0) -> float:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return value


def _bool(data: dict, key: str, default: bool = False) -> bool:
    value = data.get(key)
    return value if isinstance(value, bool) else default


def _str_map(data: dict, key: str) -> dict[str, str]:
    value = data.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items() if v is not None}


def _time(data: dict, key: str) -> datetime | None:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _id(data: dict, what: str) -> str:
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise Unavailable(f"Daytona sent a {what} without an id.")
    return value


@dataclass(frozen=True)
class VolumeMount:
    volume_id: str
    mount_path: str
    subpath: str = ""

    @classmethod
    def from_api(cls, data: Any) -> "VolumeMount | None":
        if not isinstance(data, dict):
            return None
        return cls(_str(data, "volumeId"), _str(data, "mountPath"), _str(data, "subpath"))


@dataclass(frozen=True)
class Sandbox:
    id: str
    name: str
    state: str = "unknown"
    desired_state: str = ""
    error_reason: str = ""
    recoverable: bool = False
    organization_id: str = ""
    snapshot: str = ""
    user: str = ""
    target: str = ""
    sandbox_class: str = ""
    cpu: int = 0
    gpu: int = 0
    memory: int = 0
    disk: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    public: bool = False
    network_block_all: bool = False
    network_allow_list: str = ""
    domain_allow_list: str = ""
    auto_stop_interval: int | None = None
    auto_archive_interval: int | None = None
    auto_delete_interval: int | None = None
    volumes: tuple[VolumeMount, ...] = ()
    backup_state: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_activity_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, data: Any) -> "Sandbox":
        data = _object(data, "sandbox")
        sandbox_id = _id(data, "sandbox")
        volumes = data.get("volumes")
        mounts = tuple(
            m
            for m in (
                VolumeMount.from_api(v) for v in (volumes if isinstance(volumes, list) else [])
            )
            if m is not None
        )
        return cls(
            id=sandbox_id,
            name=_str(data, "name") or sandbox_id,
            state=(_str(data, "state") or "unknown").lower(),
            desired_state=_str(data, "desiredState").lower(),
            error_reason=_str(data, "errorReason"),
            recoverable=_bool(data, "recoverable"),
            organization_id=_str(data, "organizationId"),
            snapshot=_str(data, "snapshot"),
            user=_str(data, "user"),
            target=_str(data, "target"),
            sandbox_class=_str(data, "sandboxClass"),
            cpu=_int(data, "cpu"),
            gpu=_int(data, "gpu"),
            memory=_int(data, "memory"),
            disk=_int(data, "disk"),
            labels=_str_map(data, "labels"),
            env=_str_map(data, "env"),
            public=_bool(data, "public"),
            network_block_all=_bool(data, "networkBlockAll"),
            network_allow_list=_str(data, "networkAllowList"),
            domain_allow_list=_str(data, "domainAllowList"),
            auto_stop_interval=_opt_int(data, "autoStopInterval"),
            auto_archive_interval=_opt_int(data, "autoArchiveInterval"),
            auto_delete_interval=_opt_int(data, "autoDeleteInterval"),
            volumes=mounts,
            backup_state=_str(data, "backupState"),
            created_at=_time(data, "createdAt"),
            updated_at=_time(data, "updatedAt"),
            last_activity_at=_time(data, "lastActivityAt"),
            raw=data,
        )

    @property
    def transitional(self) -> bool:
        """Daytona is still moving it; a lifecycle call now would get 409."""
        if self.state in TRANSITIONAL:
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
        # Imported here: the client knows nothing of accounts except this label's name.
        from dashboard.accounts.access import OWNER_LABEL

        return self.labels.get(OWNER_LABEL, "")


@dataclass(frozen=True)
class SandboxPage:
    items: list[Sandbox]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: bytes) -> "SandboxPage":
        """A page from Daytona's JSON, each sandbox parsed once per distinct JSON of it.

        A list mostly brings back the sandboxes of the last load, unchanged: parsing a
        hundred of them again cost more than the rest of the page's own work. The
        page is split into each sandbox's JSON text (not parsed), and a sandbox whose
        text was seen before is the object parsed then (they are frozen, and shared:
        never change one; at most 2,048 kept). Anything unexpected takes the tolerant path
        below.
        """
        try:
            page = _page_decoder.decode(body)
        except msgspec.MsgspecError:
            try:
                return cls.from_api(msgspec.json.decode(body))
            except msgspec.DecodeError:
                raise Unavailable("Daytona answered with something that is not JSON.") from None
        items = []
        for raw in page.items:
            text = bytes(raw)
            sandbox = _parsed.get(text)
            if sandbox is None:
                sandbox = Sandbox.from_api(msgspec.json.decode(text))
                if len(_parsed) >= PARSED_KEPT:
                    _parsed.clear()
                _parsed[text] = sandbox
            items.append(sandbox)
        cursor = page.nextCursor
        return cls(items=items, next_cursor=str(cursor) if cursor else None)

    @classmethod
    def from_api(cls, data: Any) -> "SandboxPage":
        data = _object(data, "sandbox list")
        items = data.get("items")
        if not isinstance(items, list):
            raise Unavailable("Daytona sent a sandbox list without items.")
        cursor = data.get("nextCursor")
        return cls(
            items=[Sandbox.from_api(item) for item in items],
            next_cursor=str(cursor) if cursor else None,
        )


class _PageOfJson(msgspec.Struct):
    """A sandbox list as Daytona sends it, each item left as its JSON text."""

    items: list[msgspec.Raw]
    nextCursor: str | int | None = None  # Daytona's name


_page_decoder = msgspec.json.Decoder(_PageOfJson)
# Sandboxes parsed, by their JSON text; bounded, so memory stays flat.
_parsed: dict[bytes, Sandbox] = {}
PARSED_KEPT = 2048


@dataclass(frozen=True)
class Snapshot:
    id: str
    name: str
    state: str = "unknown"
    image_name: str = ""
    general: bool = False
    size: float | None = None
    cpu: int = 0
    gpu: int = 0
    memory: int = 0
    disk: int = 0
    error_reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_used_at: datetime | None = None

    @classmethod
    def from_api(cls, data: Any) -> "Snapshot":
        data = _object(data, "snapshot")
        snapshot_id = _id(data, "snapshot")
        size = data.get("size")
        return cls(
            id=snapshot_id,
            name=_str(data, "name") or snapshot_id,
            state=(_str(data, "state") or "unknown").lower(),
            image_name=_str(data, "imageName"),
            general=_bool(data, "general"),
            size=size if isinstance(size, int | float) and not isinstance(size, bool) else None,
            cpu=_int(data, "cpu"),
            gpu=_int(data, "gpu"),
            # Daytona calls it `mem` on snapshots (and `memory` on sandboxes).
            memory=_int(data, "mem") or _int(data, "memory"),
            disk=_int(data, "disk"),
            error_reason=_str(data, "errorReason"),
            created_at=_time(data, "createdAt"),
            updated_at=_time(data, "updatedAt"),
            last_used_at=_time(data, "lastUsedAt"),
        )


@dataclass(frozen=True)
class SnapshotPage:
    items: list[Snapshot]
    total: int
    page: int
    total_pages: int

    @classmethod
    def from_api(cls, data: Any) -> "SnapshotPage":
        data = _object(data, "snapshot list")
        items = data.get("items")
        if not isinstance(items, list):
            raise Unavailable("Daytona sent a snapshot list without items.")
        snapshots = [Snapshot.from_api(item) for item in items]
        return cls(
            items=snapshots,
            total=_int(data, "total", len(snapshots)),
            page=_int(data, "page", 1),
            total_pages=_int(data, "totalPages", 1),
        )


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    state: str = "unknown"
    error_reason: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_used_at: datetime | None = None

    @classmethod
    def from_api(cls, data: Any) -> "Volume":
        data = _object(data, "volume")
        volume_id = _id(data, "volume")
        return cls(
            id=volume_id,
            name=_str(data, "name") or volume_id,
            state=(_str(data, "state") or "unknown").lower(),
            error_reason=_str(data, "errorReason"),
            created_at=_time(data, "createdAt"),
            updated_at=_time(data, "updatedAt"),
            last_used_at=_time(data, "lastUsedAt"),
        )


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    default_region: str = ""
    max_cpu_per_sandbox: int | None = None
    max_memory_per_sandbox: int | None = None
    max_disk_per_sandbox: int | None = None

    @classmethod
    def from_api(cls, data: Any) -> "Organization":
        data = _object(data, "organization")
        org_id = _id(data, "organization")
        return cls(
            id=org_id,
            name=_str(data, "name") or org_id,
            default_region=_str(data, "defaultRegionId"),
            max_cpu_per_sandbox=_opt_int(data, "maxCpuPerSandbox"),
            max_memory_per_sandbox=_opt_int(data, "maxMemoryPerSandbox"),
            max_disk_per_sandbox=_opt_int(data, "maxDiskPerSandbox"),
        )


@dataclass(frozen=True)
class RegionUsage:
    region_id: str
    sandbox_class: str
    total_cpu_quota: float
    current_cpu_usage: float
    total_memory_quota: float
    current_memory_usage: float
    total_disk_quota: float
    current_disk_usage: float
    total_gpu_quota: float = 0
    current_gpu_usage: float = 0
    max_cpu_per_sandbox: int | None = None
    max_memory_per_sandbox: int | None = None
    max_disk_per_sandbox: int | None = None

    @classmethod
    def from_api(cls, data: Any) -> "RegionUsage":
        data = _object(data, "region usage")
        return cls(
            region_id=_str(data, "regionId"),
            sandbox_class=_str(data, "sandboxClass"),
            total_cpu_quota=_number(data, "totalCpuQuota"),
            current_cpu_usage=_number(data, "currentCpuUsage"),
            total_memory_quota=_number(data, "totalMemoryQuota"),
            current_memory_usage=_number(data, "currentMemoryUsage"),
            total_disk_quota=_number(data, "totalDiskQuota"),
            current_disk_usage=_number(data, "currentDiskUsage"),
            total_gpu_quota=_number(data, "totalGpuQuota"),
            current_gpu_usage=_number(data, "currentGpuUsage"),
            max_cpu_per_sandbox=_opt_int(data, "maxCpuPerSandbox"),
            max_memory_per_sandbox=_opt_int(data, "maxMemoryPerSandbox"),
            max_disk_per_sandbox=_opt_int(data, "maxDiskPerSandbox"),
        )


@dataclass(frozen=True)
class Usage:
    regions: list[RegionUsage]
    total_snapshot_quota: int | None = None
    current_snapshot_usage: int = 0
    total_volume_quota: int | None = None
    current_volume_usage: int = 0

    @classmethod
    def from_api(cls, data: Any) -> "Usage":
        data = _object(data, "usage overview")
        regions = data.get("regionUsage")
        return cls(
            regions=[RegionUsage.from_api(r) for r in regions if isinstance(r, dict)]
            if isinstance(regions, list)
            else [],
            total_snapshot_quota=_opt_int(data, "totalSnapshotQuota"),
            current_snapshot_usage=_int(data, "currentSnapshotUsage"),
            total_volume_quota=_opt_int(data, "totalVolumeQuota"),
            current_volume_usage=_int(data, "currentVolumeUsage"),
        )


@dataclass(frozen=True)
class AuditLogEntry:
    id: str
    action: str
    actor_email: str = ""
    target_type: str = ""
    target_id: str = ""
    status_code: int | None = None
    error_message: str = ""
    ip_address: str = ""
    source: str = ""
    created_at: datetime | None = None
    actor_id: str = ""
    api_key_prefix: str = ""
    api_key_suffix: str = ""
    user_agent: str = ""

    @property
    def actor(self) -> str:
        """Who acted, as Daytona's dashboard shows it: an email, else the API key's ends."""
        if self.actor_email:
            return self.actor_email
        if self.api_key_prefix or self.api_key_suffix:
            return f"API key {self.api_key_prefix}…{self.api_key_suffix}"
        return self.actor_id

    @classmethod
    def from_api(cls, data: Any) -> "AuditLogEntry":
        data = _object(data, "audit log entry")
        return cls(
            id=_id(data, "audit log entry"),
            action=_str(data, "action"),
            actor_email=_str(data, "actorEmail"),
            target_type=_str(data, "targetType"),
            target_id=_str(data, "targetId"),
            status_code=_opt_int(data, "statusCode"),
            error_message=_str(data, "errorMessage"),
            ip_address=_str(data, "ipAddress"),
            source=_str(data, "source"),
            created_at=_time(data, "createdAt"),
            actor_id=_str(data, "actorId"),
            api_key_prefix=_str(data, "actorApiKeyPrefix"),
            api_key_suffix=_str(data, "actorApiKeySuffix"),
            user_agent=_str(data, "userAgent"),
        )


@dataclass(frozen=True)
class AuditLogPage:
    items: list[AuditLogEntry]
    total: int
    page: int
    total_pages: int
    next_token: str | None = None

    @classmethod
    def from_api(cls, data: Any) -> "AuditLogPage":
        data = _object(data, "audit log")
        items = data.get("items")
        if not isinstance(items, list):
            raise Unavailable("Daytona sent an audit log without items.")
        entries = [AuditLogEntry.from_api(item) for item in items]
        return cls(
            items=entries,
            total=_int(data, "total", len(entries)),
            page=_int(data, "page", 1),
            total_pages=_int(data, "totalPages", 1),
            next_token=_opt_str(data, "nextToken"),
        )


@dataclass(frozen=True)
class EngineCheck:
    """One of the embedded engine's host prerequisites."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    feature: str | None = None  # None: the engine cannot run without it


@dataclass(frozen=True)
class EngineHost:
    """What the embedded engine found on its machine (not a Daytona Cloud API)."""

    version: str
    checks: tuple[EngineCheck, ...]
    features: tuple[tuple[str, bool], ...]

    @property
    def failing(self) -> tuple[EngineCheck, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @classmethod
    def from_api(cls, data: Any) -> "EngineHost":
        data = _object(data, "engine status")
        checks = [c for c in data.get("checks") or () if isinstance(c, dict)]
        features = data.get("features") if isinstance(data.get("features"), dict) else {}
        return cls(
            version=_str(data, "version"),
            checks=tuple(
                EngineCheck(
                    name=_str(c, "name"),
                    ok=_bool(c, "ok"),
                    detail=_str(c, "detail"),
                    fix=_str(c, "fix"),
                    feature=_opt_str(c, "feature"),
                )
                for c in checks
            ),
            features=tuple((str(k), bool(v)) for k, v in sorted(features.items())),
        )
