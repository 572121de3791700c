"""What a background job writes to a terminal while the engine waits for the output of
a process that has exited (DRAIN_AFTER_EXIT) reaches the client, even when it comes
after a quiet spell and the terminal is waiting out a tick with the PTY unwatched."""

from __future__ import annotations

import pytest

from dashboard.engine import pty as ptys
from tests.engine.test_pty_frames import frames_until_exit
from tests.engine.test_pty_local import started


async def test_output_written_during_the_drain_after_exit_is_not_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A tick longer than the drain: the burst's tick would end after the terminal did.
    monkeypatch.setattr(ptys, "FRAME_SECONDS", 2.0)
    # The shell exits once its job ignores the hang-up; the job writes a moment later
    # and keeps the terminal open past the drain.
    terminal = await started(
        "sh", "-c", "(trap '' HUP; sleep 0.2; printf last; sleep 3) & sleep 0.05; exit 0"
    )
    watcher = terminal.attach()
    frames = await frames_until_exit(watcher)
    assert b"".join(frames) == b"last"
    assert terminal.replay_raw() == b"last"
    assert watcher.exited == (0, None)
