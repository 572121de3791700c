"""The code interpreter: the official SDK's ``sandbox.code_interpreter``, unmodified, against
the engine over real HTTP and WebSockets, plus raw requests for the daemon's error answers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from daytona import (
    Daytona,
    DaytonaConnectionError,
    DaytonaTimeoutError,
    Sandbox,
)
from daytona.common.code_interpreter import ExecutionError, OutputMessage
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.engine_server import EngineServer


@pytest.fixture(scope="module")
def box(daytona: Daytona) -> Iterator[Sandbox]:
    """A sandbox of this module's own: the default context's state is shared by its tests."""
    created = daytona.create()
    yield created
    created.delete()


def _ws(engine: EngineServer, sandbox_id: str) -> ClientConnection:
    url = engine.toolbox_url.replace("http", "ws", 1)
    return connect(
        f"{url}/{sandbox_id}/process/interpreter/execute",
        additional_headers={"Authorization": f"Bearer {engine.api_key}"},
        open_timeout=30,
    )


def _run_raw(engine: EngineServer, sandbox_id: str, request: Any) -> tuple[list[dict], int, str]:
    """Send one run request; every frame received, the close code and reason."""
    frames: list[dict] = []
    with _ws(engine, sandbox_id) as ws:
        ws.send(request if isinstance(request, str) else json.dumps(request))
        try:
            while True:
                frames.append(json.loads(ws.recv(timeout=60)))
        except ConnectionClosed:
            pass
        assert ws.close_code is not None
        return frames, ws.close_code, ws.close_reason or ""


# -- through the SDK ----------------------------------------------------------------


def test_variables_and_imports_persist_between_runs_of_the_default_context(box: Sandbox) -> None:
    first = box.code_interpreter.run_code("import math\nanswer = 41")
    assert (first.stdout, first.stderr, first.error) == ("", "", None)
    second = box.code_interpreter.run_code("print(answer + 1, math.floor(math.pi))")
    assert second.stdout == "42 3\n"
    assert second.error is None


def test_contexts_are_separate_and_only_the_ones_made_are_listed(box: Sandbox) -> None:
    interpreter = box.code_interpreter
    context = interpreter.create_context(cwd="/tmp")
    assert (context.language, context.cwd, context.active) == ("python", "/tmp", True)
    interpreter.run_code("only_here = 'ctx'", context=context)
    seen = interpreter.run_code("print(only_here)", context=context)
    assert seen.stdout == "ctx\n"
    default = interpreter.run_code("print(only_here)")
    assert default.error is not None and default.error.name == "NameError"
    where = interpreter.run_code("import os\nprint(os.getcwd())", context=context)
    assert where.stdout == "/tmp\n"
    assert [c.id for c in interpreter.list_contexts()] == [context.id]  # no "default"
    interpreter.delete_context(context)
    assert interpreter.list_contexts() == []
    with pytest.raises(DaytonaConnectionError, match="context not found"):
        interpreter.run_code("print(1)", context=context)


def test_an_exception_comes_back_as_an_error_object_with_a_traceback(box: Sandbox) -> None:
    errors: list[ExecutionError] = []
    code = "print('before')\ndef fail():\n    raise ValueError('bad input')\nfail()\n"
    result = box.code_interpreter.run_code(code, on_error=errors.append)
    assert result.stdout == "before\n"
    assert result.error is not None
    assert (result.error.name, result.error.value) == ("ValueError", "bad input")
    assert "line 3, in fail" in result.error.traceback
    assert "raise ValueError('bad input')" in result.error.traceback
    assert "interpreter_worker" not in result.error.traceback  # only the user's frames
    assert errors == [result.error]
    syntax = box.code_interpreter.run_code("x = (")
    assert syntax.error is not None and syntax.error.name == "SyntaxError"


def test_output_streams_as_it_is_written_not_at_the_end(box: Sandbox) -> None:
    arrivals: list[tuple[float, str, str]] = []
    start = time.monotonic()

    def on(kind: str) -> Any:
        return lambda message: arrivals.append((time.monotonic() - start, kind, message.output))

    code = (
        "import sys, time\n"
        "for i in range(3):\n"
        "    print(f'tick {i}')\n"
        "    time.sleep(0.6)\n"
        "sys.stderr.write('done\\n')\n"
    )
    result = box.code_interpreter.run_code(code, on_stdout=on("out"), on_stderr=on("err"))
    total = time.monotonic() - start
    assert result.stdout == "tick 0\ntick 1\ntick 2\n"
    assert result.stderr == "done\n"
    assert [text for _, _, text in arrivals] == ["tick 0\n", "tick 1\n", "tick 2\n", "done\n"]
    assert [kind for _, kind, _ in arrivals] == ["out", "out", "out", "err"]
    # The first line arrives long before the run ends (1.8 s of sleeps after it).
    assert total - arrivals[0][0] > 1.2, arrivals
    assert arrivals[2][0] - arrivals[0][0] > 0.9, arrivals


def test_programs_the_code_starts_write_into_the_same_streams(box: Sandbox) -> None:
    result = box.code_interpreter.run_code(
        "import os, subprocess\nos.system('echo from-shell')\n"
        "subprocess.run(['sh', '-c', 'echo to-stderr >&2'])\nprint('python')\n"
    )
    assert result.stdout == "from-shell\npython\n"
    assert result.stderr == "to-stderr\n"


def test_envs_apply_to_one_run_only(box: Sandbox) -> None:
    code = "import os\nprint(os.environ.get('ONLY_NOW'))"
    assert box.code_interpreter.run_code(code, envs={"ONLY_NOW": "yes"}).stdout == "yes\n"
    assert box.code_interpreter.run_code(code).stdout == "None\n"


def test_a_run_past_its_timeout_raises_and_the_context_keeps_its_state(box: Sandbox) -> None:
    context = box.code_interpreter.create_context()
    try:
        box.code_interpreter.run_code("kept = 7", context=context)
        started = time.monotonic()
        with pytest.raises(DaytonaTimeoutError):
            box.code_interpreter.run_code("import time\ntime.sleep(60)", context=context, timeout=1)
        assert time.monotonic() - started < 10
        after = box.code_interpreter.run_code("print(kept)", context=context)
        assert after.stdout == "7\n"
    finally:
        box.code_interpreter.delete_context(context)


def test_a_run_that_ignores_the_interrupt_is_killed_and_its_context_starts_afresh(
    box: Sandbox,
) -> None:
    context = box.code_interpreter.create_context()
    try:
        box.code_interpreter.run_code("lost = 1", context=context)
        stubborn = (
            "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)"
        )
        started = time.monotonic()
        with pytest.raises(DaytonaTimeoutError):
            box.code_interpreter.run_code(stubborn, context=context, timeout=1)
        assert time.monotonic() - started < 15
        after = box.code_interpreter.run_code("print('lost' in globals())", context=context)
        assert after.stdout == "False\n"
    finally:
        box.code_interpreter.delete_context(context)


def test_input_reads_an_empty_stdin_instead_of_hanging(box: Sandbox) -> None:
    result = box.code_interpreter.run_code("input()", timeout=20)
    assert result.error is not None and result.error.name == "EOFError"


def test_contexts_end_with_the_sandbox_stop(daytona: Daytona) -> None:
    created = daytona.create()
    try:
        context = created.code_interpreter.create_context()
        created.code_interpreter.run_code("x = 1", context=context)
        created.code_interpreter.run_code("y = 2")
        created.stop()
        created.start()
        assert created.code_interpreter.list_contexts() == []
        with pytest.raises(DaytonaConnectionError, match="context not found"):
            created.code_interpreter.run_code("print(x)", context=context)
        fresh = created.code_interpreter.run_code("print('y' in globals())")
        assert fresh.stdout == "False\n"
    finally:
        created.delete()


def test_on_stdout_sees_output_message_objects(box: Sandbox) -> None:
    seen: list[OutputMessage] = []
    box.code_interpreter.run_code("print('hi')", on_stdout=seen.append)
    assert [m.output for m in seen] == ["hi\n"]


# -- raw wire format and errors -----------------------------------------------------------


def test_frames_carry_every_field_and_end_with_completed_and_1000(
    engine: EngineServer, box: Sandbox
) -> None:
    frames, code, _ = _run_raw(engine, box.id, {"code": "print('a')\n1/0"})
    assert code == 1000
    assert frames[0] == {"type": "stdout", "text": "a\n", "name": "", "value": "", "traceback": ""}
    assert frames[1]["type"] == "error"
    assert (frames[1]["name"], frames[1]["value"]) == ("ZeroDivisionError", "division by zero")
    assert frames[-1] == {
        "type": "control",
        "text": "completed",
        "name": "",
        "value": "",
        "traceback": "",
    }


def test_a_timeout_sends_interrupted_and_closes_4008(engine: EngineServer, box: Sandbox) -> None:
    frames, code, _ = _run_raw(
        engine, box.id, {"code": "import time\ntime.sleep(30)", "timeout": 1}
    )
    assert code == 4008
    assert frames[-1]["type"] == "control" and frames[-1]["text"] == "interrupted"


@pytest.mark.parametrize(
    ("request_text", "close_code", "reason"),
    [
        ("not json", 1002, "invalid JSON payload"),
        (json.dumps({"code": 5}), 1002, "invalid JSON payload"),
        (json.dumps({"code": "1", "envs": {"A": 1}}), 1002, "invalid JSON payload"),
        (json.dumps({"code": ""}), 1008, "code is required"),
        (
            json.dumps({"code": "1", "timeout": -1}),
            1008,
            "timeout must be greater than or equal to 0",
        ),
        (json.dumps({"code": "1", "contextId": "nope"}), 1008, "context not found: nope"),
    ],
)
def test_a_bad_run_request_closes_the_socket_as_the_daemon_does(
    engine: EngineServer, box: Sandbox, request_text: str, close_code: int, reason: str
) -> None:
    frames, code, got_reason = _run_raw(engine, box.id, request_text)
    assert (frames, code, got_reason) == ([], close_code, reason)


def test_an_unknown_sandbox_refuses_the_upgrade_with_404(engine: EngineServer) -> None:
    with pytest.raises(InvalidStatus) as raised:
        _ws(engine, "no-such-sandbox")
    assert raised.value.response.status_code == 404


def test_context_requests_answer_the_daemons_errors(toolbox: httpx.Client, box: Sandbox) -> None:
    base = f"/{box.id}/process/interpreter/context"
    response = toolbox.post(base, json={"language": "javascript"})
    assert response.status_code == 400
    assert "unsupported language: javascript" in response.json()["message"]
    assert toolbox.post(base, content=b"{not json").status_code == 400
    assert toolbox.post(base, json={"cwd": 5}).status_code == 400
    missing = toolbox.post(base, json={"cwd": "/no/such/dir"})
    assert missing.status_code == 400 and "/no/such/dir" in missing.json()["message"]
    assert toolbox.delete(f"{base}/nope").status_code == 404
    default = toolbox.delete(f"{base}/default")
    assert default.status_code == 400
    assert default.json()["message"] == "cannot delete default context"
    made = toolbox.post(base, json={})
    assert made.status_code == 200
    body = made.json()
    assert set(body) == {"id", "cwd", "createdAt", "active", "language"}
    assert body["cwd"] == "/home/daytona"
    listed = toolbox.get(base).json()
    assert [c["id"] for c in listed["contexts"]] == [body["id"]]
    deleted = toolbox.delete(f"{base}/{body['id']}")
    assert deleted.json() == {"message": "Context deleted successfully"}
    assert toolbox.get(base).json() == {"contexts": []}


def test_a_large_output_arrives_whole_and_in_order(box: Sandbox) -> None:
    result = box.code_interpreter.run_code(
        "import sys\nfor i in range(50000): print(i)\nsys.stdout.write('é' * 100000)"
    )
    lines = result.stdout.split("\n")
    assert lines[:-1] == [str(i) for i in range(50000)]
    assert lines[-1] == "é" * 100000  # multi-byte characters cut across reads stay whole


def test_a_run_goes_on_when_its_client_leaves_and_later_runs_see_its_result(
    engine: EngineServer, box: Sandbox
) -> None:
    context = box.code_interpreter.create_context()
    try:
        with _ws(engine, box.id) as ws:
            code = "import time\nprint('started')\ntime.sleep(1)\nfinished_alone = True"
            ws.send(json.dumps({"code": code, "contextId": context.id}))
            assert json.loads(ws.recv(timeout=30))["text"] == "started\n"  # it holds the context
        # A new connection (a reloaded page) queues behind the first run and sees it.
        result = box.code_interpreter.run_code("print(finished_alone)", context=context)
        assert result.stdout == "True\n"
    finally:
        box.code_interpreter.delete_context(context)
