"""Many operators at once: 128 promote / rollback calls from 64 processes on one registry.

A sampler watches the prod count the whole time; afterwards the event log must replay to the
final state and form one unbroken chain of prod changes.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import threading
import time
import traceback

import psycopg

from pria_ml.db import Database
from pria_ml.errors import RegistryBusy, RegistryError
from pria_ml.registry import adapters, history, promote, replay, rollback

PROCESSES = 64
CALLS_PER_PROCESS = 2


def _worker(url: str, candidates: list[str], seed: int, start, results) -> None:
    db = Database(role="registry", url=url, embedded=False)
    rng = random.Random(seed)
    outcomes = []
    start.wait()
    for _ in range(CALLS_PER_PROCESS):
        try:
            if rng.random() < 0.5:
                transition = promote(db, adapter_id=rng.choice(candidates))
            else:
                transition = rollback(db, reason=f"worker {seed}")
            outcomes.append("changed" if transition.changed else "no-op")
        except RegistryBusy:
            outcomes.append("busy")
        except RegistryError as refusal:
            # Rollback walks back the prod history: back at the first prod there is nothing
            # earlier, and the registry refuses without changing anything.
            if "no previous prod" not in str(refusal):
                outcomes.append("ERROR " + traceback.format_exc())
            else:
                outcomes.append("refused")
        except BaseException:
            outcomes.append("ERROR " + traceback.format_exc())
    results.put(outcomes)


def test_concurrent_promote_and_rollback_keep_exactly_one_prod(
    registry_db: Database, candidate
) -> None:
    ids = [candidate() for _ in range(6)]
    promote(registry_db, adapter_id=ids[0])
    promote(registry_db, adapter_id=ids[1])

    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        with psycopg.connect(registry_db.url, autocommit=True) as conn:
            while not done.is_set():
                row = conn.execute(
                    "SELECT count(*) FROM pria.model_registry WHERE status = 'prod'"
                ).fetchone()
                samples.append(row[0])

    context = multiprocessing.get_context("fork")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(
            target=_worker, args=(registry_db.url, [str(i) for i in ids], seed, start, results)
        )
        for seed in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    sampler = threading.Thread(target=sample)
    sampler.start()
    began = time.monotonic()
    start.set()
    outcomes = [outcome for _ in workers for outcome in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)
    done.set()
    sampler.join()
    elapsed = time.monotonic() - began

    errors = [o for o in outcomes if o.startswith("ERROR")]
    assert not errors, errors[0]
    assert len(outcomes) == PROCESSES * CALLS_PER_PROCESS
    assert all(w.exitcode == 0 for w in workers)
    assert samples and set(samples) == {1}, f"prod counts seen: {sorted(set(samples))}"

    events = history(registry_db, limit=10_000)
    final = {a.adapter_id: a.status for a in adapters(registry_db, limit=1_000)}
    assert replay(events) == final
    with registry_db.connect() as conn:
        replayed = dict(conn.execute("SELECT adapter_id, status FROM pria.registry_replay"))
    assert replayed == final

    # Prod changes form one chain: each names the prod the previous one installed.
    changes = sorted(
        (e for e in events if e.action in ("promote", "rollback")), key=lambda e: e.event_id
    )
    assert len(changes) == 2 + outcomes.count("changed")
    for before, after in itertools.pairwise(changes):
        assert after.previous_prod == before.adapter_id
    assert list(final.values()).count("prod") == 1
    assert final[changes[-1].adapter_id] == "prod"
    print(
        f"{len(outcomes)} calls in {elapsed:.1f} s: {outcomes.count('changed')} changed, "
        f"{outcomes.count('no-op')} no-op, {outcomes.count('busy')} busy, "
        f"{outcomes.count('refused')} refused; "
        f"{len(samples)} samples"
    )
