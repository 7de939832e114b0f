"""Promote and rollback latency on the embedded PostgreSQL, against a plain-UPDATE baseline.

Each call is what `pria-ml promote` / `rollback` does: open a connection, run the registry
function in one transaction (advisory lock, supersede, promote, event, NOTIFY), commit. The
baseline opens a connection and commits a single-row UPDATE, so the ratio is the cost of the
registry's logic over the bare round trip.

    .venv/bin/python perf/bench_registry.py [N]     # --tiny: N = 5, seconds
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from pria_ml.db import Database, embedded_url
from pria_ml.db.migrate import migrate
from pria_ml.registry import (
    current_prod,
    promote,
    record_gate_decision,
    register_candidate,
    rollback,
)


def timed(
    n: int, call: Callable[[int], object], before: Callable[[int], object] = lambda i: None
) -> list[float]:
    """Milliseconds of each of n calls after 10 warm-up calls; ``before`` runs untimed first."""
    for i in range(10):  # warm-up
        before(i)
        call(i)
    samples = []
    for i in range(n):
        before(i)
        began = time.perf_counter()
        call(i)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


def report(name: str, ms: list[float], baseline: list[float] | None = None) -> None:
    p50 = statistics.median(ms)
    p99 = statistics.quantiles(ms, n=100)[98]
    line = f"{name:<24} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms"
    if baseline is not None:
        line += f"   ratio vs baseline p50 {p50 / statistics.median(baseline):5.2f}x"
        line += f"  p99 {p99 / statistics.quantiles(baseline, n=100)[98]:5.2f}x"
    print(line)


def main(n: int = 300) -> None:
    with tempfile.TemporaryDirectory() as home:
        admin = embedded_url(Path(home))
        name = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        db = Database(role="registry", url=admin.replace("/pria?", f"/{name}?"), embedded=False)
        migrate(db)
        ids = []
        for k in range(2):
            uri = f"file:///bench/adapter-{k}.safetensors"
            adapter_id = register_candidate(
                db,
                dataset_date=datetime.date(2026, 11, k + 1),
                artifact_uri=uri,
                artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
                base_model="tiny-mistral",
                metrics={},
            )
            record_gate_decision(db, adapter_id, passed=True, reason="bench", metrics={})
            ids.append(adapter_id)
        with db.connect() as conn:
            conn.execute("CREATE TABLE bench_row (id int PRIMARY KEY, v bigint)")
            conn.execute("INSERT INTO bench_row VALUES (1, 0)")

        def baseline(i: int) -> None:
            with db.connect() as conn:
                conn.execute("UPDATE bench_row SET v = %s WHERE id = 1", (i,))

        base = timed(n, baseline)
        promotes = timed(n, lambda i: promote(db, adapter_id=ids[i % 2]))

        # Rollback walks back the prod history, so each timed rollback needs a promote before
        # it (untimed): one history entry to walk back to.
        def promote_the_other(i: int) -> None:
            prod = current_prod(db)
            promote(db, adapter_id=ids[1] if prod and prod.adapter_id == ids[0] else ids[0])

        rollbacks = timed(n, lambda i: rollback(db), before=promote_the_other)
        with db.connect() as conn:
            (events,) = conn.execute("SELECT count(*) FROM pria.registry_event").fetchone()
        print(f"embedded PostgreSQL, {n} calls each, new connection per call, {events} events")
        report("baseline 1-row UPDATE", base)
        report("promote", promotes, base)
        report("rollback", rollbacks, base)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=300, help="calls per operation")
    parser.add_argument("--tiny", action="store_true", help="5 calls each (seconds)")
    args = parser.parse_args()
    main(5 if args.tiny else args.n)
