"""Extraction throughput and peak memory at growing source sizes, on the embedded PostgreSQL.

For each size N the source is seeded with N expenses, N agent traces and N workflow events over
365 days (so about a quarter of the events still have a trace inside its 90-day window), then
``extract.run`` runs in a fresh process whose peak RSS is read from ``getrusage``. Streaming
should keep memory flat: the 1M figure close to the 100k one.

PII detection runs on a process pool (``workers``): each size is extracted with every count of
``--workers`` (default 1 and 2), and the speed-up of the largest count over one worker is
printed. The files are byte-identical whatever the count (tests/extract/test_extract_run.py).

Baseline, measured in the same run on the smallest source (best of two, alternating): the
naive extraction a first version would write - ``fetchall()`` of the same joined query, every
row built in a list, one ``write_table``, one process - with the same privacy rules.

    .venv/bin/python perf/bench_extract.py                  # 100k and 1M (about 30 minutes)
    .venv/bin/python perf/bench_extract.py --sizes 20000 100000 --workers 1 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATE = dt.date(2026, 11, 24)


def settings_for(home: Path):
    from pria_ml.settings import Settings

    return Settings(home=home, pii_key="bench-key", storage_url=(home / "storage").as_uri())


def naive_extract(home: Path) -> int:
    """Everything in memory at once: fetchall, a list of rows, one Arrow table."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from psycopg.rows import dict_row

    from pria_ml import extract
    from pria_ml.data.contract import RAW_SCHEMA
    from pria_ml.data.privacy import pseudonymiser
    from pria_ml.db import database

    settings = settings_for(home)
    retention = extract.Retention(DATE)
    pseudo = pseudonymiser(settings)
    query = extract.joined_query(extract.source_queries())
    with database(settings, "source").connect() as conn:
        pseudo.protect(extract.known_merchants(conn, retention))
        rows = conn.cursor(row_factory=dict_row).execute(query, retention.params()).fetchall()
    built = [extract.build_row(row, pseudo, retention) for row in rows]
    good = [row for row in built if isinstance(row, dict)]
    with tempfile.TemporaryDirectory() as scratch:
        table = pa.Table.from_pylist(good, schema=RAW_SCHEMA)
        pq.write_table(table, Path(scratch, "raw.parquet"), compression="zstd")
    return len(good)


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux keeps ``ru_maxrss`` across fork + exec (a child would
    inherit the parent's peak), so read the memory map's own high-water mark when there is one."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, home: Path, workers: int) -> None:
    """Run one extraction in this (fresh) process and print its figures as JSON."""
    from pria_ml import extract
    from pria_ml.db import database

    settings = settings_for(home)
    database(settings, "source").ping()  # server start and connect are not extraction
    rss_before = peak_rss_mb()
    start = time.perf_counter()
    if mode == "stream":
        result = extract.run(settings, DATE, force=True, workers=workers)
        out_rows = result.manifest["rows"]["raw"]
    else:
        out_rows = naive_extract(home)
    seconds = time.perf_counter() - start
    own, workers_ = (
        resource.getrusage(r) for r in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    print(
        json.dumps(
            {
                "seconds": seconds,
                # CPU of this process and its (joined) workers: what the pool costs on top
                "cpu_s": own.ru_utime + own.ru_stime + workers_.ru_utime + workers_.ru_stime,
                "out_rows": out_rows,
                "peak_rss_mb": peak_rss_mb(),
                "rss_before_mb": rss_before,
            }
        )
    )


def measure(mode: str, home: Path, workers: int = 1) -> dict:
    """One extraction in a fresh process. Peak RSS is the parent's: with a pool, each worker
    adds its own (the detectors and their lexicons, about 80 MB), flat in the table size too."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--home", str(home), "--n", str(workers)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _seeded_rows(source) -> int | None:
    import psycopg

    try:
        with source.connect() as conn:
            return conn.execute("SELECT count(*) FROM workflow_event").fetchone()[0]
    except psycopg.errors.UndefinedTable:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()) / "pria-bench")
    parser.add_argument(
        "--reuse", action="store_true", help="Keep a source already seeded with N rows."
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--child", choices=["stream", "naive"])
    parser.add_argument("--home", type=Path)
    parser.add_argument("--n", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--tiny", action="store_true", help="200 rows, one worker (seconds)")
    args = parser.parse_args()
    if args.tiny:
        args.sizes, args.workers = [200], [1]
        args.root = Path(tempfile.mkdtemp(prefix="pria-bench-extract-"))
    if args.child:
        child(args.child, args.home, args.n)
        return

    from pria_ml.db import database
    from pria_ml.world import seed

    results = {}
    for size in args.sizes:
        home = args.root / str(size)
        settings = settings_for(home)
        source = database(settings, "source")
        seeded = None
        if not (args.reuse and _seeded_rows(source) == size):
            start = time.perf_counter()
            seed.seed(settings, rows=size, seed=0, end_date=DATE, replace=True)
            seeded = time.perf_counter() - start
            print(f"seeded {size:,} events/traces/expenses in {seeded:.0f} s", flush=True)
        # Alternate the modes and keep each one's best run: none profits from a cache another
        # warmed, and a noisy neighbour on a shared machine hurts all alike.
        modes = [("stream", w) for w in args.workers]
        if size == min(args.sizes):
            modes.insert(0, ("naive", 1))
        runs: dict[str, list[dict]] = {}
        for _ in range(2 if size == min(args.sizes) else 1):
            for mode, workers in modes:
                key = mode if mode == "naive" else f"stream x{workers}"
                runs.setdefault(key, []).append(measure(mode, home, workers))
        results[size] = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
        results[size]["seed_s"] = seeded
        print(f"  {size:,}: {json.dumps(results[size])}", flush=True)

    print()
    print(f"{'source events':>14} {'mode':>10} {'seconds':>8} {'events/s':>9} {'rows out':>9}"
          f" {'rows out/s':>10} {'peak RSS MB':>12} {'CPU s':>7}")  # fmt: skip
    for size, figures in results.items():
        for mode, f in figures.items():
            if mode == "seed_s":
                continue
            print(
                f"{size:>14,} {mode:>10} {f['seconds']:>8.1f} {size / f['seconds']:>9,.0f}"
                f" {f['out_rows']:>9,} {f['out_rows'] / f['seconds']:>10,.0f}"
                f" {f['peak_rss_mb']:>12.0f} {f.get('cpu_s', 0):>7.1f}"
            )
    small, large = min(results), max(results)
    one, most = f"stream x{min(args.workers)}", f"stream x{max(args.workers)}"
    stream_small, naive = results[small][one], results[small]["naive"]
    print()
    print(
        f"baseline ratio at {small:,}: naive peak RSS / streaming peak RSS = "
        f"{naive['peak_rss_mb'] / stream_small['peak_rss_mb']:.2f}x; streaming throughput / "
        f"naive = {naive['seconds'] / stream_small['seconds']:.2f}x"
    )
    for size in results:
        print(
            f"workers at {size:,}: {most} / {one} throughput = "
            f"{results[size][one]['seconds'] / results[size][most]['seconds']:.2f}x"
        )
    if large != small:
        stream_large = results[large][one]
        print(
            f"flatness: streaming peak RSS at {large:,} / at {small:,} = "
            f"{stream_large['peak_rss_mb'] / stream_small['peak_rss_mb']:.2f}x "
            f"for {large / small:.0f}x the rows"
        )


if __name__ == "__main__":
    main()
