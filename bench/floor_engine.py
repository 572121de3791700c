"""The engine's floor for bench/load.py: its server stack with no PTY and no sandbox.

uvicorn with the engine's own options (dashboard/engine/server.py's uvicorn_config),
Starlette and one WebSocket route at the engine's PTY path. Each connection says
"connected" as the engine does, then sends one frame of 16 lines of 63 bytes plus CRLF
(what the bench's program writes through a PTY, coalesced into one frame as the engine
does) every 100 ms, and sends back every input frame at once (the line discipline's
echo). No authentication, no audit, no scrollback, no flow control: what is left is
what the libraries cost.

    python bench/floor_engine.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dashboard.engine.server import raise_open_files_limit, uvicorn_config

LINE = b"." * 63 + b"\r\n"  # bash's echo of a 63-byte line, after the tty's onlcr
FRAME = LINE * 16
PERIOD = 0.1
EXIT_CONTROL = "X-Daytona-Pty-Exit-Control"


async def terminal(websocket: WebSocket) -> None:
    offered = websocket.headers.get("sec-websocket-protocol", "")
    tokens = [token.strip() for token in offered.split(",")]
    await websocket.accept(subprotocol=EXIT_CONTROL if EXIT_CONTROL in tokens else None)
    await websocket.send_text(json.dumps({"type": "control", "status": "connected"}))
    if websocket.query_params.get("replay") == "screen":
        await websocket.send_bytes(b"\x1b[H\x1b[2J$ ")  # the engine's redraw, shortened

    async def output() -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += PERIOD
            await asyncio.sleep(max(0.0, due - loop.time()))
            await websocket.send_bytes(FRAME)

    async def echo() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or (message.get("text") or "").encode()
            await websocket.send_bytes(data)

    tasks = [asyncio.ensure_future(output()), asyncio.ensure_future(echo())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        await websocket.close()


app = Starlette(
    routes=[WebSocketRoute("/toolbox/{sandbox_id}/process/pty/{pty_id}/connect", terminal)]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    raise_open_files_limit()
    config = uvicorn_config(SimpleNamespace(host="127.0.0.1", port=args.port), app)  # type: ignore[arg-type]
    config.lifespan = "off"  # nothing to start: no engine behind it
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
