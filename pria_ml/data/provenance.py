"""Which code produced an artifact: the package version plus a hash of the source files that
decide what a stage writes. Works wherever pria-ml is installed (a Docker image has no .git), and
changes exactly when that stage's behaviour can change."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pria_ml import __version__
from pria_ml.db.sqlfiles import sql_dir

_PACKAGE = Path(__file__).resolve().parents[1]


def code_version(modules: list[str], sql_globs: tuple[str, ...] = ()) -> str:
    """``<version>+<sha256[:12]>`` over ``pria_ml/<module>`` files and ``sql/<glob>`` matches.

    ``modules`` are paths relative to the package (``"train.py"``, ``"data/privacy.py"``).
    """
    digest = hashlib.sha256()
    paths = [_PACKAGE / module for module in modules]
    for pattern in sql_globs:
        paths.extend(sorted(sql_dir().glob(pattern)))
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"
