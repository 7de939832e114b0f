"""The ``pria-ml`` command: a table of contents of the pipeline.

Each command parses its options, builds the settings once, calls one function of one module and
prints what that module's render function makes of the result. Heavy libraries are imported by
those functions, not here, so ``--help`` and ``rollback`` start fast.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from pria_ml import __version__, clock, db, evaluate, features, gate, registry
from pria_ml import extract as extract_mod
from pria_ml import train as train_mod
from pria_ml.db import migrate
from pria_ml.errors import ConfigError, GateBlocked, PriaError
from pria_ml.model import tiny as tinymodel
from pria_ml.noise import drop_known_log_records
from pria_ml.operations import nightly as nightly_mod
from pria_ml.operations import objectives as objectives_mod
from pria_ml.operations import prompts, render, transitions
from pria_ml.operations import retention as retention_mod
from pria_ml.operations import status as status_mod
from pria_ml.quality import spotcheck
from pria_ml.settings import Settings
from pria_ml.simulation import demo as demo_mod
from pria_ml.simulation import report as report_mod
from pria_ml.simulation import simulate as simulate_mod
from pria_ml.train import PROFILES, TrainConfig, option_flag
from pria_ml.training import cost as cost_mod
from pria_ml.training import progress
from pria_ml.world import seed as seed_mod

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="pria-ml",
    help="PRIA's learning loop: extract, build features, train, evaluate, promote, roll back.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Registry database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
model_app = typer.Typer(help="Base models: the tiny local one.", no_args_is_help=True)
app.add_typer(model_app, name="model")


def _iso_date(value: str | dt.date) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(value)


def _date_option(flag: str, help: str) -> typer.models.OptionInfo:
    return typer.Option(None, flag, parser=_iso_date, metavar="YYYY-MM-DD", help=help)


# The dataset date D, as every stage command takes it.
DateOption = Annotated[
    dt.date,
    typer.Option("--date", parser=_iso_date, metavar="YYYY-MM-DD", help="Dataset date D."),
]


def load_settings(*, production_check: bool = True) -> Settings:
    """Settings from the environment and ``.env``; a bad value becomes one clear ConfigError.

    In production mode a setting production needs but that is unset is a ConfigError naming
    every such setting, before the command does any work (``status`` reports them instead).
    """
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"PRIA_{'__'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid settings - {problems}") from None
    missing = settings.missing_for_production()
    if production_check and missing:
        raise ConfigError(
            f"production mode needs {', '.join(missing)}: set them (docs/deploy.md, Secrets), "
            "or set PRIA_MODE=local to run on the embedded defaults; nothing was done"
        )
    return settings


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
    # Every command, before any library loads: some log their harmless lines while importing.
    drop_known_log_records()


@app.command()
def status() -> None:
    """Show what the settings point at and whether each part is reachable.

    Lists the mode (local or production) and, in production, every setting that is missing;
    the registry and source databases, object storage and base model. Exits non-zero when a
    required part is down or a production setting is missing, naming the setting to fix.
    """

    report = status_mod.check(load_settings(production_check=False))
    console.print(render.status(report))
    if report.failure is not None:
        raise report.failure


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations from sql/migrations to the registry database.

    Each file is applied once, in its own transaction, and recorded with its sha256; an
    applied file that was edited since is an error.
    """

    database = db.database(load_settings())
    applied = migrate.migrate(database)
    for migration in applied:
        console.print(f"[green]applied[/] {migration.path.name}")
    total = len(migrate.discover())
    console.print(f"{database.describe()}: schema current ({total} migrations, {len(applied)} new)")


@app.command()
def seed(
    rows: int = typer.Option(5000, "--rows", help="Expenses (= traces = events) to create."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same database."),
    end_date: dt.date | None = _date_option(
        "--end-date", "Last day of data (default: today, UTC)."
    ),
    days: int = typer.Option(365, "--days", help="Days of history ending on --end-date."),
    replace: bool = typer.Option(False, "--replace", help="Empty the source tables first."),
) -> None:
    """Fill the source database with synthetic PRIA expenses, agent traces and events.

    Creates the source tables (sql/source/schema.sql) if needed and bulk-loads them by COPY:
    realistic expense text, conversations ending in the agent's action, learnable human
    overrides and planted PII. Deterministic by --seed. Refuses non-empty tables unless
    --replace.
    """
    last = clock.today(end_date)
    report = seed_mod.seed(
        load_settings(), rows=rows, seed=seed, end_date=last, days=days, replace=replace
    )
    console.print(render.seeded(report))


@app.command()
def simulate(
    days: int = typer.Option(7, "--days", min=1, help="Simulated days of traffic."),
    rows_per_day: int = typer.Option(
        40, "--rows-per-day", min=1, help="Expenses (= conversations = reviews) per day."
    ),
    start_date: dt.date | None = _date_option(
        "--start-date", "First simulated day (default: today)."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed and prod, same rows."),
    reviewer_noise: float = typer.Option(
        0.02, "--reviewer-noise", min=0.0, max=0.99, help="Share of reviews that err."
    ),
) -> None:
    """Simulate production traffic served by the adapter in prod (or the bare base).

    Per day: new expenses and conversations from the seeder's generator, the action proposed by
    base + prod adapter (batched greedy generation), a simulated reviewer who overrides wrong
    actions, and the rows written to the source tables as the product writes them - so the
    override rate in workflow_event reflects the adapter in prod.
    """
    first = clock.today(start_date)
    with progress.bar(console, "simulated days", days) as advance:
        results = simulate_mod.run(
            load_settings(),
            first_day=first,
            days=days,
            rows_per_day=rows_per_day,
            seed=seed,
            reviewer_noise=reviewer_noise,
            progress=lambda day: advance(
                (day.day - first).days + 1, f"{day.day}: {day.override_rate:.1%} overridden"
            ),
        )
    console.print(simulate_mod.render(results))


@app.command()
def extract(
    date: DateOption,
    force: bool = typer.Option(False, "--force", help="Redo a date that is already extracted."),
) -> None:
    """Extract datasets/D/raw.parquet from the source database, PII removed.

    Applies the retention windows (workflow_event 365 days, expense 180, agent_trace 90, ending
    on D) in one read-only transaction, streams rows in batches, drops workspace_id and user
    identifier fields, replaces PII with keyed tokens (PRIA_PII_KEY), quarantines bad rows with
    a reason, and writes raw.parquet, quarantine.parquet and manifest.json (last). A date
    already extracted is left alone unless --force.
    """

    result = extract_mod.run(load_settings(), date, force=force)
    console.print(render.extracted(result), soft_wrap=True)


@app.command("build-features")
def build_features(
    date: DateOption,
    seed: int = typer.Option(0, "--seed", help="Seed of the minority up-sampling."),
    max_tokens: int = typer.Option(
        4096, "--max-tokens", help="Drop examples with more prompt + completion tiktoken tokens."
    ),
    encoding_file: str | None = typer.Option(
        None, "--encoding-file", help="cl100k_base.tiktoken ranks file (default: shipped)."
    ),
) -> None:
    """Build train / val / test examples from datasets/D/raw.parquet with PySpark.

    Chat-format prompt / completion examples (completion = corrected_output when overridden),
    tiktoken token counts, reward = 1 - override_flag, the minority reward class up-sampled in
    train only (at most 3x), and an 80 / 10 / 10 split by record_date with no trace or prompt
    in two splits. Writes datasets/D/features/{train,val,test}.parquet and manifest.json (last).
    """

    result = features.build(
        load_settings(),
        date,
        seed=seed,
        max_tokens=max_tokens,
        encoding_file=encoding_file,
    )
    console.print(render.features_built(result), soft_wrap=True)


def _with_train_config_options(command):
    """Give ``command`` one option per ``TrainConfig`` field: flag, type and help from the
    field, default None (= the profile's value, shown for both profiles)."""
    import inspect
    import typing
    from dataclasses import fields

    signature = inspect.signature(command)
    hints = typing.get_type_hints(command, include_extras=True)  # Annotated options resolved
    kept = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.kind is not p.VAR_KEYWORD
    ]
    for f in fields(TrainConfig):
        kind = str if isinstance(f.default, tuple) else type(f.default)
        shown = {
            name: ",".join(v) if isinstance(v, tuple) else v
            for name, v in ((n, getattr(c, f.name)) for n, c in PROFILES.items())
        }
        defaults = ", ".join(f"{name} {value}" for name, value in shown.items())
        flag = option_flag(f.name)
        flags = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        option = typer.Option(None, *flags, help=f"{f.metadata['help']} [profile: {defaults}]")
        kept.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                              annotation=kind | None)
        )  # fmt: skip
    command.__signature__ = signature.replace(parameters=kept)
    return command


@app.command()
@_with_train_config_options
def train(
    date: DateOption,
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the plan, memory, cost and accelerate command; train nothing.",
    ),
    profile: str = typer.Option(
        "spec", "--profile", help="Defaults: 'spec' (production) or 'demo' (tiny model, lr 1e-3)."
    ),
    retrain: bool = typer.Option(
        False,
        "--retrain",
        help="--date is trained already: train a new attempt beside the old one "
        "(adapters/D.a2.safetensors, ...), which eval, gate and the nightly then use.",
    ),
    **overrides: object,
) -> None:
    """Fine-tune a QLoRA adapter on the train split of --date and register it as a candidate.

    Loads PRIA_BASE_MODEL in 4-bit (a tiny local model when unset), trains a LoRA adapter on
    completion tokens with packed examples, resumes from the last checkpoint of an interrupted
    run, refuses a run that does not fit the tier's GPU or the nightly budget, uploads
    adapters/D.safetensors and its config and writes a candidate row to model_registry. A date
    that has an adapter is refused unless --retrain: then the new attempt is written beside the
    old one (both immutable, both registered). The training options are TrainConfig's fields;
    options left out take the profile's value.
    """

    config = train_mod.config_for(profile, **overrides)
    settings = load_settings()
    if dry_run:
        plan = train_mod.plan(settings, date, config, profile=profile)
        console.print_json(data={**plan.summary(), "config": plan.config.__dict__})
        console.print(plan.line(), soft_wrap=True, markup=False)
        console.print(plan.accelerate_command(), soft_wrap=True, markup=False)
        return
    result = train_mod.run(settings, date, config, profile=profile, retrain=retrain)
    if result.adapter_id is None:  # a non-main process of accelerate launch: main reports
        return
    # soft_wrap: one line, however long the URI: logs and grep see all of it
    console.print(render.trained(result), soft_wrap=True)


@app.command("eval")
def eval_(
    date: DateOption,
    adapter: str | None = typer.Option(
        None, "--adapter", help="Adapter id to evaluate (default: the candidate of --date)."
    ),
) -> None:
    """Measure the candidate of --date against prod (or the bare base); the gate decides later.

    Greedy, batched generation on the val and test splits for both models; exact match,
    ROUGE-L, mean reward, override rate with paired 95% intervals; safety scores; paired p95
    latency; lm-eval benchmarks. Writes evals/D/ADAPTER_ID/samples.parquet and report.json (the
    evaluation record) and stores the record in the registry. Then run `pria-ml gate`.
    """

    result = evaluate.run(load_settings(), date, adapter)
    console.print(evaluate.render(result))
    console.print(f"report: {escape(result.report_uri)}", soft_wrap=True)


@app.command("gate")
def gate_(date: DateOption) -> None:
    """Decide whether the evaluated candidate of --date may be promoted (spec section 6).

    Judges the evaluation record with the promotion rule: accuracy_delta > 0.5 pp,
    override_delta < -1 pp, safety_flag_pct < 0.1 %, latency_delta < 5 %, no critical benchmark
    losing more than 1 pp. Records every clause, value and threshold in the registry. Exits 11
    when the gate blocks the candidate.
    """

    result = gate.run(load_settings(), date)
    console.print(result.decision.render())
    if not result.decision.passed:
        raise GateBlocked(f"gate blocked {result.adapter_id}: {'; '.join(result.decision.failed)}")


@model_app.command("build-tiny")
def model_build_tiny(
    pretrain_steps: int | None = typer.Option(
        None,
        "--pretrain-steps",
        min=0,
        help="Pre-training steps on the seeded agent's conversations "
        "(default PRIA_TINY_PRETRAIN_STEPS, else 220; 0 = random init).",
    ),
) -> None:
    """Build the tiny Mistral-architecture base model and tokenizer under PRIA_HOME/models.

    A byte-level BPE tokenizer trained on synthetic expense conversations, a chat template with
    system / user / tool / assistant turns, and weights pre-trained briefly on conversations
    that end in the seeded agent's own actions, mistakes included, so the bare base behaves
    like PRIA's agent before any adapter. Nothing is downloaded. Training builds it on first use
    when PRIA_BASE_MODEL is unset.
    """

    settings = load_settings()
    if pretrain_steps is None:
        pretrain_steps = settings.tiny_pretrain_steps or tinymodel.PRETRAIN_STEPS
    steps = pretrain_steps
    with progress.bar(console, "pre-training the tiny base", max(steps, 1)) as advance:
        directory = tinymodel.build(
            settings.tiny_model_dir,
            pretrain_steps=steps,
            progress=lambda step, _total, loss: advance(step, f"loss {loss:.3f}"),
        )
    recipe = tinymodel.built_recipe(directory) or {}
    seconds = (recipe.get("pretraining") or {}).get("seconds")
    took = f", pre-trained {steps} steps in {seconds} s" if seconds is not None else ""
    console.print(f"[green]built[/] {escape(str(directory))}{took}")


@app.command()
def promote(
    adapter_id: str | None = typer.Argument(None, help="Adapter to promote (a UUID)."),
    date: dt.date | None = _date_option("--date", "Promote the gated candidate of this date."),
    force: bool = typer.Option(False, "--force", help="Promote without a passing gate."),
    reason: str | None = typer.Option(None, "--reason", help="Why (required with --force)."),
) -> None:
    """Make an adapter prod: the given id, or the gated candidate of --date.

    One transaction: the current prod is superseded, an event is recorded, the endpoint hook
    is notified. A candidate that failed or never went through the gate is refused unless
    --force --reason "..." (recorded). Promoting the current prod again changes nothing.
    """

    transition = transitions.promote(
        load_settings(),
        adapter_id=adapter_id,
        dataset_date=date,
        force=force,
        reason=reason,
    )
    console.print(render.transition(transition))


@app.command()
def rollback(
    to: str | None = typer.Option(
        None, "--to", help="A former prod adapter to return to (archived ones too)."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why, for the event log."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show the target and why; change nothing."
    ),
) -> None:
    """Bring back the adapter that was prod before the current one was promoted.

    Each rollback walks one promotion further back through the prod history (--to ID reaches
    any former prod, archived or not, while its files exist). One transaction, recorded; the
    endpoint hook must acknowledge the new version, and #ml-ops hears the outcome. Running it
    again after a failed rotation retries the rotation. Refused without
    PRIA_ENDPOINT_ROTATION_URL against a real database. The gate is not asked again.
    """

    settings = load_settings()
    if dry_run:
        console.print(render.rollback_plan(transitions.plan_rollback(settings, to=to)))
        return
    transition = transitions.rollback(settings, to=to, reason=reason)
    console.print(render.transition(transition))


@app.command()
def history(
    limit: int = typer.Option(30, "--limit", min=1, help="How many adapters and events."),
) -> None:
    """Show the registry: the prod adapter, every adapter's state, the newest events.

    States: prod, candidate, superseded (a former prod, archived 7 days later), archived.
    """

    database = db.database(load_settings())
    console.print(
        render.history(
            registry.current_prod(database),
            registry.adapters(database, limit=limit),
            registry.history(database, limit=limit),
        )
    )


spot_check_app = typer.Typer(
    help="Weekly human spot-check of live traffic the prod adapter served (spec section 6.4): "
    "draw a week's sample, record QA's verdicts, acknowledge a bad week.",
    no_args_is_help=True,
)
app.add_typer(spot_check_app, name="spot-check")


@spot_check_app.command("draw")
def spot_check_draw(
    week: str | None = typer.Option(
        None, "--week", help="ISO week, YYYY-Www (default: last week, UTC)."
    ),
    out: str = typer.Option(".", "--out", help="Local folder for the review sheet."),
) -> None:
    """Sample 25 conversations the prod adapter served in --week into a review sheet.

    Which adapter served when comes from the registry's prod changes; the conversations from
    the source's agent_trace and workflow_event, scrubbed of user identifiers and PII (needs
    PRIA_PII_KEY). The same week always gives the same sample. Writes
    spot-checks/WEEK/sheet.csv and .html to storage and spot-check-WEEK.csv / .html to --out:
    QA fills the CSV's verdict column (ok / wrong / unsafe), then runs
    `pria-ml spot-check record FILE`.
    """
    from pathlib import Path

    chosen = week or spotcheck.last_week()
    sheet = spotcheck.draw(load_settings(), week=chosen, out_dir=Path(out))
    served = ", ".join(f"{n} by {adapter}" for adapter, n in sheet.adapters.items())
    console.print(
        f"[green]{sheet.samples} conversations[/] of {sheet.week} ({served}): read "
        f"{escape(str(sheet.html_path))}, fill {escape(str(sheet.csv_path))}; stored at "
        f"{escape(sheet.stored[0])}",
        soft_wrap=True,
    )


@spot_check_app.command("record")
def spot_check_record(
    file: str = typer.Argument(..., help="The filled review sheet (CSV)."),
    reviewer: str | None = typer.Option(None, "--reviewer", help="Who reviewed (default: you)."),
) -> None:
    """Store the verdicts of a filled review sheet; they show in `pria-ml history`.

    A week with more than PRIA_SPOT_CHECK_MAX_FAILURE_SHARE (20 %) wrong or unsafe verdicts
    blocks every promotion at the gate until `pria-ml spot-check ack` acknowledges it.
    """
    from pathlib import Path

    recorded = spotcheck.record(load_settings(), Path(file), reviewer=reviewer)
    console.print(render.spot_check_recorded(recorded))


@spot_check_app.command("ack")
def spot_check_ack(
    week: str = typer.Option(..., "--week", help="The ISO week to acknowledge, YYYY-Www."),
    by: str = typer.Option(..., "--by", help="Who looked at the failures (recorded)."),
    reason: str | None = typer.Option(None, "--reason", help="What was found or done."),
) -> None:
    """Acknowledge a spot-check week's failures, so the gate lets promotions through again.

    Recorded once per week with who and when (and a spot_check_ack event in
    `pria-ml history`); acknowledging it again changes nothing.
    """
    acknowledged, already = spotcheck.acknowledge(load_settings(), week, by=by, reason=reason)
    console.print(render.spot_check_acknowledged(acknowledged, already=already))


@app.command()
def archive(
    older_than_days: float = typer.Option(
        7.0, "--older-than-days", min=0, help="Archive former prods superseded this long ago."
    ),
) -> None:
    """Archive former prod adapters superseded more than 7 days ago (spec section 7).

    One transaction, one event per archived adapter; archived adapters are never promoted.
    """
    from datetime import timedelta

    archived = registry.archive(
        db.database(load_settings()), older_than=timedelta(days=older_than_days)
    )
    for adapter_id in archived:
        console.print(f"[green]archived[/] {adapter_id}")
    console.print(f"{len(archived)} adapters archived")


@app.command("retention")
def retention_(
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would go; delete nothing."),
) -> None:
    """Delete stored files past the spec's retention window for the data they hold.

    Datasets, evaluation samples, spot-check sheets and adapters that were never prod are
    deleted once their data date is older than the strictest window of their sources
    (agent_trace: 90 days); prod and rollback targets are never deleted. Every deletion is
    recorded in the registry first. The nightly runs this as its last stage.
    """
    report = retention_mod.run(load_settings(), dry_run=dry_run)
    console.print(retention_mod.render(report), soft_wrap=True)


@app.command()
@_with_train_config_options
def nightly(
    date: DateOption,
    from_stage: str = typer.Option(
        "extract", "--from", help="First stage: extract, build-features, train, eval, gate, ..."
    ),
    until: str = typer.Option("retention", "--until", help="Last stage to run."),
    force: bool = typer.Option(False, "--force", help="Redo the --from stage even if complete."),
    profile: str = typer.Option(
        "spec", "--profile", help="Training defaults: 'spec' (production) or 'demo' (tiny model)."
    ),
    **overrides: object,
) -> None:
    """Run the night of --date: extract, build-features, train, eval, gate, promote, archive,
    retention.

    Stages whose output for D is complete (manifest present, files matching its sha256) are
    skipped, so running it again resumes a night that failed or was killed. Holds a lock per
    date in the registry database: a second run for the date exits 12 and names the holder.
    Ends with a table of every stage. Exit 0 finished, 11 gate blocked, 12 locked, otherwise
    the failed stage's exit code. The training options are `pria-ml train`'s.
    """

    selection = nightly_mod.Selection(first=from_stage, last=until, force=force)
    config = train_mod.config_for(profile, **overrides)
    report = nightly_mod.run(load_settings(), date, selection=selection, train_config=config)
    console.print(nightly_mod.render(report))
    if report.error is not None:
        raise report.error
    if report.blocked:
        raise GateBlocked(f"the gate blocked the candidate of {report.date}; prod is unchanged")


@app.command()
def cost(
    as_of: dt.date | None = _date_option("--as-of", "Last night of the window (default today)."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Training spend per night and over the rolling 30 days, against the budgets.

    Read from the runs recorded in model_registry; the 30-day total is compared with
    PRIA_COST_ALERT_USD_30D (the Prometheus cost alert), each night with PRIA_NIGHTLY_BUDGET_USD.
    """

    report = cost_mod.spend(load_settings(), as_of=as_of)
    if json_output:
        console.print_json(data=report.as_dict())
    else:
        console.print(cost_mod.render_spend(report))


@app.command()
def objectives(
    weeks: int = typer.Option(8, "--weeks", min=1, help="ISO weeks to show, newest last."),
    as_of: datetime | None = typer.Option(
        None,
        "--as-of",
        formats=["%Y-%m-%d"],
        help="A day of the newest week (default: the newest recorded action's day).",
    ),
    json_output: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """The spec's success metrics per ISO week, against their targets.

    Production override rate from workflow_event and its week-over-week change (target: 2 pp
    lower each week), the p95 latency delta of each adapter promoted that week (target: at most
    +5 %), and nightly training cost (target: under $150 a night).
    """

    report = objectives_mod.report(
        load_settings(), weeks=weeks, today=as_of.date() if as_of else None
    )
    if json_output:
        console.print_json(data=report.as_dict())
    else:
        console.print(objectives_mod.render(report))


@app.command()
def prompt(
    name: str = typer.Argument(..., help="ML1-SQL-GEN, ML1-TRAIN-CMD, ML1-EVAL-PROMPT, ..."),
    var: list[str] = typer.Option(
        [], "--var", help="k=v: fill or override one template variable (repeatable)."
    ),
) -> None:
    """Render a prompt block of spec section 9, filled with this project's real context.

    ML1-SQL-GEN (source schema, retention windows, extraction queries), ML1-TRAIN-CMD (the
    TrainConfig and its accelerate command), ML1-EVAL-PROMPT (the benchmark task format),
    ML1-REGISTRY-TEST (the registry functions). --var k=v sets a template variable.
    """

    text = prompts.render(load_settings(), name, prompts.parse_vars(var))
    console.print(text, markup=False, soft_wrap=True, highlight=False)


@app.command()
def report(
    output: str | None = typer.Option(
        None, "--output", help="HTML file to write (default PRIA_HOME/reports/report-TIME.html)."
    ),
    since: dt.date | None = _date_option(
        "--since", "First day of override rates (default: 120 days before the newest event)."
    ),
) -> None:
    """Write one self-contained HTML report: override rate per week against the 2 pp/week
    target, candidates' accuracy vs baseline, latency, cost, gate decisions, registry timeline.

    Built from workflow_event and the model registry only, so it works for a real deployment.
    """
    from pathlib import Path

    result = report_mod.build(
        load_settings(),
        output=Path(output) if output else None,
        since=since,
    )
    empty = [name for name, points in result.plots.items() if not points]
    if empty:
        console.print(f"[yellow]no data yet for: {', '.join(empty)}[/]")
    console.print(f"[green]report[/] {escape(str(result.path))}")


@app.command()
def demo(
    weeks: int = typer.Option(4, "--weeks", min=2, help="Simulated weeks (each ends in a night)."),
    rows_per_day: int = typer.Option(
        30, "--rows-per-day", min=5, help="Conversations per simulated day."
    ),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same outcomes."),
    drift: bool = typer.Option(
        False, "--drift", help="A drifting world: new merchants weekly, a policy change."
    ),
    vertical: bool = typer.Option(
        False, "--vertical-in-prompt", help="With --drift: the tenant's vertical in the prompt."
    ),
) -> None:
    """Run the learning loop end to end on simulated weeks, on this machine.

    Seeded history, then per week: simulated production traffic served by the adapter in prod,
    the nightly chain (extract, features, train, eval, gate, promote), a table of the night. A
    planted labelling incident the gate must block, a rollback drill, and an HTML report under
    PRIA_HOME/reports whose path is printed at the end. Works in PRIA_HOME/demo (.pria/demo by
    default, emptied first) with its own embedded database and storage; about 7 minutes on 2
    cores. Time is compressed; the code paths are production's.
    """

    # The demo works on embedded parts of its own home, never on production's: no check.
    result = demo_mod.run(
        load_settings(production_check=False),
        weeks=weeks,
        rows_per_day=rows_per_day,
        seed=seed,
        console=console,
        drift=drift,
        vertical_in_prompt=vertical,
    )
    console.print(demo_mod.render(result))
    console.print(f"[green]demo finished[/] in {result.seconds / 60:.1f} min")
    console.print(f"report: {escape(str(result.report_path))}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors become one red line and a non-zero exit.

    Usage errors, ``--help`` and exit codes are Click's (standalone mode); only ``PriaError``
    is ours to render. Anything else is a bug and keeps its traceback.
    """
    try:
        app(args=argv)
    except PriaError as exc:
        # soft_wrap: one line however long, so logs and grep see the whole message and URI.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
        sys.exit(exc.exit_code)
