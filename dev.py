#!/usr/bin/env python3
"""Set-up and the two entry points, for a fresh machine with nothing but Python 3.11.

    python3 dev.py demo    # the main job on embedded defaults
    python3 dev.py test    # lint + the whole test suite

Both create ``.venv`` and install pria-ml into it on first use (again only when pyproject.toml or
this file changed). torch is pinned to the CPU build this machine carries; the CUDA Docker image
installs its own.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
TORCH = "torch==2.13.0"


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
    result = subprocess.run(
        [str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT, env=offline_env()
    )
    if result.returncode == 5:
        print("pytest collected no tests: that is a failure here", file=sys.stderr)
        sys.exit(1)
    sys.exit(result.returncode)


def demo(args: list[str]) -> None:
    # The learning loop on simulated weeks (pria-ml demo --help lists the options).
    ensure_env()
    run([BIN / "pria-ml", "demo", *args], env=offline_env())


COMMANDS = {"test": test, "demo": demo}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: python3 dev.py {{{'|'.join(COMMANDS)}}} [args...]")
    COMMANDS[sys.argv[1]](sys.argv[2:])
