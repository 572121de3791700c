"""The code interpreter's worker: one per context, run inside the sandbox by its python3.

The engine (:mod:`dashboard.engine.interpreter`) starts it with ``python3 -c <this file>``
and talks to it over its original stdin and stdout, one JSON object per line:

- engine -> worker: ``{"id", "code", "envs"}`` runs code in the context's namespace;
  ``{"interrupt": id}`` raises KeyboardInterrupt in that run if it is still going.
- worker -> engine: ``{"type": "ready"}`` once, then for each run any number of
  ``{"type": "stdout"|"stderr", "text"}``, at most one ``{"type": "error", "name",
  "value", "traceback"}`` and a last ``{"type": "control", "text": "completed" |
  "interrupted"}``.

Before anything runs, the worker moves that channel off file descriptors 0, 1 and 2 and
puts pipes of its own there, read by a thread per stream. So output of the code and of
any program it starts (``os.system``, ``subprocess``) streams as it is written, never
mixes with the channel, and ``input()`` reads an empty stdin instead of the next run.
The engine's side only trusts what it can parse: user code can write to the channel's
descriptor if it tries, and only confuses its own context.

This file must run on the sandbox's Python (3.8 or later), not the engine's.
"""

import sys

# ``python -c`` puts the working directory first on sys.path: keep the context's own
# modules importable (as in a notebook), but not ahead of the standard library that
# this worker imports before any user code runs.
_CWD_ENTRY = sys.path.pop(0) if sys.path and sys.path[0] == "" else None

import builtins  # noqa: E402
import codecs  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import linecache  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402

if _CWD_ENTRY is not None:
    sys.path.insert(0, _CWD_ENTRY)

READ_SIZE = 1 << 16
MAX_FIELD = 32 << 10  # characters of an error's name, value or traceback
COALESCE_SECONDS = 0.005
DRAIN_SECONDS = 1.0  # how long the end of a run waits for its output to be read


class Channel:
    """The line-oriented JSON channel to the engine, shared by every thread."""

    def __init__(self, fd):
        self.fd = fd
        self.lock = threading.Lock()

    def send(self, message):
        data = (json.dumps(message) + "\n").encode("ascii")
        with self.lock:
            view = memoryview(data)
            while view:
                try:
                    written = os.write(self.fd, view)
                except InterruptedError:
                    continue
                except OSError:
                    os._exit(0)  # the engine is gone: nobody will read another word
                view = view[written:]


def _held_suffix(data, marker):
    """How many trailing bytes of ``data`` could be the start of ``marker``."""
    start = max(0, len(data) - len(marker) + 1)
    index = data.find(marker[:1], start)
    while index >= 0:
        if marker.startswith(data[index:]):
            return len(data) - index
        index = data.find(marker[:1], index + 1)
    return 0


class Pump(threading.Thread):
    """Reads one of our stdout/stderr pipes and sends what arrives as it arrives."""

    def __init__(self, fd, target, kind, channel):
        super().__init__(daemon=True, name="pump-" + kind)
        self.fd = fd
        self.target = target  # the descriptor whose writes this pump reads
        self.kind = kind
        self.channel = channel
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.lock = threading.Lock()
        self.marker = None
        self.reached = threading.Event()
        self.held = b""

    def expect(self, marker):
        """Arm the end-of-run marker the main thread is about to write to this pipe."""
        with self.lock:
            self.marker = marker
            self.reached.clear()

    def run(self):
        while True:
            try:
                data = os.read(self.fd, READ_SIZE)
            except InterruptedError:
                continue
            if not data:
                return
            if not data.endswith(b"\n") and len(data) < READ_SIZE:
                # print() writes the text and its newline separately: a few ms more
                # make them one frame without holding back output that pauses.
                readable, _, _ = select.select([self.fd], [], [], COALESCE_SECONDS)
                if readable:
                    data += os.read(self.fd, READ_SIZE - len(data))
            self.feed(data)

    def feed(self, data):
        with self.lock:
            data = self.held + data
            self.held = b""
            marker = self.marker
            if marker is not None:
                index = data.find(marker)
                if index >= 0:
                    self.emit(data[:index], final=True)
                    self.marker = None
                    self.reached.set()
                    data = data[index + len(marker) :]  # a background job's, after the run
                else:
                    keep = _held_suffix(data, marker)
                    self.held = data[len(data) - keep :]
                    data = data[: len(data) - keep]
            self.emit(data)

    def emit(self, data, final=False):
        text = self.decoder.decode(data, final)
        if final:
            self.decoder.reset()
        if text:
            self.channel.send({"type": self.kind, "text": text})


class Worker:
    """One context: a namespace and the runs queued to it, one at a time."""

    def __init__(self):
        self.channel = None
        self.pumps = []
        self.jobs = queue.Queue()
        # The code's globals are a fresh __main__ module, so that pickle and
        # multiprocessing find what it defines, and none of this worker's names show.
        main = types.ModuleType("__main__")
        main.__builtins__ = builtins
        sys.modules["__main__"] = main
        self.namespace = main.__dict__
        self.state_lock = threading.Lock()
        self.running_id = None
        self.interrupted = False
        self.cells = 0

    # -- set-up ----------------------------------------------------------------

    def setup(self):
        command_fd = os.dup(0)  # os.dup's copies are not inherited by child processes
        channel_fd = os.dup(1)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        self.channel = Channel(channel_fd)
        for target, kind in ((1, "stdout"), (2, "stderr")):
            read_end, write_end = os.pipe()
            os.dup2(write_end, target)
            os.close(write_end)
            pump = Pump(read_end, target, kind, self.channel)
            pump.start()
            self.pumps.append(pump)
        sys.stdout = self._text_stream(1)
        sys.stderr = self._text_stream(2)
        sys.__stdout__, sys.__stderr__ = sys.stdout, sys.stderr
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        signal.signal(signal.SIGINT, self._on_interrupt)
        reader = threading.Thread(
            target=self._read_commands, args=(command_fd,), daemon=True, name="commands"
        )
        reader.start()

    @staticmethod
    def _text_stream(fd):
        # Unbuffered all the way down, so a print() without a newline streams at once.
        raw = io.FileIO(fd, "w", closefd=False)
        return io.TextIOWrapper(
            raw, encoding="utf-8", errors="backslashreplace", write_through=True
        )

    def _on_interrupt(self, _signum, _frame):
        # No lock here: the handler runs in the main thread, which may hold it.
        if self.running_id is None:
            return  # between runs: nothing to interrupt
        raise KeyboardInterrupt("Execution interrupted")

    def _read_commands(self, fd):
        with os.fdopen(fd, "rb") as commands:
            for line in commands:
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(message, dict):
                    continue
                if "interrupt" in message:
                    self._interrupt(message["interrupt"])
                else:
                    self.jobs.put(message)
        self.jobs.put(None)

    def _interrupt(self, job_id):
        with self.state_lock:
            if job_id is None or self.running_id != job_id:
                return
            self.interrupted = True
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    # -- runs ------------------------------------------------------------------

    def serve(self):
        self.channel.send({"type": "ready"})
        while True:
            job = self.jobs.get()
            if job is None:
                break
            self.run(job)
        _flush_standard_streams()
        os._exit(0)  # threads the code started must not keep the context alive

    def run(self, job):
        code = job.get("code")
        envs = job.get("envs") or {}
        if not isinstance(code, str) or not isinstance(envs, dict):
            self.channel.send(_error("ValueError", "bad run request", ""))
            self.channel.send({"type": "control", "text": "completed"})
            return
        self.cells += 1
        filename = f"<cell-{self.cells}>"
        # Registered so that tracebacks (also later ones, through functions defined
        # here) can quote the lines.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        saved = _apply_env(envs)
        outcome = "completed"
        error = None
        with self.state_lock:
            self.running_id = job.get("id")
            self.interrupted = False
        try:
            exec(compile(code, filename, "exec"), self.namespace)  # noqa: S102
        except KeyboardInterrupt as caught:
            if self.interrupted:
                outcome = "interrupted"
            else:
                error = _describe(caught)
        except SystemExit:
            pass  # exit() ends the run, not the context
        except BaseException as caught:  # every failure is the user's to see
            error = _describe(caught)
        finally:
            with self.state_lock:
                self.running_id = None
            self._drain()
            _restore_env(saved)
        if error is not None:
            self.channel.send(error)
        self.channel.send({"type": "control", "text": outcome})

    def _drain(self):
        """Wait until what the run wrote to fd 1 and 2 has been sent: write a marker
        behind it and let each pump reach it (bounded, if something took the fd over)."""
        _flush_standard_streams()
        marker = b"\x00\x1bsandbar-end-" + os.urandom(8).hex().encode() + b"\x00"
        for pump in self.pumps:
            pump.expect(marker)
            try:
                os.write(pump.target, marker)
            except OSError:
                pump.expect(None)
                continue
            pump.reached.wait(DRAIN_SECONDS)


def _flush_standard_streams():
    for stream in (sys.stdout, sys.stderr):
        # User code may have replaced or closed them.
        with contextlib.suppress(Exception):
            stream.flush()


def _apply_env(envs):
    saved = {}
    for key, value in envs.items():
        key = str(key)
        saved[key] = os.environ.get(key)
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = str(value)
    return saved


def _restore_env(saved):
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def _clip(text):
    if len(text) <= MAX_FIELD:
        return text
    return text[: MAX_FIELD // 2] + "\n[...]\n" + text[-MAX_FIELD // 2 :]


def _error(name, value, trace):
    return {"type": "error", "name": _clip(name), "value": _clip(value), "traceback": _clip(trace)}


def _describe(error):
    """The error object: the worker's own frame is left out of the traceback."""
    tb = error.__traceback__.tb_next if error.__traceback__ is not None else None
    try:
        value = str(error)
    except Exception:  # a broken __str__ is the user's, not ours
        value = f"<unprintable {type(error).__name__}>"
    trace = "".join(traceback.format_exception(type(error), error, tb))
    return _error(type(error).__name__, value, trace)


if __name__ == "__main__":
    worker = Worker()
    worker.setup()
    worker.serve()
