"""Prod changes as on-call runs them: the registry transition, the endpoint rotation hook and
the announcement, as one call each.

``registry.promote`` / ``registry.rollback`` are the transactions; these wrap them with what the
settings configure around them (the rotation hook, Slack, the storage the artifacts live in), so
the CLI, the nightly and the runbook's commands all do the same thing.

A change of prod is complete only when the rotation hook acknowledged it (its answer is
recorded in the registry as a ``rotation`` event): running the same command again retries the
rotation instead of changing prod again. Without a hook configured, a rollback against a real
database (``PRIA_DATABASE_URL``) is refused, because it would move the registry but not
``MODEL_ENDPOINT``; on the embedded registry (laptop, demo) it goes ahead with a visible warning.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pria_ml import registry
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import ConfigError, EndpointRotationFailed, RegistryError
from pria_ml.operations import notify
from pria_ml.registry import RollbackTarget, Transition
from pria_ml.rotation import EndpointHook

if TYPE_CHECKING:
    import datetime as dt

    from pria_ml.settings import Settings

log = logging.getLogger(__name__)

NO_HOOK = "not rotated: no PRIA_ENDPOINT_ROTATION_URL is set (embedded registry)"


def promote(
    settings: Settings,
    *,
    adapter_id: uuid.UUID | str | None = None,
    dataset_date: dt.date | None = None,
    force: bool = False,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Transition:
    """``registry.promote`` with the configured endpoint hook, stamped ``now`` (default the
    real clock); promoting the current prod again retries a rotation that was never
    acknowledged. See ``registry.promote`` for what it raises."""
    hook = EndpointHook.from_settings(settings)
    transition = registry.promote(
        database(settings),
        adapter_id=adapter_id,
        dataset_date=dataset_date,
        force=force,
        reason=reason,
        hook=hook,
        now=now,
    )
    if hook is None and transition.changed:
        log.warning("MODEL_ENDPOINT %s", NO_HOOK)
        transition = dataclasses.replace(transition, rotation=NO_HOOK)
    return transition


def rotation_complete(settings: Settings) -> bool:
    """Whether the current prod's change was acknowledged by the rotation hook (True when no
    hook is configured: there is nothing to wait for)."""
    if EndpointHook.from_settings(settings) is None:
        return True
    return registry.unrotated_prod_event(database(settings)) is None


@dataclass(frozen=True)
class RollbackPlan:
    """What ``rollback`` would do now: its target and why, and how the endpoint follows."""

    target: RollbackTarget
    files: str  # whether the target's artifact is in storage, in words
    rotation: str  # what happens to MODEL_ENDPOINT
    retry_rotation: bool  # the last rollback's rotation is retried instead of stepping back


def plan_rollback(settings: Settings, *, to: uuid.UUID | str | None = None) -> RollbackPlan:
    """The rollback ``rollback`` would run now, refusing what it would refuse; changes nothing.

    Raises RegistryError (no prod, no earlier prod, unknown / never-prod target, the target's
    files are gone), ConfigError (no rotation hook against a real database).
    """
    hook = _rollback_hook(settings)
    db = database(settings)
    pending = None if hook is None else _unacknowledged_rollback(db)
    if pending is not None and to is None:
        current = registry.current_prod(db)
        assert current is not None  # an unacknowledged prod change has a prod
        target = RollbackTarget(
            current.adapter_id,
            current.adapter_id,
            f"the rollback to {current.adapter_id} (event {pending}) was never acknowledged by "
            "the rotation hook: it is retried; run rollback again afterwards to step further back",
            current.status == "archived",
            0,
        )
        return RollbackPlan(target, "in use", f"retry the rotation through {hook.url}", True)
    target = registry.rollback_target(db, to=to)
    files = _artifact_check(settings, db, target.target)
    rotation = NO_HOOK if hook is None else f"rotate MODEL_ENDPOINT through {hook.url}"
    return RollbackPlan(target, files, rotation, False)


def rollback(
    settings: Settings,
    *,
    to: uuid.UUID | str | None = None,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Transition:
    """Roll prod back one promotion (or to ``to``), rotate the endpoint, and tell #ml-ops what
    prod is now and what the rotation hook said - also when the rotation failed.

    The plan is ``plan_rollback``'s; the transaction refuses to step back again when prod
    moved since it was planned (a concurrent rollback won), so two rollbacks typed at once step
    back once. Raises what ``plan_rollback`` and ``registry.rollback`` raise;
    EndpointRotationFailed after announcing the committed change.
    """
    plan = plan_rollback(settings, to=to)
    hook = _rollback_hook(settings)
    db = database(settings)
    try:
        if plan.retry_rotation:
            transition = registry.promote(
                db, adapter_id=plan.target.target, hook=hook, reason=reason, now=now
            )
        else:
            transition = registry.rollback(
                db,
                to=to,
                reason=reason,
                hook=hook,
                expect_from=plan.target.current_prod,
                now=now,
            )
    except EndpointRotationFailed as exc:
        if isinstance(exc.transition, Transition):
            notify.rolled_back(settings, exc.transition)
        raise
    if hook is None:
        log.warning("MODEL_ENDPOINT %s", NO_HOOK)
        transition = dataclasses.replace(transition, rotation=NO_HOOK)
    notify.rolled_back(settings, transition)
    return transition


def _rollback_hook(settings: Settings) -> EndpointHook | None:
    hook = EndpointHook.from_settings(settings)
    if hook is None and settings.database_url is not None:
        raise ConfigError(
            "refusing to roll back without PRIA_ENDPOINT_ROTATION_URL: the registry "
            "(PRIA_DATABASE_URL) would say one adapter is prod while MODEL_ENDPOINT keeps "
            "serving another; set PRIA_ENDPOINT_ROTATION_URL and PRIA_ENDPOINT_ROTATION_SECRET"
        )
    return hook


def _unacknowledged_rollback(db) -> int | None:
    """The rollback event that made the current prod prod, when its rotation was never
    acknowledged (a rerun of that rollback retries the rotation)."""
    event_id = registry.unrotated_prod_event(db)
    if event_id is None:
        return None
    made_prod = next((e for e in registry.history(db, limit=50) if e.event_id == event_id), None)
    return event_id if made_prod is not None and made_prod.action == "rollback" else None


def _artifact_check(settings: Settings, db, adapter_id: uuid.UUID) -> str:
    """Refuse a target whose adapter file is gone; say what was checked."""
    adapter = registry.get_adapter(db, adapter_id)
    storage = open_storage(settings)
    root = storage.uri("x")[:-1]
    if not adapter.artifact_uri.startswith(root):
        log.warning(
            "the artifact of %s (%s) is not under PRIA_STORAGE_URL; its presence is not checked",
            adapter_id,
            adapter.artifact_uri,
        )
        return f"not checked: {adapter.artifact_uri} is outside {storage.url}"
    if not storage.exists(adapter.artifact_uri[len(root) :]):
        raise RegistryError(
            f"the files of rollback target {adapter_id} are gone ({adapter.artifact_uri}); "
            "nothing was changed - pick another former prod with `pria-ml rollback --to ID` "
            "(`pria-ml history` lists them)"
        )
    return f"present ({adapter.artifact_uri})"
