"""Slack messages to #ml-ops (spec section 10): a failed night, a blocked gate, a rollback.

Sent through the incoming webhook in ``PRIA_SLACK_WEBHOOK_URL`` as ``{"text": ...}``. Slack
being down must never fail the night or a rollback: a network error, 429 or 5xx is retried with
backoff, and what still fails is logged and reported as False.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pria_ml.operations.night import NightlyReport
    from pria_ml.registry import Transition
    from pria_ml.settings import Settings

log = logging.getLogger(__name__)

ATTEMPTS = 4
BACKOFF_S = 0.5  # doubled after each attempt: 0.5, 1, 2 s
TIMEOUT_S = 10
_RETRIED_STATUSES = {429, 500, 502, 503, 504}


def send(settings: Settings, text: str) -> bool:
    """Post ``text`` to the #ml-ops webhook; True when Slack accepted it. Never raises."""
    import httpx

    if settings.slack_webhook_url is None:
        log.debug("no PRIA_SLACK_WEBHOOK_URL: not sent: %s", text)
        return False
    url = settings.slack_webhook_url.get_secret_value()
    problem = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            response = httpx.post(url, json={"text": text}, timeout=TIMEOUT_S)
        except httpx.HTTPError as exc:
            problem = f"{type(exc).__name__}: {exc}"
            continue
        if response.is_success:
            return True
        problem = f"HTTP {response.status_code} {response.text[:200]!r}"
        if response.status_code not in _RETRIED_STATUSES:
            break
    log.warning("Slack notification not delivered (%s); message was: %s", problem, text)
    return False


def stage_failed(settings: Settings, report: NightlyReport) -> bool:
    """Tell #ml-ops which stage of the night failed, why, and how to resume."""
    stage = report.failed_stage
    detail = report.stage(stage).detail if stage else str(report.error)
    return send(
        settings,
        f":red_circle: pria-ml nightly {report.date} failed in *{stage}* (exit "
        f"{report.exit_code}): {detail}\nResume with `pria-ml nightly --date {report.date}` "
        "(complete stages are skipped); runbook: docs/RUNBOOK.md, Training fail.",
    )


def gate_blocked(settings: Settings, report: NightlyReport) -> bool:
    """Tell #ml-ops the gate blocked the night's candidate, with the failed clauses."""
    gate = report.gate
    assert gate is not None
    clauses = "; ".join(gate.failed) or gate.reason
    return send(
        settings,
        f":large_yellow_circle: pria-ml nightly {report.date}: the gate blocked candidate "
        f"{gate.adapter_id}; prod is unchanged. Failed: {clauses}\nRunbook: docs/RUNBOOK.md "
        "(Safety flag surge / Latency regression).",
    )


def rolled_back(settings: Settings, transition: Transition) -> bool:
    """Tell #ml-ops that prod was rolled back, to what and from what, and what the endpoint
    rotation hook said (acknowledged, failed, or not configured)."""
    if not transition.changed and transition.rotation is None:
        return False
    icon = ":rewind:" if (transition.rotation or "").startswith("acknowledged") else ":warning:"
    rotation = transition.rotation or "no rotation was attempted"
    return send(
        settings,
        f"{icon} pria-ml rollback: prod is now {transition.adapter_id} (was "
        f"{transition.previous_prod}). {transition.message}\nMODEL_ENDPOINT: {rotation}",
    )
