"""SIGKILL the embedded postmaster while 16 processes promote and roll back.

Afterwards: exactly one prod, the event log replays to the registry's state and forms one chain
of prod changes with exactly one entry per change a caller was told about (so no call was
applied twice or lost), and every interrupted call either finished after the restart or failed
with DatabaseUnavailable and succeeded when run again. No caller sees a driver exception.
"""

from __future__ import annotations

import itertools
import multiprocessing
import random
import time
import traceback
from pathlib import Path

from faultkit import (
    fault_settings,
    kill_postmaster,
    postmaster_pid,
    two_prods_and_candidates,
    wait_until_restarted,
)

from pria_ml.db import database
from pria_ml.errors import DatabaseUnavailable, RegistryBusy, RegistryError
from pria_ml.registry import (
    adapters,
    history,
    promote,
    replay,
    rollback,
)

PROCESSES = 16
CALLS_PER_PROCESS = 6
KILL_AFTER_CALLS = 24


def _call(db, action: str, target: str | None) -> str:
    try:
        if action == "promote":
            transition = promote(db, adapter_id=target)
        else:
            transition = rollback(db, reason="fault test")
        return "changed" if transition.changed else "no-op"
    except RegistryBusy:
        return "busy"
    except RegistryError as refusal:
        # Rollback walks back the prod history: once it is back at the first prod, there is
        # nothing earlier to return to, and the registry refuses (a refusal changes nothing).
        if "no previous prod" not in str(refusal):
            raise
        return "refused"
    except DatabaseUnavailable:
        return "unavailable"
    except BaseException:
        return "ERROR " + traceback.format_exc()


def _worker(home: Path, ids: list[str], seed: int, start, done, results) -> None:
    db = database(fault_settings(home))
    rng = random.Random(seed)
    records = []
    start.wait()
    for _ in range(CALLS_PER_PROCESS):
        action = "promote" if rng.random() < 0.5 else "rollback"
        target = rng.choice(ids) if action == "promote" else None
        began = time.monotonic()
        outcome = _call(db, action, target)
        ended = time.monotonic()
        rerun = _call(db, action, target) if outcome == "unavailable" else None
        records.append((began, ended, outcome, rerun))
        with done.get_lock():
            done.value += 1
        time.sleep(rng.random() * 0.02)
    results.put(records)


def test_killed_postmaster_under_promote_and_rollback(fault_home: Path) -> None:
    db = database(fault_settings(fault_home))
    ids = two_prods_and_candidates(db, 5)

    context = multiprocessing.get_context("fork")
    start, done, results = context.Event(), context.Value("i", 0), context.Queue()
    workers = [
        context.Process(
            target=_worker, args=(fault_home, [str(i) for i in ids], seed, start, done, results)
        )
        for seed in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    old_pid = postmaster_pid(fault_home)
    start.set()
    while done.value < KILL_AFTER_CALLS:
        time.sleep(0.005)
    killed = kill_postmaster(fault_home)
    restarted = wait_until_restarted(fault_home, old_pid)
    records = [r for _ in workers for r in results.get(timeout=120)]
    for worker in workers:
        worker.join(timeout=30)

    errors = [r for r in records if r[2].startswith("ERROR") or (r[3] or "").startswith("ERROR")]
    assert not errors, errors[0]
    assert all(w.exitcode == 0 for w in workers)
    interrupted = [r for r in records if r[0] < killed < r[1]]
    finished = [r for r in interrupted if r[2] != "unavailable"]
    failed = [r for r in records if r[2] == "unavailable"]
    assert interrupted, "the kill must hit calls in flight"
    assert all(r[3] in ("changed", "no-op", "busy", "refused") for r in failed), failed

    events = history(db, limit=10_000)
    final = {a.adapter_id: a.status for a in adapters(db, limit=1_000)}
    assert list(final.values()).count("prod") == 1
    assert replay(events) == final
    with db.connect() as conn:
        assert dict(conn.execute("SELECT adapter_id, status FROM pria.registry_replay")) == final
    changes = sorted(
        (e for e in events if e.action in ("promote", "rollback")), key=lambda e: e.event_id
    )
    for before, after in itertools.pairwise(changes):
        assert after.previous_prod == before.adapter_id
    outcomes = [r[2] for r in records] + [r[3] for r in failed]
    assert len(changes) == 2 + outcomes.count("changed")
    assert final[changes[-1].adapter_id] == "prod"
    print(
        f"{len(records)} calls; {len(interrupted)} in flight at the kill: {len(finished)} "
        f"finished after the restart, {len(failed)} raised DatabaseUnavailable and succeeded "
        f"when run again; server back {restarted - killed:.2f} s after the kill; "
        f"{outcomes.count('changed')} changes, {outcomes.count('busy')} busy, "
        f"{outcomes.count('refused')} refused (nothing earlier to roll back to)"
    )
