"""Loopback servers that answer the way a misconfigured connection would."""

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Routes: path (without query) -> (status, content type, body).
Routes = dict[str, tuple[int, str, bytes]]

DAYTONA_CONFIG = (
    200,
    "application/json",
    json.dumps(
        {"version": "0.1-test", "defaultSnapshot": "x", "maxAutoArchiveInterval": 1}
    ).encode(),
)


def _handler(routes: Routes, seen: list[dict[str, str]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(dict(self.headers))
            status, kind, body = routes.get(
                self.path.split("?")[0], (404, "text/html", b"<h1>Not here</h1>")
            )
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Handler


@contextlib.contextmanager
def http_server(routes: Routes) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A plain HTTP server on a free loopback port: its root URL and the headers it saw."""
    seen: list[dict[str, str]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes, seen))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
