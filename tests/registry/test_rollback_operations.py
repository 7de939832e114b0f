"""Rollback as on-call runs it (``operations.transitions``): it walks back the prod history,
reaches archived former prods whose files exist, shows its target with --dry-run, steps back
once when two engineers roll back at once, refuses to move the registry without the endpoint
hook on a real database, and tells #ml-ops what the hook said, also when it failed; running it
again retries the rotation instead of stepping further back. Real PostgreSQL, a real loopback
hook that verifies signatures, a real loopback Slack."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import uuid

import pytest
from hookkit import SECRET, Hook, serve_plain
from pydantic import SecretStr

from pria_ml import registry
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import ConfigError, EndpointRotationFailed, RegistryError
from pria_ml.operations import transitions
from pria_ml.settings import Settings

DAY = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def ops(registry_settings: Settings, hook_server: Hook) -> Settings:
    return registry_settings.model_copy(
        update={
            "endpoint_rotation_url": hook_server.url,
            "endpoint_rotation_secret": SecretStr(SECRET.decode()),
        }
    )


def adapter(settings: Settings, n: int, *, stored: bool = True) -> uuid.UUID:
    """A gated candidate whose adapter file lies in the settings' storage (or not)."""
    storage = open_storage(settings)
    key = f"adapters/{DAY + dt.timedelta(days=n)}.safetensors"
    data = f"weights {n}".encode()
    if stored:
        storage.write_bytes(key, data)
    db = database(settings)
    adapter_id = registry.register_candidate(
        db,
        dataset_date=DAY + dt.timedelta(days=n),
        artifact_uri=storage.uri(key),
        artifact_sha256=hashlib.sha256(data).hexdigest(),
        base_model="tiny-mistral",
        metrics={},
        now=NOW,
    )
    registry.record_gate_decision(db, adapter_id, passed=True, reason="passed", metrics={})
    return adapter_id


def prod(settings: Settings) -> uuid.UUID:
    current = registry.current_prod(database(settings))
    assert current is not None
    return current.adapter_id


def promote_all(settings: Settings, ids: list[uuid.UUID], start: dt.datetime = NOW) -> None:
    for n, adapter_id in enumerate(ids):
        transitions.promote(settings, adapter_id=adapter_id, now=start + dt.timedelta(days=n))


def test_rollbacks_walk_back_and_reach_an_archived_former_prod(ops: Settings) -> None:
    a, b, c = (adapter(ops, n) for n in range(3))
    promote_all(ops, [a, b, c])
    first = NOW + dt.timedelta(days=2, hours=1)
    assert transitions.rollback(ops, reason="first", now=first).adapter_id == b
    # Eight stable days on b: c and a are archived; a is still the next target.
    later = NOW + dt.timedelta(days=10)
    archived = registry.archive(database(ops), now=later)
    assert set(archived) == {a, c}
    plan = transitions.plan_rollback(ops)
    assert plan.target.target == a and plan.target.archived
    assert "still restorable" in plan.target.why and plan.files.startswith("present")
    back = transitions.rollback(ops, reason="second", now=later)
    assert back.adapter_id == a and back.previous_prod == b and back.rotated
    assert "acknowledged" in (back.rotation or "")
    assert transitions.rollback(ops, to=c, now=later).adapter_id == c  # --to an archived one


def test_a_rollback_target_without_files_is_refused(ops: Settings) -> None:
    a = adapter(ops, 0, stored=False)
    b = adapter(ops, 1)
    promote_all(ops, [a, b])
    with pytest.raises(RegistryError, match="files of rollback target .* are gone"):
        transitions.plan_rollback(ops)
    with pytest.raises(RegistryError, match="are gone"):
        transitions.rollback(ops)
    assert prod(ops) == b


def test_two_rollbacks_at_once_step_back_once(ops: Settings) -> None:
    a, b, c = (adapter(ops, n) for n in range(3))
    promote_all(ops, [a, b, c])
    start = threading.Barrier(2)
    results: list = []

    def roll() -> None:
        start.wait()
        results.append(transitions.rollback(ops, reason="latency"))

    threads = [threading.Thread(target=roll) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(r.changed for r in results) == [False, True]
    assert prod(ops) == b
    (noop,) = [r for r in results if not r.changed]
    assert "prod is already" in noop.message


def test_rollback_without_a_rotation_url_refuses_on_a_real_database(
    registry_settings: Settings,
) -> None:
    a, b = (adapter(registry_settings, n) for n in range(2))
    promote_all(registry_settings, [a, b])
    with pytest.raises(ConfigError, match="PRIA_ENDPOINT_ROTATION_URL"):
        transitions.rollback(registry_settings)
    with pytest.raises(ConfigError):
        transitions.plan_rollback(registry_settings)
    assert prod(registry_settings) == b


def test_a_failed_rotation_is_announced_and_a_rerun_retries_it(
    ops: Settings, hook_server: Hook
) -> None:
    a, b, c = (adapter(ops, n) for n in range(3))
    promote_all(ops, [a, b, c])
    with serve_plain() as (slack_url, slack):
        settings = ops.model_copy(update={"slack_webhook_url": SecretStr(slack_url)})
        hook_server.answers = [400]  # refused: not retried
        with pytest.raises(EndpointRotationFailed, match="NOT rotated"):
            transitions.rollback(settings, reason="p95")
        assert prod(ops) == b  # committed
        (failed,) = [json.loads(body)["text"] for body in slack.bodies]
        assert f"prod is now {b}" in failed and "MODEL_ENDPOINT: failed" in failed
        plan = transitions.plan_rollback(settings)
        assert plan.retry_rotation and plan.target.target == b
        retried = transitions.rollback(settings, reason="p95")
        assert prod(ops) == b, "the rerun retried the rotation, it did not step back to a"
        assert retried.rotated and hook_server.received[-1]["adapter_id"] == str(b)
        announced = json.loads(slack.bodies[-1])["text"]
        assert "MODEL_ENDPOINT: acknowledged" in announced
    assert transitions.rotation_complete(ops)
    assert transitions.rollback(ops).adapter_id == a  # and the next one steps back


def test_an_answer_that_does_not_acknowledge_is_a_failed_rotation(
    ops: Settings, hook_server: Hook
) -> None:
    a = adapter(ops, 0)
    with serve_plain() as (plain, _):  # answers "ok", not the function's JSON
        settings = ops.model_copy(update={"endpoint_rotation_url": plain})
        with pytest.raises(EndpointRotationFailed, match="without acknowledging"):
            transitions.promote(settings, adapter_id=a)
        assert not transitions.rotation_complete(settings)
    assert transitions.promote(ops, adapter_id=a).rotated  # the real hook acknowledges it
    assert transitions.rotation_complete(ops)
