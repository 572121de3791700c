"""Faults under an open terminal: the toolbox going away must end in a clear message."""

import asyncio

import pytest

from dashboard.accounts.access import OWNER_LABEL
from tests.engine_server import start_engine
from tests.terminal.conftest import new_session, open_terminal

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_engine_going_away_closes_the_terminal_with_a_retryable_code(
    tmp_path, settings, member_user
) -> None:
    engine = await asyncio.to_thread(start_engine, tmp_path / "engine")
    try:
        settings.DAYTONA_API_URL = engine.api_url
        settings.DAYTONA_API_KEY = engine.api_key
        with engine.client() as http:
            body = {"name": "faulty", "labels": {OWNER_LABEL: "mel"}}
            sandbox = http.post("/sandbox", json=body).json()
        term, _ = await open_terminal(member_user, sandbox["id"], new_session())
        await term.until_control("hello")
        await asyncio.to_thread(engine.stop)
        code = await term.until_closed(seconds=30)
        # Lost (retry) or, if the shell was killed on the way down, ended: never stuck.
        assert code in (4502, 4410)
        assert any(c["type"] in ("error", "exit") for c in term.controls)
        # A reconnect while the engine is down says Daytona is unavailable.
        again, connected = await open_terminal(member_user, sandbox["id"], new_session())
        assert connected
        assert await again.until_closed() == 4503
        assert "reached" in (await again.until_control("error"))["message"]
    finally:
        await asyncio.to_thread(engine.stop)
