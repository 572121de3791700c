"""A sandbox's live usage and its volumes by name, for the overview's configuration card.

Daytona's API reports what a sandbox is given (cpu, memory, disk), not what it uses, so
usage is read inside a running sandbox through the toolbox with one fixed, read-only
command: the cgroup's memory when the sandbox sees its own cgroup (a container), else
`free` (the embedded engine shows each sandbox its own limits in /proc), then `df` of
the root and the load average.
"""

import asyncio
from dataclasses import dataclass

from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET

from dashboard import daytona
from dashboard.core.http import arender
from dashboard.daytona import toolbox
from dashboard.sandboxes import actions

USAGE_COMMAND = (
    "sh -c '"
    "c=/sys/fs/cgroup; "
    'if [ -r $c/memory.current ] && [ "$(cat $c/memory.max)" != max ]; '
    "then echo mem $(cat $c/memory.current) $(cat $c/memory.max); "
    'else set -- $(free -b | grep "^Mem:"); echo mem $3 $2; fi; '
    "set -- $(df -P -B1 / | tail -n 1); echo disk $3 $2; "
    "set -- $(cat /proc/loadavg); echo load $1'"
)
USAGE_SECONDS = 5.0
# While it runs, the card reads usage again this often (each read is an exec Daytona logs).
POLL_SECONDS = 30


@dataclass(frozen=True)
class Share:
    """Used of total, in bytes."""

    used: int
    total: int

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.total)) if self.total else 0

    @property
    def high(self) -> int:
        """Where a meter turns to a warning: 90% of the total."""
        return self.total * 9 // 10

    @property
    def used_text(self) -> str:
        return in_units(self.used)

    @property
    def total_text(self) -> str:
        return in_units(self.total)


def in_units(size: int) -> str:
    """Bytes as people read them: 1.5 GiB, 212 MiB, 12 KiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size >= scale:
            value = size / scale
            shown = f"{value:.1f}".removesuffix(".0") if value < 10 else f"{value:.0f}"
            return f"{shown} {unit}"
    return f"{size} B"


@dataclass(frozen=True)
class Usage:
    memory: Share | None = None
    disk: Share | None = None
    load: float | None = None


def parse_usage(output: str) -> Usage:
    """The command's lines (`mem used total`, `disk used total`, `load x`); junk is skipped."""
    found: dict = {}
    for line in output.splitlines():
        if not line.split():
            continue
        name, *values = line.split()
        try:
            if name in ("mem", "disk") and len(values) == 2:
                used, total = (int(v) for v in values)
                if used >= 0 and total > 0:
                    found["memory" if name == "mem" else "disk"] = Share(used, total)
            elif name == "load" and len(values) == 1:
                found["load"] = float(values[0])
        except ValueError:
            continue
    return Usage(**found)


async def read_usage(sandbox: daytona.Sandbox) -> tuple[Usage | None, str]:
    """The usage now, or None and why it could not be read."""
    try:
        answer = await toolbox.call(
            sandbox,
            "POST",
            "/process/execute",
            json_body={"command": USAGE_COMMAND, "timeout": int(USAGE_SECONDS)},
            seconds=USAGE_SECONDS + 2,
        )
    except daytona.DaytonaError as error:
        return None, error.message
    output = answer.get("result") if isinstance(answer, dict) else None
    usage = parse_usage(output if isinstance(output, str) else "")
    if usage == Usage():
        return None, "The sandbox did not say (no free, df or /proc/loadavg in it)."
    return usage, ""


async def _volume_names() -> dict[str, str]:
    try:
        return {v.id: v.name for v in await daytona.list_volumes(include_deleted=True)}
    except daytona.DaytonaError:
        return {}  # the mounts then show their ids


@require_GET
async def sandbox_usage(request: HttpRequest, sandbox_id: str) -> HttpResponse:
    """The live part of the configuration card (loaded by the page, polled while it runs)."""
    user = await request.auser()
    try:
        sandbox, _ = await actions.find_sandbox(user, sandbox_id)
    except daytona.NotFound:
        raise Http404("This sandbox no longer exists.") from None
    running = sandbox.state == "started"
    reading = read_usage(sandbox) if running else asyncio.sleep(0, (None, ""))
    (usage, problem), names = await asyncio.gather(reading, _volume_names())
    mounts = [(names.get(m.volume_id, ""), m) for m in sandbox.volumes]
    context = {
        "sandbox": sandbox,
        "usage": usage,
        "usage_problem": problem,
        "running": running,
        "mounts": mounts,
        "poll": POLL_SECONDS if running else None,
        "loaded": True,
    }
    return await arender(request, "sandboxes/_config.html#live", context)
