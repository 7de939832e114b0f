"""Registry fixtures: a helper that registers candidates on ``registry_db`` (a fresh migrated
database, tests/conftest.py), and pgTAP."""

from __future__ import annotations

import datetime
import hashlib
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hookkit import Hook, serve_hook

from pria_ml.db import Database
from pria_ml.registry import record_gate_decision, register_candidate

Register = Callable[..., uuid.UUID]


@pytest.fixture
def hook_server() -> Iterator[Hook]:
    """A stand-in Edge Function on loopback (hookkit.py) that verifies signatures."""
    with serve_hook() as hook:
        yield hook


@pytest.fixture
def candidate(registry_db: Database) -> Register:
    """Register a candidate (gated as passing unless ``gate=None`` / ``gate=False``)."""
    counter = iter(range(1, 10_000))

    def make(
        day: datetime.date | None = None, *, gate: bool | None = True, **metrics: float
    ) -> uuid.UUID:
        n = next(counter)
        day = day or datetime.date(2026, 11, n % 28 + 1)
        uri = f"file:///adapters/{day.isoformat()}-{n}.safetensors"
        adapter_id = register_candidate(
            registry_db,
            dataset_date=day,
            artifact_uri=uri,
            artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
            base_model="tiny-mistral",
            metrics={"train_loss": 0.5, **metrics},
        )
        if gate is not None:
            record_gate_decision(
                registry_db,
                adapter_id,
                passed=gate,
                reason="all gate metrics within limits" if gate else "accuracy_delta 0.1 <= 0.5",
                metrics={"accuracy_delta": 1.0 if gate else 0.1, "safety_flags": 0},
            )
        return adapter_id

    return make


# pgTAP is pure SQL (docs/decisions.md): Debian's package is downloaded once with apt-get,
# extracted, cached under the ignored .pria/cache/pgtap, and copied into the embedded server's
# extension directory. `apt-get update` runs only when the download fails (a fresh CI image).
# Any of these carries the same pure-SQL extension (Debian 12 has 15, Ubuntu 24.04 has 16).
PGTAP_PACKAGES = ("postgresql-15-pgtap", "postgresql-16-pgtap", "postgresql-17-pgtap")
PGTAP_CACHE = Path(__file__).resolve().parents[2] / ".pria" / "cache" / "pgtap"


def _extension_dir() -> Path:
    import pgserver

    return Path(pgserver.__file__).parent / "pginstall" / "share" / "postgresql" / "extension"


def _download_pgtap(into: Path) -> None:
    """Extract the pgtap extension files of the Debian package into ``into``."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        pytest.fail(
            f"pgTAP is needed and apt-get/dpkg are missing: put the pgtap extension files of "
            f"{PGTAP_PACKAGES[0]} into {into}"
        )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def download() -> subprocess.CompletedProcess:
            for package in PGTAP_PACKAGES:
                result = subprocess.run(
                    ["apt-get", "download", package],
                    cwd=work,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if result.returncode == 0:
                    break
            return result

        result = download()
        if result.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, check=False)
            result = download()
        if result.returncode != 0:
            pytest.fail(f"apt-get download of {PGTAP_PACKAGES} failed: {result.stderr.strip()}")
        (deb,) = work.glob("*.deb")
        subprocess.run(["dpkg", "-x", str(deb), str(work / "x")], check=True)
        (source,) = (work / "x").glob("usr/share/postgresql/*/extension")
        staging = Path(tempfile.mkdtemp(dir=into.parent))
        for path in source.glob("pgtap*"):
            shutil.copy2(path, staging / path.name)
        if into.exists():  # another run cached it meanwhile
            shutil.rmtree(staging)
        else:
            os.replace(staging, into)


@pytest.fixture(scope="session")
def pgtap_installed() -> None:
    """pgTAP available to CREATE EXTENSION on the embedded server (installed on first use)."""
    target = _extension_dir()
    if (target / "pgtap.control").exists():
        return
    if not (PGTAP_CACHE / "pgtap.control").exists():
        PGTAP_CACHE.parent.mkdir(parents=True, exist_ok=True)
        _download_pgtap(PGTAP_CACHE)
    for path in PGTAP_CACHE.glob("pgtap*"):
        # Copy then rename, so a concurrent test run never sees a half-written file.
        partial = target / f".{path.name}.{os.getpid()}"
        shutil.copy2(path, partial)
        os.replace(partial, target / path.name)
