"""The engine's sandbox states are Daytona's, and its list of transitional ones agrees
with the state machine's own map."""

from __future__ import annotations

from daytona_api_client.models.sandbox_desired_state import SandboxDesiredState as Desired
from daytona_api_client.models.sandbox_state import SandboxState as Daytona

from dashboard.engine.states import DESIRED, TRANSITIONAL, SandboxDesiredState, SandboxState

# What the SDK's generator adds for a value it does not know; no state of Daytona's.
GENERATED = {"unknown_default_open_api"}


def test_the_engine_names_exactly_daytonas_sandbox_states() -> None:
    assert {state.value for state in SandboxState} == {s.value for s in Daytona} - GENERATED


def test_the_engine_names_exactly_daytonas_desired_states() -> None:
    assert {state.value for state in SandboxDesiredState} == {s.value for s in Desired} - GENERATED


def test_every_state_on_its_way_to_another_is_transitional() -> None:
    moving = {state for state, desired in DESIRED.items() if state.value != desired.value}
    assert moving  # the map is not empty or all resting states
    assert moving <= TRANSITIONAL


def test_no_resting_state_is_transitional() -> None:
    resting = {state for state, desired in DESIRED.items() if state.value == desired.value}
    assert {SandboxState.STARTED, SandboxState.STOPPED} <= resting
    assert not resting & TRANSITIONAL
