"""A small web server the preview tests run INSIDE a sandbox (uploaded, then started
with the sandbox's own python3; only the standard library).

    python3 preview_server.py PORT

GET /headers answers the request's headers as JSON; GET /endless streams zeros until the
client leaves; GET /slow sends "first", waits two seconds, then "second"; POST /digest
answers the SHA-256 and length of the body it read; a WebSocket upgrade on any path
echoes every text and binary message and answers a close with the same code.
"""

import base64
import hashlib
import json
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHUNK = b"\0" * (1 << 20)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.websocket()
        if self.path == "/headers":
            body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
            return self.answer(body, "application/json")
        if self.path == "/endless":
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                while True:
                    self.wfile.write(CHUNK)
            except OSError:
                return
        if self.path == "/slow":
            self.send_response(200)
            self.send_header("Content-Length", str(len("first") + len("second")))
            self.end_headers()
            self.wfile.write(b"first")
            self.wfile.flush()
            time.sleep(2)
            self.wfile.write(b"second")
            return
        self.answer(b"preview " + self.path.encode(), "text/plain")

    def do_POST(self):
        digest = hashlib.sha256()
        remaining = int(self.headers.get("Content-Length", "0"))
        while remaining:
            piece = self.rfile.read(min(remaining, 1 << 16))
            if not piece:
                break
            digest.update(piece)
            remaining -= len(piece)
        length = int(self.headers.get("Content-Length", "0")) - remaining
        self.answer(json.dumps({"sha256": digest.hexdigest(), "length": length}).encode(), "")

    def answer(self, body, kind):
        self.send_response(200)
        self.send_header("Content-Type", kind or "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self):
        key = self.headers["Sec-WebSocket-Key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()  # noqa: S324 -- RFC 6455
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        offered = self.headers.get("Sec-WebSocket-Protocol")
        if offered:
            self.send_header("Sec-WebSocket-Protocol", offered.split(",")[0].strip())
        self.end_headers()
        self.wfile.flush()
        while True:
            opcode, payload = self.read_frame()
            if opcode == 8:  # close: answer with the same code, then end
                self.send_frame(8, payload[:2])
                self.close_connection = True
                return
            if opcode == 9:
                self.send_frame(10, payload)
            elif opcode in (1, 2):
                self.send_frame(opcode, payload)

    def read_frame(self):
        head = self.rfile.read(2)
        if len(head) < 2:
            return 8, b""
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", self.rfile.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", self.rfile.read(8))[0]
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = self.rfile.read(length)
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def send_frame(self, opcode, payload):
        size = len(payload)
        if size < 126:
            head = struct.pack("!BB", 0x80 | opcode, size)
        elif size < 1 << 16:
            head = struct.pack("!BBH", 0x80 | opcode, 126, size)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
        self.wfile.write(head + payload)
        self.wfile.flush()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
