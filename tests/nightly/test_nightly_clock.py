"""A night stamps the time it is given: a simulated night (``pria-ml demo``) records its
simulated time in the registry, whatever day it runs on."""

import datetime as dt
import hashlib

from pria_ml import registry
from pria_ml.db import database
from pria_ml.operations import nightly

NIGHT = dt.datetime(2025, 1, 13, 1, 0, tzinfo=dt.UTC)


def gated(db, day: dt.date):
    uri = f"file:///adapters/{day}.safetensors"
    adapter_id = registry.register_candidate(
        db,
        dataset_date=day,
        artifact_uri=uri,
        artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
        base_model="tiny-mistral",
        metrics={},
        now=NIGHT - dt.timedelta(days=30),
    )
    registry.record_gate_decision(db, adapter_id, passed=True, reason="ok", metrics={})
    return adapter_id


def test_promote_and_archive_stages_stamp_the_nights_time(registry_settings) -> None:
    settings = registry_settings
    db = database(settings)
    first = gated(db, dt.date(2025, 1, 1))
    registry.promote(db, adapter_id=first, now=NIGHT - dt.timedelta(days=8))
    second = gated(db, dt.date(2025, 1, 2))  # supersedes `first` 7 days and 1 hour before NIGHT
    registry.promote(db, adapter_id=second, now=NIGHT - dt.timedelta(days=7, hours=1))
    new = gated(db, dt.date(2025, 1, 12))

    report = nightly.run(
        settings, dt.date(2025, 1, 12), selection=nightly.Selection(first="gate"), now=NIGHT
    )

    assert report.succeeded, report.error
    assert (report.started_at, report.finished_at) == (NIGHT, NIGHT)
    statuses = [report.stage(s).status for s in ("gate", "promote", "archive")]
    assert statuses == ["skipped", "done", "done"]
    assert registry.get_adapter(db, new).promoted_at == NIGHT
    assert registry.get_adapter(db, second).superseded_at == NIGHT
    # Archived by the night's clock (7 days after it was superseded), not the server's.
    archived = registry.get_adapter(db, first)
    assert (archived.status, archived.archived_at) == ("archived", NIGHT)
    assert registry.get_adapter(db, second).status == "candidate"
