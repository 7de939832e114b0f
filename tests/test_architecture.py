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


REGISTRY_TABLES = re.compile(
    r"\bpria\.(model_registry|registry_event|spot_check_verdict|spot_check_ack|gpu_machine_run"
    r"|retention_deletion)\b"
)
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


# Reading the wall clock: only pria_ml/clock.py does; everything else is given the time.
WALL_CLOCK = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("datetime", "today"),
    ("date", "today"),
    ("time", "time"),
    ("time", "time_ns"),
}
SQL_CLOCK = re.compile(
    r"\b(now|clock_timestamp|statement_timestamp|transaction_timestamp)\s*\(\)"
    r"|\b(current_date|current_timestamp|localtimestamp)\b",
    re.IGNORECASE,
)


def _wall_clock_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value
        name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", None)
        if (name, node.func.attr) in WALL_CLOCK:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}.{node.func.attr}()")
    return found


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    """A date taken from the wall clock deep inside the product made a test fail once the
    calendar moved on; the time is a parameter instead (pria_ml/clock.py)."""
    reads = [
        line
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != PACKAGE / "clock.py"
        for line in _wall_clock_reads(path)
    ]
    assert reads == [], "take `now` / `today` as a parameter (pria_ml/clock.py):\n" + "\n".join(
        reads
    )


def test_queries_take_the_time_as_a_parameter() -> None:
    """The SQL that pria-ml runs compares with the time it is given (%(now)s), never the
    database server's clock. Migrations are exempt: their functions stamp p_at, falling back
    on now() only for a caller that passes none."""
    sql = ROOT / "sql"
    reads = []
    for path in sorted(sql.rglob("*.sql")):
        if path.parent.name == "migrations":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("--", 1)[0]
            if SQL_CLOCK.search(code):
                reads.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert reads == [], "pass the time as a query parameter:\n" + "\n".join(reads)
