"""The Supabase Edge Function that rotates MODEL_ENDPOINT, run by a real Deno.

Deno comes from npm (`npm install deno`, a platform binary in the package; docs/decisions.md),
cached under the ignored .pria/cache/deno. Where neither a `deno` on PATH nor npm with registry
access is available these tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pria_ml.db import Database
from pria_ml.errors import EndpointRotationFailed
from pria_ml.registry import promote, rollback
from pria_ml.rotation import EndpointHook

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = ROOT / "supabase" / "functions" / "rotate-model-endpoint"
CACHE = ROOT / ".pria" / "cache" / "deno"
DENO_VERSION = "2.9.6"
SECRET = "edge-secret"


@pytest.fixture(scope="session")
def deno() -> str:
    found = shutil.which("deno") or str(CACHE / "node_modules" / ".bin" / "deno")
    if not Path(found).exists() and shutil.which("npm"):
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "npm",
                "install",
                "--prefix",
                str(CACHE),
                "--no-audit",
                "--no-fund",
                f"deno@{DENO_VERSION}",
            ],
            capture_output=True,
            timeout=300,
            check=False,
        )
    if not Path(found).exists():
        pytest.skip(f"no deno: install it, or allow `npm install deno@{DENO_VERSION}`")
    return found


def _env() -> dict[str, str]:
    return {**os.environ, "DENO_DIR": str(CACHE / "dir"), "NO_COLOR": "1"}


def test_edge_function_unit_tests(deno: str) -> None:
    result = subprocess.run(
        [deno, "test", "--no-lock", str(FUNCTION)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout


@pytest.fixture
def management_api() -> Iterator[tuple[str, list]]:
    """A stand-in for api.supabase.com's secrets endpoint."""
    received: list = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Authorization"], json.loads(body)))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


@pytest.fixture
def edge_function(deno: str, management_api) -> Iterator[str]:
    api_url, _ = management_api
    env = _env() | {
        "PORT": "0",
        "PRIA_ROTATION_SECRET": SECRET,
        "MODEL_ENDPOINT_TEMPLATE": "https://inference.example.com/adapters/{adapter_id}",
        "SUPABASE_PROJECT_REF": "projref",
        "SUPABASE_ACCESS_TOKEN": "sbp_token",
        "SUPABASE_API_URL": api_url,
    }
    process = subprocess.Popen(
        [deno, "run", "--no-lock", "--allow-net", "--allow-env", str(FUNCTION / "index.ts")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        line = process.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line + process.stdout.read()
        yield f"http://{line.strip().rsplit(' ', 1)[1]}/rotate-model-endpoint"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.real_clock  # the function checks the signed timestamp against its own clock
def test_promote_and_rollback_rotate_through_the_real_function(
    registry_db: Database, candidate, edge_function: str, management_api
) -> None:
    _, received = management_api
    hook = EndpointHook(url=edge_function, secret=SECRET.encode(), attempts=2, backoff_s=0.05)
    a, b = candidate(), candidate()
    assert promote(registry_db, adapter_id=a, hook=hook).rotated
    assert promote(registry_db, adapter_id=b, hook=hook).rotated
    assert rollback(registry_db, hook=hook).rotated
    endpoints = [secrets[0]["value"] for _, _, secrets in received]
    assert endpoints == [
        f"https://inference.example.com/adapters/{a}",
        f"https://inference.example.com/adapters/{b}",
        f"https://inference.example.com/adapters/{a}",
    ]
    assert all(path == "/v1/projects/projref/secrets" for path, _, _ in received)
    assert all(auth == "Bearer sbp_token" for _, auth, _ in received)

    forged = EndpointHook(url=edge_function, secret=b"not-the-secret", attempts=2)
    with pytest.raises(EndpointRotationFailed, match="HTTP 401"):
        promote(registry_db, adapter_id=b, hook=forged)
    assert len(received) == 3
