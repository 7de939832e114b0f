"""Nightly and operations fixtures: the real ``pria-ml`` command in a subprocess, a local HTTP
server that records what it receives, and promtool from Debian's ``prometheus`` package."""

from __future__ import annotations

import contextlib
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


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
            self.wfile.write(b"ok" if status == 200 else b"unavailable")

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


@pytest.fixture
def http_server() -> Iterator[tuple[str, Received]]:
    received = Received()
    with serve(received) as url:
        yield url, received


# promtool comes with Debian's `prometheus` package: downloaded once with apt-get, extracted with
# dpkg -x and cached under the ignored .pria/cache (the way tests/registry installs pgTAP).
PROMTOOL_CACHE = ROOT / ".pria" / "cache" / "promtool"


@pytest.fixture(scope="session")
def promtool() -> Path:
    binary = PROMTOOL_CACHE / "promtool"
    if binary.exists():
        return binary
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.fail(f"promtool is needed: put Debian prometheus' promtool at {binary}")
    PROMTOOL_CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def download() -> subprocess.CompletedProcess:
            return subprocess.run(
                ["apt-get", "download", "prometheus"], cwd=work, capture_output=True, text=True
            )

        result = download()
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, check=False)
            result = download()
        if result.returncode != 0:
            pytest.fail(f"apt-get download prometheus failed: {result.stderr.strip()}")
        (deb,) = work.glob("*.deb")
        subprocess.run(["dpkg", "-x", str(deb), str(work / "x")], check=True)
        staging = Path(tempfile.mkdtemp(dir=PROMTOOL_CACHE.parent))
        shutil.copy2(work / "x" / "usr" / "bin" / "promtool", staging / "promtool")
        if binary.exists():  # another run cached it meanwhile
            shutil.rmtree(staging)
        else:
            os.replace(staging, PROMTOOL_CACHE)
    return binary


@pytest.fixture
def registry_settings(settings, fresh_db):
    """``settings`` on a fresh registry database with every migration applied."""
    from pria_ml.migrate import migrate

    migrate(fresh_db)
    return settings
