"""Commands get exactly their arguments, environment, directory and an empty stdin.

After a short pause a sandbox has a spare process waiting to become the next command
(the fast path); straight after a start it does not (the full spawn). Both must behave
the same, so every check runs both ways.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.engine.conftest import create, run

TRICKY = "spaces and 'quotes' \"double\" $HOME `x` \\ ; & | *\nsecond line é"


@pytest.fixture(params=["spare", "cold"])
def sid(request: pytest.FixtureRequest, api: httpx.Client) -> Iterator[str]:
    dto = create(api, autoStopInterval=0, networkBlockAll=True)
    if request.param == "spare":
        time.sleep(0.6)  # a spare is made 0.2 s after the start
    yield dto["id"]
    api.delete(f"/sandbox/{dto['id']}")


def test_environment_and_directory_arrive_intact(toolbox: httpx.Client, sid: str) -> None:
    run(toolbox, sid, "mkdir -p 'a dir/with space'")
    result = run(
        toolbox,
        sid,
        'printf "%s|%s|%s" "$TRICKY" "$PWD" "$(id -un)"',
        envs={"TRICKY": TRICKY},
        cwd="/home/daytona/a dir/with space",
    )
    assert result["result"] == f"{TRICKY}|/home/daytona/a dir/with space|daytona"


def test_only_the_sandbox_environment_is_visible(toolbox: httpx.Client, sid: str) -> None:
    names = set(run(toolbox, sid, "env | cut -d= -f1")["result"].split())
    assert names <= {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "HOSTNAME",
        "PWD",
        "SHLVL",
        "_",
    }


def test_stdin_is_empty(toolbox: httpx.Client, sid: str) -> None:
    result = toolbox.post(
        f"/{sid}/process/execute", json={"command": "cat; echo done", "timeout": 10}
    )
    assert result.json()["result"] == "done\n"


def test_code_run_gets_its_arguments(toolbox: httpx.Client, sid: str) -> None:
    code = "import sys, os\nprint(sys.argv[1:], os.environ['X'])"
    response = toolbox.post(
        f"/{sid}/process/code-run",
        json={"code": code, "argv": ["a b", "$y"], "envs": {"X": TRICKY}},
    ).json()
    assert response["result"] == f"{['a b', '$y']} {TRICKY}\n"


def test_many_commands_in_a_row_all_run(toolbox: httpx.Client, sid: str) -> None:
    outputs: list[Any] = []
    for index in range(6):
        outputs.append(run(toolbox, sid, f"echo {index}")["result"])
        time.sleep(0.05 * (index % 2))
    assert outputs == [f"{index}\n" for index in range(6)]
