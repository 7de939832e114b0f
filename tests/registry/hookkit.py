"""A stand-in for the rotation Edge Function on loopback (imported by name: this module's name
is unique across the test folders). The ``hook_server`` fixture (tests/registry/conftest.py)
yields one."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pria_ml.rotation import SIGNATURE_HEADER, TIMESTAMP_HEADER

SECRET = b"rotation-secret"


@dataclass
class Hook:
    """A stand-in Edge Function: verifies signatures like the real one, answers as scripted."""

    url: str
    answers: list[int] = field(default_factory=list)
    received: list[dict] = field(default_factory=list)
    bad_signatures: int = 0


@contextlib.contextmanager
def serve_hook() -> Iterator[Hook]:
    state = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            timestamp = self.headers[TIMESTAMP_HEADER]
            expected = hmac.new(SECRET, f"{timestamp}.".encode() + body, hashlib.sha256)
            if not hmac.compare_digest(
                self.headers[SIGNATURE_HEADER], f"v1={expected.hexdigest()}"
            ):
                state.bad_signatures += 1
                code = 401
            else:
                state.received.append(json.loads(body))
                code = state.answers.pop(0) if state.answers else 200
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b'{"rotated": true}' if code == 200 else b"upstream error")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/functions/v1/rotate-model-endpoint"
    yield state
    server.shutdown()
    server.server_close()


@dataclass
class Recorded:
    """What a plain loopback server (``serve_plain``) was sent."""

    bodies: list[bytes] = field(default_factory=list)


@contextlib.contextmanager
def serve_plain(answer: bytes = b"ok") -> Iterator[tuple[str, Recorded]]:
    """A loopback server that answers every POST with 200 and ``answer`` (Slack's webhook
    answers "ok"); yields its URL and what it received."""
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            recorded.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()
