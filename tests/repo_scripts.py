"""The repository's stand-alone scripts as modules, for the tests that check them: ``machine``
(deploy/fly/machine.py, which the train workflow builds the Fly machine with) and ``dev``
(dev.py, which writes requirements.lock). Loaded from their files: neither is part of the
package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


machine = _load("pria_fly_machine", ROOT / "deploy" / "fly" / "machine.py")
dev = _load("pria_dev", ROOT / "dev.py")
