"""Shared fixtures for the engine tests: SDK client, raw HTTP client, a started sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from daytona import Daytona, DaytonaConfig, Sandbox

from tests.engine_server import EngineServer


@pytest.fixture(scope="session")
def daytona(engine: EngineServer) -> Daytona:
    """The official, unmodified SDK pointed at the engine."""
    return Daytona(DaytonaConfig(api_url=engine.api_url, api_key=engine.api_key))


@pytest.fixture(scope="session")
def api(engine: EngineServer) -> Iterator[httpx.Client]:
    """Raw HTTP to the control plane, with the key."""
    with engine.client() as client:
        yield client


@pytest.fixture(scope="session")
def toolbox(engine: EngineServer) -> Iterator[httpx.Client]:
    """Raw HTTP to the toolbox root, with the key."""
    headers = {"Authorization": f"Bearer {engine.api_key}"}
    with httpx.Client(base_url=engine.toolbox_url, headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="session")
def sandbox(daytona: Daytona) -> Iterator[Sandbox]:
    """One started sandbox shared by the toolbox tests."""
    created = daytona.create()
    yield created
    created.delete()


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    """Create a sandbox over raw HTTP and return its DTO."""
    response = api.post("/sandbox", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def run(toolbox: httpx.Client, sandbox_id: str, command: str, **extra: Any) -> dict[str, Any]:
    """Execute a command in a sandbox over raw HTTP."""
    response = toolbox.post(f"/{sandbox_id}/process/execute", json={"command": command, **extra})
    assert response.status_code == 200, response.text
    return response.json()
