"""Nightly and operations fixtures: the real ``pria-ml`` command in a subprocess, a local HTTP
server that records what it receives, and promtool from Debian's ``prometheus`` package."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from nightly_kit import Received, serve

ROOT = Path(__file__).resolve().parents[2]


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
