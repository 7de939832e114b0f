"""The ``pria-ml`` command: a table of contents of the pipeline.

Each command parses its options, builds the settings once, calls one function of one module and
renders the result. Heavy libraries are imported by those functions, not here, so ``--help`` and
``rollback`` start fast.
"""

from __future__ import annotations

import logging
import sys

import typer
from rich.console import Console
from rich.markup import escape

from pria_ml import __version__
from pria_ml.errors import ConfigError, PriaError
from pria_ml.settings import Settings

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="pria-ml",
    help="PRIA's learning loop: extract, build features, train, evaluate, promote, roll back.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Registry database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def load_settings() -> Settings:
    """Settings from the environment and ``.env``; a bad value becomes one clear ConfigError."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"PRIA_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings - {problems}") from None


def _version(value: bool) -> None:
    if value:
        console.print(f"pria-ml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail to stderr."),
) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, markup=False)],
        force=True,
    )


@app.command()
def status() -> None:
    """Show what the settings point at and whether each part is reachable.

    Lists the registry and source databases, object storage and base model. Exits non-zero
    when a required part is down, naming the setting to fix.
    """
    from pria_ml import status as status_mod

    report = status_mod.check(load_settings())
    console.print(status_mod.render(report))
    if report.failure is not None:
        raise report.failure


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations from sql/migrations to the registry database.

    Each file is applied once, in its own transaction, and recorded with its sha256; an
    applied file that was edited since is an error.
    """
    from pria_ml import db, migrate

    database = db.database(load_settings())
    applied = migrate.migrate(database)
    for migration in applied:
        console.print(f"[green]applied[/] {migration.path.name}")
    total = len(migrate.discover())
    console.print(f"{database.describe()}: schema current ({total} migrations, {len(applied)} new)")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one red line and a non-zero exit.

    Usage errors, ``--help`` and exit codes are Click's (standalone mode); only ``PriaError``
    is ours to render. Anything else is a bug and keeps its traceback.
    """
    try:
        app(args=argv)
    except PriaError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(exc.exit_code)
