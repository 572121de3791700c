"""Sandbox states: Daytona's names, and which of them mean "on the way somewhere".

The values are those of Daytona's ``SandboxState`` and ``SandboxDesiredState`` enums
(its API's ``apps/api/src/sandbox/enums``; tests/engine/test_states.py holds them
against the SDK's copy). The engine enters only some of them, but it names every one
from here, so the wire format cannot drift from Daytona's.
"""

from __future__ import annotations

from enum import StrEnum


class SandboxState(StrEnum):
    """Daytona's ``SandboxState``."""

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
    """Daytona's ``SandboxDesiredState``: where a sandbox is headed."""

    DESTROYED = "destroyed"
    STARTED = "started"
    STOPPED = "stopped"
    RESIZED = "resized"
    ARCHIVED = "archived"
    PAUSED = "paused"


S, D = SandboxState, SandboxDesiredState

# Daytona is still working on a sandbox in one of these: a second state change is a
# 409, and an engine that stopped in one finishes it on its next start.
TRANSITIONAL: frozenset[SandboxState] = frozenset(
    {S.CREATING, S.RESTORING, S.DESTROYING, S.STARTING, S.STOPPING, S.PENDING_BUILD}
    | {S.BUILDING_SNAPSHOT, S.PULLING_SNAPSHOT, S.ARCHIVING, S.RESIZING, S.SNAPSHOTTING}
    | {S.FORKING, S.PAUSING, S.RESUMING}
)

# The desired state that entering a state sets; the states not named here (error,
# snapshotting, ...) leave it as it was.
DESIRED: dict[SandboxState, SandboxDesiredState] = {
    S.CREATING: D.STARTED,
    S.STARTING: D.STARTED,
    S.RESTORING: D.STARTED,
    S.STARTED: D.STARTED,
    S.STOPPING: D.STOPPED,
    S.STOPPED: D.STOPPED,
    S.ARCHIVING: D.ARCHIVED,
    S.ARCHIVED: D.ARCHIVED,
    S.DESTROYING: D.DESTROYED,
    S.DESTROYED: D.DESTROYED,
    S.RESIZING: D.RESIZED,
}
