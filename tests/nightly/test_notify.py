"""Slack notifications reach #ml-ops through the webhook, are retried while Slack has trouble,
and never fail the night when Slack is down. Against a real HTTP server on 127.0.0.1."""

import datetime as dt
import json
import socket
import uuid

import pytest

from pria_ml.operations import notify
from pria_ml.operations.night import FAILED, STAGES, GateOutcome, NightlyReport, StageReport
from pria_ml.quality.rule import promote_if
from pria_ml.settings import Settings


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notify, "BACKOFF_S", 0.01)


PASSING = {
    "accuracy_delta": 3.0,
    "override_delta": -3.0,
    "benchmarks": {"category_choice": {"delta_pp": 0.0}},
}


def webhook(tmp_path, url: str) -> Settings:
    return Settings(home=tmp_path, slack_webhook_url=url)


def failed_night() -> NightlyReport:
    stages = [StageReport(name) for name in STAGES]
    stages[2].status, stages[2].detail = FAILED, "TrainingError: out of memory at step 7"
    report = NightlyReport(dt.date(2026, 11, 24), stages, dt.datetime.now(dt.UTC))
    report.error = RuntimeError("out of memory")
    return report


def test_failure_message_names_the_stage_and_how_to_resume(tmp_path, http_server) -> None:
    url, received = http_server
    assert notify.stage_failed(webhook(tmp_path, url + "/hook"), failed_night())
    ((method, path, body),) = received.requests
    text = json.loads(body)["text"]
    assert (method, path) == ("POST", "/hook")
    assert "failed in *train*" in text and "out of memory at step 7" in text
    assert "pria-ml nightly --date 2026-11-24" in text


def test_gate_block_message_lists_the_failed_clauses(tmp_path, http_server) -> None:
    url, received = http_server
    report = NightlyReport(
        dt.date(2026, 11, 24), [StageReport(s) for s in STAGES], dt.datetime.now(dt.UTC)
    )
    adapter = uuid.uuid4()
    blocked = {"safety_flag_pct": 0.3, "latency_delta": 0.08}
    decision = promote_if({**PASSING, **blocked})
    report.gate = GateOutcome(adapter, decision.reason, decision.as_record())
    assert notify.gate_blocked(webhook(tmp_path, url), report)
    text = json.loads(received.requests[0][2])["text"]
    assert str(adapter) in text
    assert "safety_flag_pct < 0.1 % failed (got +0.300); latency_delta < 0.05" in text


def test_slack_trouble_is_retried_until_it_answers(tmp_path, http_server) -> None:
    url, received = http_server
    received.statuses = [503, 429]
    assert notify.send(webhook(tmp_path, url), "hello")
    assert len(received.requests) == 3


def test_a_refused_message_is_not_retried_and_does_not_raise(tmp_path, http_server) -> None:
    url, received = http_server
    received.statuses = [400]
    assert notify.send(webhook(tmp_path, url), "hello") is False
    assert len(received.requests) == 1


def test_slack_down_never_fails_the_caller(tmp_path, caplog) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    assert notify.send(webhook(tmp_path, f"http://127.0.0.1:{port}/hook"), "hello") is False
    assert "not delivered" in caplog.text


def test_without_a_webhook_nothing_is_sent(tmp_path) -> None:
    assert notify.send(Settings(home=tmp_path), "hello") is False
