"""The dashboard's state names hold every name Daytona's own SDK knows.

Older Daytona servers used a few more (build_pending, validating, ...), which stay.
"""

from enum import Enum

import pytest
from daytona_api_client.models.sandbox_desired_state import SandboxDesiredState as SdkDesired
from daytona_api_client.models.sandbox_state import SandboxState as SdkSandbox
from daytona_api_client.models.snapshot_state import SnapshotState as SdkSnapshot
from daytona_api_client.models.volume_state import VolumeState as SdkVolume

from dashboard.daytona import states

# The generated client's catch-all for values it does not know; not a state.
OPENAPI_FALLBACK = "unknown_default_open_api"


def sdk_values(enum: type[Enum]) -> set[str]:
    return {member.value for member in enum} - {OPENAPI_FALLBACK}


@pytest.mark.parametrize(
    ("ours", "sdk"),
    [
        (states.SandboxState, SdkSandbox),
        (states.SandboxDesiredState, SdkDesired),
        (states.SnapshotState, SdkSnapshot),
        (states.VolumeState, SdkVolume),
    ],
)
def test_every_state_the_sdk_knows_has_a_name_here(ours: type[Enum], sdk: type[Enum]) -> None:
    assert sdk_values(sdk) - {member.value for member in ours} == set()


def test_a_sandbox_on_its_way_to_or_from_pause_counts_as_changing() -> None:
    assert {"pausing", "resuming", "forking"} <= states.SANDBOX_TRANSITIONAL
    assert "paused" not in states.TRANSITIONAL
