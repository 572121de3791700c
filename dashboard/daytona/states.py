"""Daytona's state names: the one list of them on the dashboard's side.

The values are Daytona's (its API's SandboxState, SnapshotState and VolumeState
enums). Which of them mean "Daytona is still working on it" is said here once:
the lifecycle checks, the live list and the badges' colour all read it from here.
"""

from enum import StrEnum


class SandboxState(StrEnum):
    CREATING = "creating"
    RESTORING = "restoring"
    DESTROYED = "destroyed"
    DESTROYING = "destroying"
    STARTED = "started"
    STOPPED = "stopped"
    STARTING = "starting"
    STOPPING = "stopping"
    ERROR = "error"
    BUILD_FAILED = "build_failed"
    PENDING_BUILD = "pending_build"
    BUILDING_SNAPSHOT = "building_snapshot"
    UNKNOWN = "unknown"
    PULLING_SNAPSHOT = "pulling_snapshot"
    ARCHIVED = "archived"
    ARCHIVING = "archiving"
    RESIZING = "resizing"
    SNAPSHOTTING = "snapshotting"
    FORKING = "forking"
    PAUSING = "pausing"
    PAUSED = "paused"
    RESUMING = "resuming"


class SandboxDesiredState(StrEnum):
    DESTROYED = "destroyed"
    STARTED = "started"
    STOPPED = "stopped"
    RESIZED = "resized"
    ARCHIVED = "archived"
    PAUSED = "paused"


class SnapshotState(StrEnum):
    BUILD_PENDING = "build_pending"
    BUILDING = "building"
    PENDING = "pending"
    PULLING = "pulling"
    SNAPSHOTTING = "snapshotting"
    PENDING_VALIDATION = "pending_validation"
    VALIDATING = "validating"
    ACTIVE = "active"
    INACTIVE = "inactive"
    ERROR = "error"
    BUILD_FAILED = "build_failed"
    REMOVING = "removing"


class VolumeState(StrEnum):
    CREATING = "creating"
    READY = "ready"
    PENDING_CREATE = "pending_create"
    PENDING_DELETE = "pending_delete"
    DELETING = "deleting"
    DELETED = "deleted"
    ERROR = "error"


_S, _P, _V = SandboxState, SnapshotState, VolumeState

# A lifecycle call on a sandbox in one of these gets 409 from Daytona.
SANDBOX_TRANSITIONAL: frozenset[str] = frozenset(
    {
        _S.CREATING,
        _S.RESTORING,
        _S.DESTROYING,
        _S.STARTING,
        _S.STOPPING,
        _S.PENDING_BUILD,
        _S.BUILDING_SNAPSHOT,
        _S.PULLING_SNAPSHOT,
        _S.ARCHIVING,
        _S.RESIZING,
        _S.SNAPSHOTTING,
        _S.FORKING,
        _S.PAUSING,
        _S.RESUMING,
    }
)
SNAPSHOT_TRANSITIONAL: frozenset[str] = frozenset(
    {_P.BUILD_PENDING, _P.BUILDING, _P.PENDING, _P.PULLING, _P.SNAPSHOTTING}
    | {_P.PENDING_VALIDATION, _P.VALIDATING, _P.REMOVING}
)
VOLUME_TRANSITIONAL: frozenset[str] = frozenset(
    {_V.CREATING, _V.PENDING_CREATE, _V.PENDING_DELETE, _V.DELETING}
)
# Any kind of thing on its way somewhere: what a badge shows as "changing".
TRANSITIONAL: frozenset[str] = SANDBOX_TRANSITIONAL | SNAPSHOT_TRANSITIONAL | VOLUME_TRANSITIONAL
