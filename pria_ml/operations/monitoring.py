"""Prometheus metrics of the nightly batch job, for the alert rules in
``deploy/prometheus/pria-ml.rules.yml``.

A batch job is not scraped while it runs, so the night leaves its metrics where Prometheus
collects them afterwards (prometheus-client does the formatting and the I/O). A night runs in
two parts (``night.PARTS``: ``extract`` on a CI runner, ``train`` on a GPU machine), and each
part reports on its own, with a ``part`` label, so a part that succeeds every night never hides
the other failing:

- ``PRIA_METRICS_TEXTFILE_DIR``: node exporter's textfile collector directory. Every run writes
  ``pria_ml_nightly_<part>.prom`` for each part it ran; a part that succeeded also writes
  ``pria_ml_nightly_<part>_success.prom``, so its last-success time survives failed nights.
- ``PRIA_PUSHGATEWAY_URL``: a Pushgateway, job ``pria_ml_nightly``, grouping key ``part``.
  Pushed with POST (add), so a failed night replaces the run's metrics and keeps the
  last-success time pushed before.

Metric names:

- ``gpu_train_cost_usd_total`` (train part): training spend recorded in the registry, all
  nights (spec section 8): GPU machines from boot to exit times the tier's rate
  (``pria.gpu_machine_run``), or the trainer's own cost for nights trained elsewhere. The cost
  alert takes its 30-day increase;
- ``pria_ml_train_cost_usd_30d``: the same over the last 30 nights (shown, not alerted on);
- ``pria_ml_nightly_last_success_timestamp_seconds{part}`` / ``..._last_run_timestamp_seconds``;
- ``pria_ml_nightly_exit_code{part}``; ``pria_ml_nightly_stage_duration_seconds{part,stage}`` and
  ``pria_ml_nightly_stage_status{part,stage,status}`` (1 for the stage's status);
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
from pria_ml.operations.night import PARTS
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


def run_file(part: str) -> str:
    return f"pria_ml_nightly_{part}.prom"


def success_file(part: str) -> str:
    return f"pria_ml_nightly_{part}_success.prom"


PUSH_TIMEOUT_S = 10


class _SpendCollector(Collector):
    """``gpu_train_cost_usd_total``: a counter whose value is the registry's recorded total."""

    def __init__(self, total_usd: float) -> None:
        self.total_usd = total_usd

    def collect(self):
        yield CounterMetricFamily(
            "gpu_train_cost_usd",
            "Training GPU spend recorded in the registry, all nights (USD): GPU machines "
            "from boot to exit x the tier's rate.",
            value=self.total_usd,
        )


def run_metrics(
    report: NightlyReport, spend: SpendReport | None, prod: Adapter | None, part: str = "train"
) -> CollectorRegistry:
    """The metrics of one part of one run of the night (the train part carries cost, gate,
    safety and latency)."""

    registry = CollectorRegistry()
    finished = report.finished_at or report.started_at
    Gauge(
        "pria_ml_nightly_last_run_timestamp_seconds",
        "When the last nightly run of this part ended (Unix time).",
        ["part"],
        registry=registry,
    ).labels(part).set(finished.timestamp())
    Gauge(
        "pria_ml_nightly_exit_code",
        "Exit code of the last nightly run (0 ok, 11 gate blocked, other: failed stage).",
        ["part"],
        registry=registry,
    ).labels(part).set(report.exit_code)
    duration = Gauge(
        "pria_ml_nightly_stage_duration_seconds",
        "Wall time of each stage in the last nightly run.",
        ["part", "stage"],
        registry=registry,
    )
    status = Gauge(
        "pria_ml_nightly_stage_status",
        "1 for each stage's status in the last nightly run.",
        ["part", "stage", "status"],
        registry=registry,
    )
    for stage in report.stages:
        if stage.stage in PARTS[part]:
            duration.labels(part, stage.stage).set(stage.seconds)
            status.labels(part, stage.stage, stage.status).set(1)
    if part != "train":
        return registry
    if spend is not None:
        registry.register(_SpendCollector(spend.all_time_usd))
        Gauge(
            "pria_ml_train_cost_usd_30d",
            "Training GPU spend of the last 30 nights (USD).",
            registry=registry,
        ).set(spend.window_usd)
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


def success_metrics(report: NightlyReport, part: str = "train") -> CollectorRegistry:
    """The metric only a part that succeeded writes: when it finished."""
    registry = CollectorRegistry()
    finished = report.finished_at or report.started_at
    Gauge(
        "pria_ml_nightly_last_success_timestamp_seconds",
        "When this part of the nightly last finished successfully (Unix time).",
        ["part"],
        registry=registry,
    ).labels(part).set(finished.timestamp())
    return registry


def publish(settings: Settings, report: NightlyReport) -> list[str]:
    """Write each part's metrics to the textfile directory and / or the Pushgateway that the
    settings name; return where they went. Never raises: failures are logged."""
    if settings.metrics_textfile_dir is None and settings.pushgateway_url is None:
        return []
    parts = report.parts_run()
    spend, prod = _registry_facts(settings, report) if "train" in parts else (None, None)
    registries = []
    for part in parts:
        registries.append((part, run_file(part), run_metrics(report, spend, prod, part)))
        if report.part_succeeded(part):
            registries.append((part, success_file(part), success_metrics(report, part)))
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
    for _part, name, collected in registries:
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
    for part, name, collected in registries:
        try:
            pushadd_to_gateway(
                url,
                job=JOB,
                registry=collected,
                grouping_key={"part": part},
                timeout=PUSH_TIMEOUT_S,
            )
        except OSError as exc:
            log.warning("cannot push %s to the Pushgateway %s: %s", name, url, exc)
            continue
        pushed.append(f"{url} ({name})")
    return pushed
