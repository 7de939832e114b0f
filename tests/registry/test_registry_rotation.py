"""The endpoint rotation hook against a real HTTP server on loopback."""

from __future__ import annotations

import pytest
from hookkit import SECRET, Hook
from pydantic import SecretStr

from pria_ml.db import Database
from pria_ml.errors import ConfigError, EndpointRotationFailed
from pria_ml.registry import current_prod, history, promote, rollback
from pria_ml.rotation import EndpointHook
from pria_ml.settings import Settings


def _hook(url: str, secret: bytes = SECRET, attempts: int = 3) -> EndpointHook:
    return EndpointHook(url=url, secret=secret, attempts=attempts, backoff_s=0.01)


def test_promotion_calls_the_hook_with_a_signed_payload(
    registry_db: Database, candidate, hook_server: Hook
) -> None:
    a = candidate()
    result = promote(registry_db, adapter_id=a, hook=_hook(hook_server.url))
    assert result.rotated
    (payload,) = hook_server.received
    assert payload["adapter_id"] == str(a) and payload["action"] == "promote"
    assert payload["event_id"] == result.event_id
    assert len(payload["artifact_sha256"]) == 64
    rotation = history(registry_db)[0]
    assert rotation.action == "rotation" and rotation.detail["ok"] is True


def test_server_errors_are_retried_with_backoff(
    registry_db: Database, candidate, hook_server: Hook
) -> None:
    a, b = candidate(), candidate()
    promote(registry_db, adapter_id=a)
    promote(registry_db, adapter_id=b)
    hook_server.answers = [500, 503]
    result = rollback(registry_db, hook=_hook(hook_server.url))
    assert result.rotated and result.adapter_id == a
    assert len(hook_server.received) == 3
    assert hook_server.received[-1]["action"] == "rollback"
    assert history(registry_db)[0].detail["attempts"] == 3


def test_failed_rotation_is_loud_and_leaves_the_registry_consistent(
    registry_db: Database, candidate, hook_server: Hook
) -> None:
    a, b = candidate(), candidate()
    promote(registry_db, adapter_id=a)
    hook_server.answers = [500, 500, 500]
    with pytest.raises(EndpointRotationFailed, match=r"NOT rotated.*after 3 attempts") as info:
        promote(registry_db, adapter_id=b, hook=_hook(hook_server.url))
    assert info.value.exit_code == 9
    assert f"prod is {b}" in str(info.value)
    # The change of prod is committed and whole: one prod, its event, and the failure recorded.
    assert current_prod(registry_db).adapter_id == b
    events = history(registry_db)
    assert events[0].action == "rotation" and events[0].detail["ok"] is False
    assert events[1].action == "promote" and events[1].adapter_id == b
    # Promoting the current prod again retries the rotation that never succeeded.
    again = promote(registry_db, adapter_id=b, hook=_hook(hook_server.url))
    assert not again.changed and again.rotated
    assert hook_server.received[-1]["event_id"] == events[1].event_id
    # ... and once confirmed, a no-op promote calls nothing.
    calls = len(hook_server.received)
    assert not promote(registry_db, adapter_id=b, hook=_hook(hook_server.url)).rotated
    assert len(hook_server.received) == calls


def test_wrong_secret_is_refused_without_retry(
    registry_db: Database, candidate, hook_server: Hook
) -> None:
    a = candidate()
    with pytest.raises(EndpointRotationFailed, match="refused the call: HTTP 401"):
        promote(registry_db, adapter_id=a, hook=_hook(hook_server.url, secret=b"wrong"))
    assert hook_server.bad_signatures == 1
    assert current_prod(registry_db).adapter_id == a


def test_unreachable_hook_fails_after_retries(registry_db: Database, candidate) -> None:
    a = candidate()
    with pytest.raises(EndpointRotationFailed, match="after 2 attempts: URLError"):
        promote(registry_db, adapter_id=a, hook=_hook("http://127.0.0.1:9/rotate", attempts=2))
    assert current_prod(registry_db).adapter_id == a


def test_hook_from_settings(settings: Settings) -> None:
    assert EndpointHook.from_settings(settings) is None
    with pytest.raises(ConfigError, match="PRIA_ENDPOINT_ROTATION_SECRET"):
        EndpointHook.from_settings(
            settings.model_copy(update={"endpoint_rotation_url": "http://x"})
        )
    hook = EndpointHook.from_settings(
        settings.model_copy(
            update={"endpoint_rotation_url": "http://x", "endpoint_rotation_secret": SecretStr("s")}
        )
    )
    assert hook is not None and hook.secret == b"s"
