"""``pria-ml status``: what the settings point at, and whether each part answers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pria_ml import db
from pria_ml.data.storage import open_storage
from pria_ml.db import migrate
from pria_ml.errors import ConfigError, PriaError
from pria_ml.settings import Settings, redact_url

State = Literal["ok", "warn", "down", "info"]


@dataclass
class Component:
    name: str
    target: str
    state: State
    detail: str = ""


@dataclass
class StatusReport:
    components: list[Component] = field(default_factory=list)
    failure: PriaError | None = None  # the first required part that is down


def check(settings: Settings) -> StatusReport:
    """The mode and what production still misses; then probe the registry and source
    databases, storage and base model named by ``settings``."""

    report = StatusReport()
    missing = settings.missing_for_production()
    report.components.append(
        Component(
            "mode",
            settings.deployment,
            "down" if missing else "ok",
            f"missing: {', '.join(missing)}" if missing else _mode_detail(settings),
        )
    )
    if missing:
        report.failure = ConfigError(
            f"production mode needs {', '.join(missing)}: set them (docs/deploy.md, Secrets), "
            "or set PRIA_MODE=local to run on the embedded defaults"
        )

    def probe(name: str, target: str, attempt) -> None:
        try:
            state, detail = attempt()
        except PriaError as exc:
            report.components.append(Component(name, target, "down", str(exc)))
            report.failure = report.failure or exc
            return
        report.components.append(Component(name, target, state, detail))

    for role, setting in (
        ("registry", settings.database_url),
        ("source", settings.source_database_url),
    ):
        target = redact_url(setting.get_secret_value()) if setting else "embedded PostgreSQL"

        def attempt(role=role):
            database = db.database(settings, role)
            version = database.ping()
            if role == "source":
                return "ok", version
            missing = migrate.pending(database)
            if missing:
                return (
                    "warn",
                    f"{version}; {len(missing)} migrations pending: run `pria-ml db migrate`",
                )
            return "ok", f"{version}; schema current"

        probe(f"{role} database", target, attempt)

    def storage_attempt():
        return "ok", open_storage(settings).probe()

    probe("storage", settings.storage_url or "", storage_attempt)
    report.components.append(_base_model(settings))
    report.components.append(Component("spark", settings.spark_master, "info"))
    tier = settings.tier
    report.components.append(
        Component(
            "gpu tier",
            f"{settings.gpu_tier} ({tier.gpu_type}, ${tier.usd_per_gpu_hour:.2f}/GPU-h)",
            "info",
            f"nightly budget ${settings.nightly_budget_usd:.2f}",
        )
    )
    report.components.append(
        Component(
            "pii key",
            "set" if settings.pii_key else "not set",
            "ok" if settings.pii_key else "warn",
            "" if settings.pii_key else "extract needs PRIA_PII_KEY",
        )
    )
    return report


def _mode_detail(settings: Settings) -> str:
    if settings.deployment == "local":
        return "embedded defaults where a setting is unset"
    return "every production setting is set"


def _base_model(settings: Settings) -> Component:
    if settings.base_model is None:
        path = settings.tiny_model_dir
        built = (path / "config.json").is_file()
        return Component(
            "base model",
            f"tiny local model ({path})",
            "ok" if built else "info",
            "built" if built else "built on first use",
        )
    path = Path(settings.base_model).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return Component("base model", str(path), "ok", "local directory")
        return Component("base model", str(path), "down", "no config.json: not a model directory")
    from huggingface_hub import try_to_load_from_cache

    revision = settings.base_model_revision
    target = f"{settings.base_model}@{revision}" if revision else settings.base_model
    cached = try_to_load_from_cache(settings.base_model, "config.json", revision=revision)
    if isinstance(cached, str):
        return Component("base model", target, "ok", "in the local Hugging Face cache")
    return Component(
        "base model", target, "warn", "not in the local cache; downloaded once on first load"
    )
