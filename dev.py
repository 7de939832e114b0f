#!/usr/bin/env python3
"""Set-up and the two entry points, for a fresh machine with nothing but Python 3.11.

    python3 dev.py demo    # the main job on embedded defaults
    python3 dev.py test    # lint + the whole test suite
    python3 dev.py lock    # re-lock requirements.lock (the image's pins) after pyproject changes
    python3 dev.py check-lock   # the lock installs into a clean venv of the image's Python

Both create ``.venv`` and install pria-ml into it on first use (again only when pyproject.toml or
this file changed). torch is pinned to the CPU build this machine carries; the CUDA Docker image
installs its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
TORCH = "torch==2.13.0"
LOCK = ROOT / "requirements.lock"
# The trainer image (Dockerfile): Ubuntu 24.04's Python on x86-64 Linux.
IMAGE_PYTHON = "3.12"
IMAGE_PLATFORM = "x86_64-manylinux_2_28"


def ensure_env() -> None:
    """Create .venv and install pria-ml[dev] unless the installed set is already current."""
    stamp_file = VENV / ".pria-installed"
    stamp = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + Path(__file__).read_bytes())
    if stamp_file.exists() and stamp_file.read_text() == stamp.hexdigest():
        return
    if not (BIN / "python").exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("installing pria-ml and its dependencies (first run takes a few minutes)", flush=True)
    # -qq: this machine's pip config names an optional local index that may be absent, and pip
    # warns once per package about it; errors still print.
    run([BIN / "python", "-m", "pip", "install", "-qq", TORCH, "-e", f"{ROOT}[dev]"])
    stamp_file.write_text(stamp.hexdigest())


def run(command: list, **kwargs) -> None:
    result = subprocess.run([str(part) for part in command], cwd=ROOT, **kwargs)
    if result.returncode != 0:
        sys.exit(result.returncode)


def offline_env() -> dict[str, str]:
    # Nothing in tests or the demo may reach a model hub; fail loudly instead of downloading.
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def test(args: list[str]) -> None:
    ensure_env()
    run([BIN / "ruff", "check", "."])
    run([BIN / "ruff", "format", "--check", "."])
    # Every core, a whole test file (or a folder sharing trained fixtures) per worker; the
    # scheduling is in tests/conftest.py. `python3 dev.py test -n 0 ...` runs in one process.
    parallel = [] if any(a == "-n" or a.startswith("-n") for a in args) else ["-n", "auto"]
    result = subprocess.run(
        [str(BIN / "python"), "-m", "pytest", *parallel, *args],
        cwd=ROOT,
        env=offline_env(),
    )
    if result.returncode == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        sys.exit(1)
    sys.exit(result.returncode)


def demo(args: list[str]) -> None:
    # The learning loop on simulated weeks (pria-ml demo --help lists the options).
    ensure_env()
    run([BIN / "pria-ml", "demo", *args], env=offline_env())


def lock_inputs(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """What requirements.lock is resolved from: pyproject's run-time dependencies, its build
    requirements (the image builds pria-ml without an index) and the torch pin above."""
    import tomllib

    project = tomllib.loads(pyproject.read_text())
    return [*project["project"]["dependencies"], *project["build-system"]["requires"], TORCH]


def lock_fingerprint(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """sha256 of everything the lock depends on; the lock's header records it, and a test
    fails when pyproject.toml's dependencies change without `python3 dev.py lock`. Other
    edits of pyproject.toml (lint rules, markers) do not change it."""
    import tomllib

    project = tomllib.loads(pyproject.read_text())
    inputs = {
        "requires": lock_inputs(pyproject),
        "requires-python": project["project"]["requires-python"],
        "python": IMAGE_PYTHON,
        "platform": IMAGE_PLATFORM,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()


def lock(args: list[str]) -> None:
    """Resolve lock_inputs() for the image's Python and platform into requirements.lock, every
    file pinned by sha256 (uv pip compile); extra args go to uv, e.g. --upgrade-package X."""
    import tempfile

    uv = _uv()
    with tempfile.TemporaryDirectory() as scratch:
        inputs = Path(scratch) / "requirements.in"
        inputs.write_text("\n".join(lock_inputs()) + "\n")
        output = Path(scratch) / "requirements.lock"
        if LOCK.exists():  # keep unrelated pins: uv only moves what the inputs force
            output.write_text(LOCK.read_text())
        run([
            uv, "pip", "compile", inputs, "--output-file", output, "--quiet",
            "--generate-hashes", "--python-version", IMAGE_PYTHON,
            "--python-platform", IMAGE_PLATFORM, "--custom-compile-command",
            "python3 dev.py lock", *args,
        ])  # fmt: skip
        body = output.read_text().replace(str(inputs), "pyproject.toml")
    LOCK.write_text(f"# inputs sha256: {lock_fingerprint()}\n{body}")
    print(f"wrote {LOCK.name}")


def _uv() -> str:
    import shutil

    uv = shutil.which("uv", path=str(BIN)) or shutil.which("uv")
    if uv is None:
        ensure_env()  # the dev extra brings uv
        uv = str(BIN / "uv")
    return uv


def check_lock(args: list[str]) -> None:
    """The lock installs into a clean venv of the image's Python and platform: every pinned
    file exists on the index with its hash, and the pins are closed under their dependencies.
    Resolved (uv --dry-run), not downloaded: the CUDA wheels alone are gigabytes. Needs the
    package index; about 30 s."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        venv.EnvBuilder().create(scratch)
        run([
            _uv(), "pip", "install", "--dry-run", "--require-hashes", "--python",
            Path(scratch) / "bin" / "python", "--python-version", IMAGE_PYTHON,
            "--python-platform", IMAGE_PLATFORM, "-r", LOCK, *args,
        ])  # fmt: skip
    target = f"Python {IMAGE_PYTHON} on {IMAGE_PLATFORM}"
    print(f"{LOCK.name} resolves, every hash pinned, into a clean venv for {target}")


COMMANDS = {"test": test, "demo": demo, "lock": lock, "check-lock": check_lock}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [args...]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
