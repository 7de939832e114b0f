"""Prompt blocks of spec section 9, rendered with this project's real context.

``pria-ml prompt NAME [--var k=v]`` fills ``pria_ml/templates/<NAME>.md`` (Jinja2, shipped as
package data) with context read from the code that runs the pipeline: the source schema and
retention windows for ML1-SQL-GEN, the current TrainConfig and the command pria-ml builds for
ML1-TRAIN-CMD, the benchmark item format for ML1-EVAL-PROMPT, and the registry functions for
ML1-REGISTRY-TEST. ``--var`` sets a template variable (overriding the context); a variable the
template needs and nobody set is an error naming it.
"""

from __future__ import annotations

import datetime as dt
import importlib.resources
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pria_ml import clock
from pria_ml.db.sqlfiles import read_sql, sql_dir
from pria_ml.errors import ConfigError
from pria_ml.extract import KNOWN_ROLES, Retention, source_queries
from pria_ml.train import PROFILES, launch_command
from pria_ml.world.seed import action

if TYPE_CHECKING:
    from pria_ml.settings import Settings

# Variables each block needs from the user (no default context can know them).
REQUIRED = {
    "ML1-SQL-GEN": ("slice",),
    "ML1-TRAIN-CMD": (),
    "ML1-EVAL-PROMPT": ("task",),
    "ML1-REGISTRY-TEST": ("change",),
}


def names() -> list[str]:
    return sorted(_CONTEXT)


def parse_vars(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` as a dict; ConfigError for an item without ``=`` or with an empty key."""
    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--var {pair!r} is not k=v (e.g. --var lr=1e-4)")
        parsed[key.strip()] = value
    return parsed


def render(settings: Settings, name: str, variables: dict[str, str] | None = None) -> str:
    """The prompt block ``name`` filled with its context and ``variables``.

    Raises ConfigError for an unknown block, or a variable the template uses that neither the
    context nor ``variables`` provides (naming it and the ``--var`` that sets it).
    """
    import jinja2

    if name not in _CONTEXT:
        raise ConfigError(f"unknown prompt block {name!r}; known: {', '.join(names())}")
    variables = dict(variables or {})
    missing = [var for var in REQUIRED[name] if not variables.get(var, "").strip()]
    if missing:
        shown = " ".join(f"--var {var}=..." for var in missing)
        raise ConfigError(f"prompt block {name} needs {', '.join(missing)}: pass {shown}")
    context = {**_CONTEXT[name](settings, variables), **variables}
    source = (importlib.resources.files("pria_ml") / "templates" / f"{name}.md").read_text()
    environment = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    try:
        return environment.from_string(source).render(context)
    except jinja2.UndefinedError as exc:
        variable = re.search(r"'(\w+)' is undefined", str(exc))
        hint = f" (pass --var {variable.group(1)}=...)" if variable else ""
        raise ConfigError(f"prompt block {name}: {exc}{hint}") from None


def _date(variables: dict[str, str]) -> dt.date:
    text = variables.get("date")
    if text is None:
        return clock.today() - dt.timedelta(days=1)  # last night's dataset date
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--var date={text!r} is not a date (YYYY-MM-DD)") from None


def _sql_gen(settings: Settings, variables: dict[str, str]) -> dict[str, Any]:

    date = _date(variables)
    return {
        "date": date.isoformat(),
        "retention": Retention(date).describe(),
        "schema": read_sql("source/schema.sql").strip(),
        "queries": source_queries(),
    }


def _train_cmd(settings: Settings, variables: dict[str, str]) -> dict[str, Any]:
    from dataclasses import asdict, replace

    profile = variables.get("profile", "spec")
    if profile not in PROFILES:
        raise ConfigError(f"--var profile={profile!r} is not one of {sorted(PROFILES)}")
    config = PROFILES[profile]
    try:
        config = replace(
            config,
            learning_rate=float(variables.get("lr", config.learning_rate)),
            num_train_epochs=float(variables.get("ep", config.num_train_epochs)),
        )
    except ValueError as exc:
        raise ConfigError(f"--var lr / ep must be numbers: {exc}") from None
    model = variables.get("model") or settings.base_model or "mistralai/Mistral-7B-Instruct-v0.3"
    date = _date(variables)
    return {
        "model": model,
        "lr": f"{config.learning_rate:g}",
        "ep": f"{config.num_train_epochs:g}",
        "date": date.isoformat(),
        "profile": profile,
        "config": {k: v for k, v in asdict(config).items()},
        "budget": f"{settings.nightly_budget_usd:.2f}",
        "tier": settings.gpu_tier,
        "gpu_type": settings.tier.gpu_type,
        "command": launch_command(date, model, profile, config),
    }


def _eval_prompt(settings: Settings, variables: dict[str, str]) -> dict[str, Any]:

    example = {
        "id": "travel-001",
        "prompt": [
            {"role": "system", "content": "You are PRIA, the expense agent."},
            {"role": "user", "content": "Taxi from the airport to the hotel, 38.50 EUR"},
        ],
        "completion": action(4, "Taxi Berlin"),
    }
    return {
        "n": variables.get("n", "25"),
        "roles": ", ".join(sorted(KNOWN_ROLES - {"assistant"})),
        "fields": {
            "id": "a stable, unique item id (capability-number)",
            "prompt": "list of {role, content} messages the agent sees, in order",
            "completion": "the one correct agent action, exactly as the agent must write it",
        },
        "example": json.dumps(example, ensure_ascii=False),
    }


def _registry_test(settings: Settings, variables: dict[str, str]) -> dict[str, Any]:

    functions, tables = {}, []
    for path in sorted((sql_dir() / "migrations").glob("*.sql")):
        text = path.read_text()
        for match in re.finditer(
            r"CREATE (?:OR REPLACE )?FUNCTION (pria\.[a-z_]+)\s*\((.*?)\)\s*RETURNS ([^\n]+?)\s*\n",
            text,
            re.S,
        ):
            name, args, returns = match.groups()
            if name.split(".")[1].startswith("_") or returns.strip() == "trigger":
                continue
            arguments = ", ".join(" ".join(a.split()) for a in args.split(",") if a.strip())
            functions[name] = f"{name}({arguments}) RETURNS {returns.strip()}"
        tables += re.findall(r"CREATE TABLE pria\.\w+ \(.*?\n\);", text, re.S)
    return {"functions": list(functions.values()), "tables": "\n\n".join(tables)}


_CONTEXT: dict[str, Callable[[Settings, dict[str, str]], dict[str, Any]]] = {
    "ML1-SQL-GEN": _sql_gen,
    "ML1-TRAIN-CMD": _train_cmd,
    "ML1-EVAL-PROMPT": _eval_prompt,
    "ML1-REGISTRY-TEST": _registry_test,
}
