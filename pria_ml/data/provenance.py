"""Which code produced an artifact: the package version plus a hash of the source files that
decide what a stage writes. Works wherever pria-ml is installed (a Docker image has no .git), and
changes exactly when that stage's behaviour can change."""

from __future__ import annotations

import ast
import hashlib
from importlib import metadata
from pathlib import Path

from pria_ml import __version__
from pria_ml.db.sqlfiles import sql_dir

_PACKAGE = Path(__file__).resolve().parents[1]


def code_version(
    modules: list[str], sql_globs: tuple[str, ...] = (), distributions: tuple[str, ...] = ()
) -> str:
    """``<version>+<sha256[:12]>`` over ``pria_ml/<module>`` files, ``sql/<glob>`` matches and
    the installed versions of the third-party ``distributions`` whose behaviour the stage uses.

    ``modules`` are paths relative to the package (``"train.py"``, ``"data/privacy.py"``,
    ``"assets/cl100k_base.tiktoken"``).
    """
    digest = hashlib.sha256()
    paths = [_PACKAGE / module for module in modules]
    for pattern in sql_globs:
        paths.extend(sorted(sql_dir().glob(pattern)))
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    for name in distributions:
        digest.update(f"{name}=={metadata.version(name)}".encode())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def package_imports(module: str) -> list[str]:
    """``module`` and every pria_ml module it imports, directly or through those, as paths
    relative to the package (``"data/privacy.py"``), sorted. Imports under
    ``if TYPE_CHECKING:`` are left out: they are for type checkers and change no behaviour."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        tree = ast.parse((_PACKAGE / current).read_text(encoding="utf-8"))
        todo.extend(_imported(tree.body))
    return sorted(seen)


def _imported(body: list[ast.stmt]) -> list[str]:
    """The package modules ``body`` imports, as paths relative to the package."""
    found = []
    for node in body:
        if isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                found += _imported(node.body) + _imported(node.orelse)
            continue
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            found += _imported(node.body)
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # "from pria_ml.data import secrets" names modules; "from pria_ml.errors import X"
            # names a module's contents.
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            path = _module_path(name)
            if path is not None:
                found.append(path)
    return found


def _module_path(name: str) -> str | None:
    """The file of package module ``name`` relative to the package, or None when ``name`` is
    no module of the package (a third-party module, a function, a package's ``__init__``
    that is empty)."""
    parts = name.split(".")
    if parts[0] != "pria_ml" or len(parts) < 2:
        return None
    relative = Path(*parts[1:])
    for candidate in (relative.with_suffix(".py"), relative / "__init__.py"):
        path = _PACKAGE / candidate
        if path.is_file() and path.stat().st_size > 0:
            return candidate.as_posix()
    return None
