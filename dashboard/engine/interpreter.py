"""Code interpreter contexts: a persistent Python namespace per context, as Daytona's daemon.

Each context is one worker process inside the sandbox (``interpreter_worker.py``, run by
the sandbox's own ``python3``) that keeps its globals between runs. Runs on one context
are served one at a time in arrival order; different contexts run side by side. The
``default`` context is made on first use and never listed. A context whose worker died
(``exit`` from C code, a kill after a timeout) starts afresh on its next run, with an
empty namespace, as the daemon's does; contexts end with the sandbox's processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from dashboard.engine.errors import ApiError, BadRequest, Conflict, NotFound
from dashboard.engine.store import iso, now

log = logging.getLogger("sandbar.engine")

WORKER_SOURCE = (Path(__file__).parent / "interpreter_worker.py").read_text()
LANGUAGE = "python"
DEFAULT_ID = "default"
MAX_CONTEXTS = 64  # per sandbox, the default one included
START_TIMEOUT = 30.0  # seconds for a worker to say it is ready (a cold, loaded sandbox)
INTERRUPT_GRACE = 2.0  # seconds between the interrupt a timeout sends and a kill
NOISE_LINES = 20  # lines of unparsable worker output kept to explain a failed start

Frame = dict[str, str]
Sink = Callable[[Frame], None]


class WorkerProcess(Protocol):
    """What a context needs of a spawned worker (the runtime's ``SandboxProcess``)."""

    @property
    def stdin(self) -> asyncio.StreamWriter | None: ...

    @property
    def stdout(self) -> asyncio.StreamReader | None: ...

    async def wait(self) -> int: ...

    def kill(self) -> None: ...

    def release(self) -> None: ...


# argv, cwd -> a started process with stdin and (combined) stdout pipes.
Spawner = Callable[[Sequence[str], str], Awaitable[WorkerProcess]]


class InterpreterUnavailable(ApiError):
    """The worker could not be started (no python3 in the snapshot, a full sandbox)."""

    status = 400


def output_frame(chunk: Mapping[str, Any]) -> Frame:
    """A frame as the daemon sends it: every field present, empty when unused."""
    return {
        key: str(chunk.get(key) or "") for key in ("type", "text", "name", "value", "traceback")
    }


class Context:
    """One interpreter context and its worker process."""

    def __init__(self, context_id: str, cwd: str, spawn: Spawner) -> None:
        self.id = context_id
        self.cwd = cwd
        self.language = LANGUAGE
        self.created_at = iso(now())
        self._spawn = spawn
        self._process: WorkerProcess | None = None
        self._reader: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()  # FIFO: runs keep their arrival order
        self._sink: Sink | None = None
        self._ended: asyncio.Future[str] | None = None
        self._noise: deque[str] = deque(maxlen=NOISE_LINES)
        self.closed = False

    @property
    def active(self) -> bool:
        """Whether its worker is up (a dead one restarts on the next run)."""
        return self._reader is not None and not self._reader.done()

    def to_json(self) -> dict[str, object]:
        """Daytona's InterpreterContext."""
        return {
            "id": self.id,
            "cwd": self.cwd,
            "createdAt": self.created_at,
            "active": self.active,
            "language": self.language,
        }

    # -- the worker ------------------------------------------------------------

    async def start(self) -> None:
        """Start the worker and wait until it is ready to run code."""
        if self.active:
            return
        self._noise.clear()
        try:
            process = await self._spawn(["python3", "-c", WORKER_SOURCE], self.cwd)
        except ApiError:
            raise
        except Exception as error:  # NotRunning, RuntimeError_, OSError from the runtime
            raise InterpreterUnavailable(f"could not start the interpreter: {error}") from None
        loop = asyncio.get_running_loop()
        self._process = process
        self._ready = loop.create_future()
        self._reader = asyncio.create_task(self._read(process), name=f"interpreter-{self.id}")
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT)
        except TimeoutError:
            await self._kill()
            raise InterpreterUnavailable(
                f"the interpreter did not start within {START_TIMEOUT:g} seconds"
            ) from None
        except InterpreterUnavailable:
            await self._kill()
            raise

    async def _read(self, process: WorkerProcess) -> None:
        reader = process.stdout
        assert reader is not None
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # a line past the reader's limit: not our worker talking
                    log.warning("interpreter %s: overlong line from the worker", self.id)
                    process.kill()
                    break
                if not line:
                    break
                self._handle(line)
        finally:
            code = await process.wait()
            process.release()
            self._finish_worker(code)

    def _handle(self, line: bytes) -> None:
        try:
            chunk = json.loads(line)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict) or not isinstance(chunk.get("type"), str):
            # Python's own complaints before the worker took over its output.
            self._noise.append(line.decode(errors="replace").rstrip("\n"))
            return
        kind = chunk["type"]
        if kind == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            return
        if kind not in ("stdout", "stderr", "error", "control"):
            return
        if self._sink is not None:
            self._sink(output_frame(chunk))
        if kind == "control" and self._ended is not None and not self._ended.done():
            self._ended.set_result(str(chunk.get("text") or "completed"))

    def _finish_worker(self, code: int) -> None:
        if self._ready is not None and not self._ready.done():
            said = "; ".join(self._noise) or f"it exited with status {code}"
            self._ready.set_exception(
                InterpreterUnavailable(f"the interpreter could not start: {said}")
            )
        if self._ended is not None and not self._ended.done():
            self._ended.set_result("died")

    async def _kill(self) -> None:
        process, reader = self._process, self._reader
        if process is None or reader is None:
            return
        process.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(reader), 10)

    async def _send(self, message: dict[str, object]) -> bool:
        process = self._process
        writer = process.stdin if process is not None else None
        if writer is None:
            return False
        try:
            writer.write(json.dumps(message).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, RuntimeError):
            return False
        return True

    # -- runs --------------------------------------------------------------------

    async def execute(
        self, code: str, envs: Mapping[str, str], time_limit: float, sink: Sink
    ) -> str:
        """Run ``code``; stream frames to ``sink``; return ``completed``, ``timeout``
        (past ``time_limit`` seconds, 0 for none: interrupted, or killed when it ignored
        the interrupt) or ``died``."""
        async with self._lock:
            if self.closed:
                raise NotFound(f"context with ID '{self.id}' not found")
            await self.start()
            loop = asyncio.get_running_loop()
            ended: asyncio.Future[str] = loop.create_future()
            self._ended, self._sink = ended, sink
            run_id = str(uuid.uuid4())
            try:
                if not await self._send({"id": run_id, "code": code, "envs": dict(envs)}):
                    await self._kill()
                    return "died"
                try:
                    outcome = await asyncio.wait_for(asyncio.shield(ended), time_limit or None)
                except TimeoutError:
                    await self._send({"interrupt": run_id})
                    try:
                        await asyncio.wait_for(asyncio.shield(ended), INTERRUPT_GRACE)
                    except TimeoutError:
                        await self._kill()
                    return "timeout"
                return "died" if outcome == "died" else "completed"
            finally:
                self._ended = self._sink = None

    async def close(self) -> None:
        """Stop the worker for good (its namespace is lost)."""
        self.closed = True
        await self._kill()


class InterpreterManager:
    """The interpreter contexts of one sandbox."""

    def __init__(self, spawn: Spawner, default_cwd: str) -> None:
        self._spawn = spawn
        self.default_cwd = default_cwd
        self.contexts: dict[str, Context] = {}

    async def create(self, cwd: str | None, language: str | None) -> Context:
        """A new started context (Daytona starts it before answering)."""
        if language not in (None, "", LANGUAGE):
            raise BadRequest(
                f"unsupported language: {language} (only '{LANGUAGE}' is supported currently)"
            )
        if len(self.contexts) >= MAX_CONTEXTS:
            raise Conflict(f"a sandbox may have at most {MAX_CONTEXTS} interpreter contexts")
        context = Context(str(uuid.uuid4()), cwd or self.default_cwd, self._spawn)
        await context.start()
        self.contexts[context.id] = context
        return context

    def get(self, context_id: str) -> Context:
        """A context by id, or 404."""
        context = self.contexts.get(context_id)
        if context is None:
            raise NotFound(f"context with ID '{context_id}' not found")
        return context

    def default(self) -> Context:
        """The shared default context; its worker starts with its first run."""
        context = self.contexts.get(DEFAULT_ID)
        if context is None:
            context = Context(DEFAULT_ID, self.default_cwd, self._spawn)
            self.contexts[DEFAULT_ID] = context
        return context

    def listed(self) -> list[dict[str, object]]:
        """Every context the user made (the default one is not listed)."""
        return [c.to_json() for c in self.contexts.values() if c.id != DEFAULT_ID]

    async def delete(self, context_id: str) -> None:
        """Shut a context's worker down and forget it."""
        if context_id == DEFAULT_ID:
            raise BadRequest("cannot delete default context")
        context = self.get(context_id)
        del self.contexts[context_id]
        await context.close()

    async def close(self) -> None:
        """Shut every context down (the sandbox is going away)."""
        contexts = list(self.contexts.values())
        self.contexts.clear()
        for context in contexts:
            await context.close()
