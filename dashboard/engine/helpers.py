"""Build and pull helpers (skopeo, umoci, debootstrap, cp, tar) that die with the engine.

A helper left running by an engine that crashed would go on writing into a snapshot
directory the next engine removes, hold the network, or fill the disk. So each one
starts under two util-linux wrappers, no ``preexec_fn`` (which would fork the whole
engine):

- ``setpriv --pdeathsig KILL``: the kernel kills the wrapper as soon as the thread
  that started it (the engine's event loop, or the process running the default image
  build) exits, SIGKILL included;
- ``unshare --pid --fork --kill-child``: the helper runs as the first process of its
  own PID namespace, killed when the wrapper dies; the kernel then kills everything
  else in that namespace, so debootstrap's dpkg or wget, or tar's gzip, go too.

Killing the wrapper (a cancelled build) therefore ends the helper's whole tree as well.
PDEATHSIG follows the thread that forked, not the process: start helpers from the event
loop (asyncio's subprocesses are) or from a thread that lives as long as they should.
An engine killed in the instant between the fork and setpriv's prctl still leaves that
one helper running (setpriv does not look whether its parent is already gone).
"""

from __future__ import annotations

from collections.abc import Sequence

TIED = (
    "setpriv", "--pdeathsig", "KILL", "--",
    "unshare", "--pid", "--fork", "--kill-child=KILL", "--",
)  # fmt: skip


def tied_to_engine(argv: Sequence[str]) -> list[str]:
    """``argv`` run so that it and every process it starts die with the engine."""
    return [*TIED, *argv]
