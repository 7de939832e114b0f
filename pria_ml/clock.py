"""What time it is: the one place where pria-ml reads the wall clock.

The convention, for every module:

- A function whose result depends on the current time does not read a clock; it is given the
  time: ``now: datetime | None = None`` for a moment (timezone-aware, UTC), or a day
  (``today`` / ``as_of``: ``date | None = None``) for a report.
- ``None`` means the real clock. A report resolves it once, at its entry point
  (``today(given)``), and works with that day throughout. What stamps records (the registry
  calls, the manifests) passes ``now`` down unchanged and resolves it (``now(given)``) at the
  moment it writes, so a production night stamps each thing when it happens while a simulated
  night (``nightly.run(..., now=...)``, ``pria-ml demo``) stamps its simulated time on all.
- Tests pass their own times; none may depend on the date it runs (``PRIA_TEST_SHIFT_DAYS``,
  tests/conftest.py, runs the suite with the clock moved).
- The registry's SQL functions take the time they stamp as their last argument (``p_at``), and
  pria-ml always passes it; PostgreSQL's now() is only their default for a person at psql. So
  nothing pria-ml records or reports depends on the database server's clock.
- Reports place what they show by the times recorded with the data (a promotion by the time it
  was stamped with, an event by its ``created_at``), never by when the report runs or when a
  row was written.

Three readings are the real clock on purpose: through ``system()``, the endpoint rotation hook's
signed timestamp (the receiver compares it with its own clock) and the names of features builds;
and ``machine_booted_at()`` with ``system()``, a GPU machine's billed time from boot to exit.
"""

from __future__ import annotations

import datetime as dt


def system() -> dt.datetime:
    """The real clock: the current time, timezone-aware, in UTC."""
    return dt.datetime.now(dt.UTC)


def now(at: dt.datetime | None = None) -> dt.datetime:
    """``at`` when given (a naive time is taken as UTC), otherwise the real clock."""
    if at is None:
        return system()
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def today(day: dt.date | None = None) -> dt.date:
    """``day`` when given, otherwise today's date in UTC on the real clock."""
    return day if day is not None else system().date()


def machine_booted_at() -> dt.datetime:
    """When this machine (a Fly GPU machine is a VM of its own) booted, from the kernel."""
    import psutil

    return dt.datetime.fromtimestamp(psutil.boot_time(), dt.UTC)
