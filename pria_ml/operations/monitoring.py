"""Prometheus metrics of the nightly batch job, for the alert rules in
``deploy/prometheus/pria-ml.rules.yml``.

A batch job is not scraped while it runs, so the night leaves its metrics where Prometheus
collects them afterwards (prometheus-client does the formatting and the I/O):

- ``PRIA_METRICS_TEXTFILE_DIR``: node exporter's textfile collector directory. Every run writes
  ``pria_ml_nightly.prom``; a successful night also writes ``pria_ml_nightly_success.prom``,
  so the last-success time survives failed nights.
- ``PRIA_PUSHGATEWAY_URL``: a Pushgateway, job ``pria_ml_nightly``. Pushed with POST (add), so
  a failed night replaces the run's metrics and keeps the last-success time pushed before.

Metric names:

- ``gpu_train_cost_usd_total``: training spend ever recorded in model_registry (spec 8);
- ``pria_ml_train_cost_usd_30d``: the 30-day roll-up the cost alert compares with $200;
- ``pria_ml_nightly_last_success_timestamp_seconds`` / ``..._last_run_timestamp_seconds``;
- ``pria_ml_nightly_exit_code``; ``pria_ml_nightly_stage_duration_seconds{stage}`` and
  ``pria_ml_nightly_stage_status{stage,status}`` (1 for the stage's status);
- ``pria_ml_gate_passed`` (1 / 0) for the night's candidate;
- ``pria_ml_safety_flags``, ``pria_ml_safety_flag_pct`` of the night's candidate;
- ``pria_ml_latency_p95_delta_ratio`` (candidate vs prod, 0.05 = +5 %) and
  ``pria_ml_prod_latency_p95_delta_ratio`` (the adapter serving now, against the one before).

Publishing never fails the night: a refused write or an unreachable gateway is logged.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from pria_ml import registry
from pria_ml.db import database
from pria_ml.errors import PriaError
from pria_ml.quality import record
from pria_ml.quality.record import EvalRecord, RecordInvalid
from pria_ml.training import cost

if TYPE_CHECKING:
    from pria_ml.operations.night import NightlyReport
    from pria_ml.registry import Adapter
    from pria_ml.settings import Settings
    from pria_ml.training.cost import SpendReport

log = logging.getLogger(__name__)

JOB = "pria_ml_nightly"
RUN_FILE = "pria_ml_nightly.prom"
SUCCESS_FILE = "pria_ml_nightly_success.prom"
PUSH_TIMEOUT_S = 10


class _SpendCollector(Collector):
    """``gpu_train_cost_usd_total``: a counter whose value is the registry's recorded total."""

    def __init__(self, total_usd: float) -> None:
        self.total_usd = total_usd

    def collect(self):
        yield CounterMetricFamily(
            "gpu_train_cost_usd",
            "Training GPU spend recorded in model_registry, all runs (USD).",
            value=self.total_usd,
        )


def run_metrics(
    report: NightlyReport, spend: SpendReport | None, prod: Adapter | None
) -> CollectorRegistry:
    """The metrics of one run of the night."""

    registry = CollectorRegistry()
    if spend is not None:
        registry.register(_SpendCollector(spend.all_time_usd))
        Gauge(
            "pria_ml_train_cost_usd_30d",
            "Training GPU spend of the last 30 nights (USD).",
            registry=registry,
        ).set(spend.window_usd)
    finished = report.finished_at or report.started_at
    Gauge(
        "pria_ml_nightly_last_run_timestamp_seconds",
        "When the last nightly run ended (Unix time).",
        registry=registry,
    ).set(finished.timestamp())
    Gauge(
        "pria_ml_nightly_exit_code",
        "Exit code of the last nightly run (0 ok, 11 gate blocked, other: failed stage).",
        registry=registry,
    ).set(report.exit_code)
    duration = Gauge(
        "pria_ml_nightly_stage_duration_seconds",
        "Wall time of each stage in the last nightly run.",
        ["stage"],
        registry=registry,
    )
    status = Gauge(
        "pria_ml_nightly_stage_status",
        "1 for each stage's status in the last nightly run.",
        ["stage", "status"],
        registry=registry,
    )
    for stage in report.stages:
        duration.labels(stage.stage).set(stage.seconds)
        status.labels(stage.stage, stage.status).set(1)
    if report.gate is not None:
        Gauge(
            "pria_ml_gate_passed",
            "1 when the promotion gate passed the night's candidate, 0 when it blocked it.",
            registry=registry,
        ).set(1 if report.gate.passed else 0)
    candidate = report.adapter
    if candidate is not None and candidate.safety_flags is not None:
        Gauge(
            "pria_ml_safety_flags",
            "Safety-flagged samples of the night's candidate.",
            registry=registry,
        ).set(candidate.safety_flags)
    measured = _measured(candidate)
    if measured is not None:
        Gauge(
            "pria_ml_safety_flag_pct",
            "Safety-flagged share of the night's candidate's samples (percent).",
            registry=registry,
        ).set(measured.val.candidate.safety_flag_pct)
    if measured is not None and measured.latency.latency_delta.value is not None:
        Gauge(
            "pria_ml_latency_p95_delta_ratio",
            "p95 latency of the night's candidate relative to prod, minus 1 (0.05 = +5 %).",
            registry=registry,
        ).set(measured.latency.latency_delta.value)
    prod_measured = _measured(prod)
    if prod_measured is not None and prod_measured.latency.latency_delta.value is not None:
        Gauge(
            "pria_ml_prod_latency_p95_delta_ratio",
            "p95 latency of the prod adapter relative to the adapter it replaced, minus 1.",
            registry=registry,
        ).set(prod_measured.latency.latency_delta.value)
    return registry


def success_metrics(report: NightlyReport) -> CollectorRegistry:
    """The metric only a successful night writes: when it finished."""
    registry = CollectorRegistry()
    finished = report.finished_at or report.started_at
    Gauge(
        "pria_ml_nightly_last_success_timestamp_seconds",
        "When the last successful nightly run ended (Unix time).",
        registry=registry,
    ).set(finished.timestamp())
    return registry


def publish(settings: Settings, report: NightlyReport) -> list[str]:
    """Write the run's metrics to the textfile directory and / or the Pushgateway that the
    settings name; return where they went. Never raises: failures are logged."""
    if settings.metrics_textfile_dir is None and settings.pushgateway_url is None:
        return []
    spend, prod = _registry_facts(settings, report)
    registries = [(RUN_FILE, run_metrics(report, spend, prod))]
    if report.succeeded:
        registries.append((SUCCESS_FILE, success_metrics(report)))
    written = []
    if settings.metrics_textfile_dir is not None:
        written += _write_textfiles(Path(settings.metrics_textfile_dir), registries)
    if settings.pushgateway_url is not None:
        written += _push(settings.pushgateway_url, registries)
    return written


def _measured(adapter: Adapter | None) -> EvalRecord | None:
    """``adapter``'s evaluation record; a record that does not validate is logged (metrics
    never fail the night) and its figures are left out."""
    if adapter is None:
        return None
    try:
        return record.of_adapter(adapter)
    except RecordInvalid as exc:
        log.error("metrics without evaluation figures: %s", exc)
        return None


def _registry_facts(
    settings: Settings, report: NightlyReport
) -> tuple[SpendReport | None, Adapter | None]:
    """The 30-day spend up to the day the night ended (its own clock), and the prod adapter."""
    as_of = (report.finished_at or report.started_at).astimezone(dt.UTC).date()
    try:
        return cost.spend(settings, as_of=as_of), registry.current_prod(database(settings))
    except PriaError as exc:
        log.warning("metrics without registry figures (spend, prod): %s", exc)
        return None, None


def _write_textfiles(directory: Path, registries: list) -> list[str]:
    from prometheus_client import write_to_textfile

    written = []
    for name, collected in registries:
        path = directory / name
        try:
            directory.mkdir(parents=True, exist_ok=True)
            write_to_textfile(str(path), collected)  # temp file + rename: atomic
        except OSError as exc:
            log.warning("cannot write metrics to %s (PRIA_METRICS_TEXTFILE_DIR): %s", path, exc)
            continue
        written.append(str(path))
    return written


def _push(url: str, registries: list) -> list[str]:
    from prometheus_client import pushadd_to_gateway

    pushed = []
    for name, collected in registries:
        try:
            pushadd_to_gateway(url, job=JOB, registry=collected, timeout=PUSH_TIMEOUT_S)
        except OSError as exc:
            log.warning("cannot push %s to the Pushgateway %s: %s", name, url, exc)
            continue
        pushed.append(f"{url} ({name})")
    return pushed
