"""Running sandboxes: bubblewrap, cgroups, a loop-mounted disk and user-mode networking.

A started sandbox is a long-lived bubblewrap whose command is a sleeper; everything
else (execs, code runs, sessions and PTYs) joins its namespaces through
:meth:`Runtime.spawn`, so processes persist between execs and stop kills the whole tree.

The modules: ``runtime.py`` (the :class:`Runtime`: lifetimes and the warm pool),
``launch.py`` (bubblewrap), ``enter.py`` (processes entering a sandbox, the spare),
``network.py`` (slirp4netns) and ``egress.py`` (its firewall), ``sandbox.py`` (specs,
handles, errors), ``disk.py``, ``layers.py``, ``mounts.py``, ``cgroups.py``, ``ids.py``,
``procfs.py``, ``seccomp.py``, ``spawn.py``; ``rootfs.py`` names the sandbox user.

Privilege model: the engine runs as host root only to set up cgroups, mounts and
namespaces. Every process inside a sandbox, bubblewrap itself and the network helper
run as the sandbox's own unprivileged host uid (``ids.py``) with no capabilities, an
empty bounding set, ``no_new_privs`` and the seccomp filter (``seccomp.py``).
"""

from dashboard.engine.runtime.runtime import Runtime
from dashboard.engine.runtime.sandbox import (
    NotRunning,
    RunningSandbox,
    RuntimeError_,
    SandboxFiles,
    SandboxSpec,
)
from dashboard.engine.runtime.sandbox_process import SandboxProcess

__all__ = [
    "NotRunning",
    "RunningSandbox",
    "Runtime",
    "RuntimeError_",
    "SandboxFiles",
    "SandboxProcess",
    "SandboxSpec",
]
