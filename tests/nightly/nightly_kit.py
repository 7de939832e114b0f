"""What the nightly tests share besides fixtures: the real ``pria-ml`` command in a subprocess
and a local HTTP server that records what it receives (imported by name, so this module's name
must be unique across the test folders)."""

from __future__ import annotations

import contextlib
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env.update({"PRIA_HOME": str(home), "PRIA_PII_KEY": "nightly-pii-key", "COLUMNS": "200"})
    env.update(extra)
    return env


def pria_ml(home: Path, *args: str, expect: int | None = 0, **env: str):
    """Run ``pria-ml ARGS`` with PRIA_HOME=home; check the exit code unless ``expect`` is None."""
    result = subprocess.run(
        [sys.executable, "-m", "pria_ml", *args],
        capture_output=True,
        text=True,
        env=cli_env(home, **env),
        cwd=home.parent,
        timeout=600,
    )
    if expect is not None:
        assert result.returncode == expect, (
            f"pria-ml {' '.join(args)} exited {result.returncode}, expected {expect}:\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return result


@dataclass
class Received:
    """What the local HTTP server was sent, and what it answers next."""

    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    body: bytes = b"ok"  # what a 200 answer carries (the rotation hook's JSON, say)


@contextlib.contextmanager
def serve(received: Received) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that records every request into ``received`` and
    answers with its scripted statuses; yields its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            received.requests.append((self.command, self.path, self.rfile.read(length)))
            status = received.statuses.pop(0) if received.statuses else 200
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(received.body if status == 200 else b"unavailable")

        do_POST = do_PUT = do_GET = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
