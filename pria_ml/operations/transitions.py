"""Prod changes as on-call runs them: the registry transition, the endpoint rotation hook and
the announcement, as one call each.

``registry.promote`` / ``registry.rollback`` are the transactions; these wrap them with what the
settings configure around them (the rotation hook, Slack), so the CLI, the nightly and the
runbook's commands all do the same thing.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from pria_ml import registry
from pria_ml.db import database
from pria_ml.operations import notify
from pria_ml.rotation import EndpointHook

if TYPE_CHECKING:
    import datetime as dt

    from pria_ml.registry import Transition
    from pria_ml.settings import Settings


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
    real clock); see ``registry.promote`` for what it raises."""
    return registry.promote(
        database(settings),
        adapter_id=adapter_id,
        dataset_date=dataset_date,
        force=force,
        reason=reason,
        hook=EndpointHook.from_settings(settings),
        now=now,
    )


def rollback(
    settings: Settings,
    *,
    to: uuid.UUID | str | None = None,
    reason: str | None = None,
    now: dt.datetime | None = None,
) -> Transition:
    """``registry.rollback`` with the configured endpoint hook, stamped ``now``, then a Slack
    message saying what prod is now and what it was (see ``registry.rollback`` for what it
    raises)."""
    transition = registry.rollback(
        database(settings),
        to=to,
        reason=reason,
        hook=EndpointHook.from_settings(settings),
        now=now,
    )
    notify.rolled_back(settings, transition)
    return transition
