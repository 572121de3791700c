from collections.abc import AsyncIterator

import pytest

from dashboard.daytona import client

GRACE = 0.05  # instead of 30 s: a retired pool closes almost as soon as it is retired


@pytest.fixture
async def served(monkeypatch) -> AsyncIterator[None]:
    """This test's loop plays the server: its pools are the ones a worker keeps."""
    monkeypatch.setattr(client, "_shared", None)  # another test's server may share one
    monkeypatch.setattr(client, "RETIRE_GRACE_SECONDS", GRACE)
    await client.open_shared()
    try:
        yield
    finally:
        await client.close_shared()
