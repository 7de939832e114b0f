"""The package's shape, checked: layers without cycles, stage modules thin, imports visible.

The contract itself lives in pyproject.toml (``[tool.importlinter]``) and is drawn in
docs/architecture.md; import-linter reads every import statement, at the top of a module or
inside a function, so a forbidden edge cannot hide in a function body.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pria_ml"
# Third-party modules heavy enough to slow `pria-ml --help`; imported inside the functions
# that need them. Everything else, the package's own modules included, sits at the top.
LAZY = {"torch", "transformers", "peft", "pyspark", "lm_eval", "matplotlib", "pyarrow", "numpy"}


def test_layers_contract_holds() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint_imports, "import-linter is a dev dependency: pip install -e '.[dev]'"
    result = subprocess.run(
        [lint_imports, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def _function_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("pria_ml"):
                found.append(f"{path.relative_to(ROOT)}:{inner.lineno} from {inner.module}")
            elif isinstance(inner, ast.Import):
                found += [
                    f"{path.relative_to(ROOT)}:{inner.lineno} import {alias.name}"
                    for alias in inner.names
                    if alias.name.startswith("pria_ml")
                ]
    return found


def test_package_modules_are_imported_at_the_top_of_each_file() -> None:
    hidden = [line for path in sorted(PACKAGE.rglob("*.py")) for line in _function_imports(path)]
    assert hidden == [], "import pria_ml's own modules at the top:\n" + "\n".join(hidden)


def test_cli_starts_without_heavy_libraries() -> None:
    code = (
        f"import sys, pria_ml.cli\nprint(sorted(m for m in {sorted(LAZY)!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr


REGISTRY_TABLES = re.compile(r"\bpria\.(model_registry|registry_event|spot_check_verdict)\b")
# SQL written in a Python string that touches the registry schema
REGISTRY_SQL = re.compile(r"\b(SELECT|FROM|JOIN|INTO|UPDATE)\s+(\*\s+FROM\s+)?pria\.\w+")


def test_only_the_registry_reads_the_registry_tables() -> None:
    """Operations read records through the module that owns them: every query of the registry
    tables is a file under sql/registry/ (or a migration), and only pria_ml/registry.py reads
    those files."""
    sql = ROOT / "sql"
    stray = [
        str(path.relative_to(ROOT))
        for path in sorted(sql.rglob("*.sql"))
        if path.parent.name not in ("registry", "migrations")
        and REGISTRY_TABLES.search(path.read_text())
    ]
    assert stray == [], "move these queries to sql/registry/ behind a registry function"
    readers = [
        f"{path.relative_to(ROOT)}: {line.strip()}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "registry.py"
        for line in path.read_text().splitlines()
        if re.search(r"""read_sql\(f?["']registry/""", line) or REGISTRY_SQL.search(line)
    ]
    assert readers == [], "read the registry through pria_ml.registry"
