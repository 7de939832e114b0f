"""build-features on Spark against the best single-machine engines, every output checked equal.

    .venv/bin/python perf/bench_features.py [--rows 1000000] [--rounds 3] [--standalone]
    .venv/bin/python perf/bench_features.py --tiny      # seconds: the suite runs this

For each size it writes one seeded raw.parquet (333 characters of message text per row, 60
days, 20 % overrides, recurring prompts, traces crossing midnight; zstd, 50k-row groups, as
extract writes it) and times, each in a fresh process, in rotated order for ``--rounds``:

- ``spark``: ``features.build`` exactly as ``pria-ml build-features`` calls it: no session
  given, so it starts its own JVM (``PRIA_SPARK_MASTER``, default local[*]) and stops it;
- ``polars``: Polars, lazy, for the plan (group-bys, windows, the sort); tokenising with the
  shared per-batch code (``pria_ml.data.examples.example_batch``), one plain loop per chunk, a
  thread per core (tiktoken releases the GIL while it encodes);
- ``baseline``: the project's single-process reference, pyarrow and pandas, with the same
  tokenising loop.

Every engine writes its splits through the same ``SplitWriter``; each engine's three files
must have the same sha256 as Spark's (same rows, token sums and contents), or the run fails.
Printed per engine: wall seconds min / median, peak RSS of the whole process tree (the JVM and
its Python workers included), and the ratio of its median to the best median. ``--standalone``
adds one run of the Spark engine on a standalone master and worker started on loopback.
``--tiny`` runs every engine once on 3,000 rows with 30 % overrides, so the seeded last copies
are exercised too (the suite's check that this script still runs).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATE = dt.date(2026, 11, 24)
ENGINES = ("spark", "polars", "baseline")
TINY_ROWS = 3_000
BATCH_ROWS = 50_000
SYSTEM = (
    "You are PRIA, an expense assistant. Read the expense and the tool results, then answer "
    "with the category id and one short reason."
)
MERCHANTS = ("Uber", "Lufthansa", "Pret", "AWS", "Staples", "Hilton", "Shell", "Zoom")


# ---------------------------------------------------------------------------------------------
# Input


def synthetic_raw(rows: int, seed: int, override_rate: float = 0.2):
    """``rows`` raw rows over 60 days: traces of 1-3 events, ``override_rate`` overridden, some
    recurring prompts, a few traces crossing midnight."""
    import numpy as np
    import pyarrow as pa

    from pria_ml.data.contract import RAW_SCHEMA

    words = np.array(
        [f"{a}{b}" for a in ("ta", "ro", "mi", "ke", "lu", "sa", "po", "ne") for b in range(250)]
    )
    merchants = np.array(MERCHANTS)
    rng = np.random.default_rng(seed)
    traces = max(int(rows / 1.6), 1)
    trace = np.sort(rng.integers(0, traces, rows))
    step = np.arange(rows) - np.searchsorted(trace, trace)
    day = (trace * 60 // traces) + ((trace % 50 == 0) & (step > 0) & (trace < rows // 2))
    merchant = merchants[trace % len(merchants)]
    notes = [" ".join(ws) for ws in words[rng.integers(0, len(words), (rows, 24))]]
    recurring = trace % 9 == 0
    user = np.where(
        recurring,
        np.char.add("Categorise the monthly charge from ", merchant),
        [
            f"Categorise {m} {a / 100:.2f} EUR: {n}"
            for m, a, n in zip(merchant, rng.integers(100, 100_000, rows), notes, strict=True)
        ],
    )
    tool = [
        f'{{"merchant": "{m}", "mcc": {c}, "policy": "travel-{c % 7}"}}'
        for m, c in zip(merchant, rng.integers(4000, 6000, rows), strict=True)
    ]
    category = rng.integers(0, 40, rows)
    overridden = rng.random(rows) < override_rate
    contents = np.stack([np.full(rows, SYSTEM), user, np.array(tool)], axis=1).ravel()
    messages = pa.StructArray.from_arrays(
        [
            pa.array(np.tile(["system", "user", "tool"], rows).tolist(), pa.string()),
            pa.array(contents.tolist(), pa.string()),
        ],
        names=["role", "content"],
    )
    first = dt.date(2026, 9, 1)
    return pa.table(
        {
            "event_id": pa.array([f"ev-{i}" for i in range(rows)]),
            "trace_id": pa.array([f"tr-{t}" for t in trace]),
            "record_date": pa.array([first + dt.timedelta(days=int(d)) for d in day], pa.date32()),
            "event_type": pa.array(np.full(rows, "categorise")),
            "override_flag": pa.array(overridden),
            "prompt_messages": pa.ListArray.from_arrays(
                pa.array(np.arange(0, 3 * rows + 1, 3, dtype=np.int32)), messages
            ),
            "agent_output": pa.array(
                [f"category={c}: matches the merchant's usual spend" for c in category]
            ),
            "corrected_output": pa.array(
                [
                    f"category={(c + 1) % 40}" if o else None
                    for c, o in zip(category, overridden, strict=True)
                ],
                pa.string(),
            ),
            "category_id": pa.array(category.astype(np.int32)),
            "expense_text": pa.array(notes),
        },
        schema=RAW_SCHEMA,
    )


def write_raw(home: Path, rows: int, seed: int, override_rate: float = 0.2) -> Path:
    """raw.parquet plus extract's manifest in ``home``'s storage, in 1M-row slices (bounded
    memory at 10M rows); returns the file."""
    import pyarrow.parquet as pq

    from pria_ml.data.contract import RAW_SCHEMA, dataset_key, write_manifest
    from pria_ml.data.storage import open_storage, sha256_file

    storage = open_storage(settings_for(home))
    path = storage.path(dataset_key(DATE, "raw.parquet"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(path, RAW_SCHEMA, compression="zstd") as writer:
        for begin in range(0, rows, 1_000_000):
            part = synthetic_raw(min(1_000_000, rows - begin), seed + begin, override_rate)
            if begin:  # distinct ids and traces across slices
                part = _renumber(part, begin)
            writer.write_table(part, row_group_size=BATCH_ROWS)
    files = {"raw.parquet": {"sha256": sha256_file(path), "bytes": path.stat().st_size}}
    write_manifest(storage, dataset_key(DATE, "manifest.json"), {"files": files})
    return path


def _renumber(table, offset: int):
    import pyarrow.compute as pc

    for name, prefix in (("event_id", "ev-"), ("trace_id", "tr-")):
        renamed = pc.binary_join_element_wise(
            prefix, f"{offset}-", pc.utf8_slice_codeunits(table[name], len(prefix)), ""
        )
        table = table.set_column(table.schema.get_field_index(name), name, renamed)
    return table


def settings_for(home: Path):
    from pria_ml.settings import Settings

    return Settings(home=home, storage_url=(home / "storage").as_uri())


# ---------------------------------------------------------------------------------------------
# The engines (each runs in a child process: ``--engine NAME --home DIR --out DIR``)


def examples_in_threads(raw_path: Path, *, max_tokens: int, columns: Iterable[str]):
    """Example rows of every raw row (``example_schema``), tokenised by one plain loop per
    chunk, a thread per core."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pria_ml.data import tokens
    from pria_ml.data.examples import RAW_INPUT, example_batch

    encoding = tokens.encoding()
    parquet = pq.ParquetFile(raw_path)
    batches = parquet.iter_batches(batch_size=BATCH_ROWS, columns=list(RAW_INPUT))
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        done = pool.map(
            lambda b: example_batch(b, encoding, max_tokens=max_tokens).select(list(columns)),
            batches,
        )
        return pa.Table.from_batches(list(done))


def write_sorted(rows, paths: dict, split_column: str = "split") -> None:
    """Rows in (example_id, upsample_copy) order -> the three split files."""
    import pyarrow.compute as pc

    from pria_ml.data.splits import ROW_GROUP_ROWS, SPLITS, SplitWriter

    for number, name in enumerate(SPLITS):
        writer = SplitWriter(paths[name])
        try:
            chosen = rows.filter(pc.equal(rows[split_column], number))
            for batch in chosen.to_batches(max_chunksize=ROW_GROUP_ROWS):
                writer.write(batch)
        finally:
            writer.close()


def polars_engine(raw_path: Path, out: Path, *, seed: int, max_tokens: int) -> dict:
    import polars as pl

    from pria_ml.data import splits
    from pria_ml.data.examples import example_schema
    from pria_ml.data.splits import PROMPT_CONFLICT, TRACE_CONFLICT

    timings = {}
    start = time.perf_counter()
    examples = pl.from_arrow(
        examples_in_threads(raw_path, max_tokens=max_tokens, columns=example_schema().names)
    )
    timings["examples"] = time.perf_counter() - start
    start = time.perf_counter()
    usable = examples.lazy().filter(pl.col("drop_reason").is_null())
    per_date = usable.group_by("record_date").len().collect()
    cuts = splits.date_cut_points(dict(zip(*per_date.get_columns(), strict=True)))
    split = (
        pl.when(pl.col("record_date") <= cuts[0])
        .then(0)
        .when(pl.col("record_date") <= cuts[1])
        .then(1)
        .otherwise(2)
        .cast(pl.Int8)
    )
    trace_conflict = pl.col("split") > pl.col("split").min().over("trace_id")
    prompt_first = pl.when(pl.col("conflict").is_null()).then(pl.col("split"))
    planned = (
        usable.with_columns(split.alias("split"))
        .with_columns(pl.when(trace_conflict).then(pl.lit(TRACE_CONFLICT)).alias("conflict"))
        .with_columns(
            pl.coalesce(
                "conflict",
                pl.when(pl.col("split") > prompt_first.min().over("prompt_hash")).then(
                    pl.lit(PROMPT_CONFLICT)
                ),
            ).alias("conflict")
        )
        .filter(pl.col("conflict").is_null())
        .drop("conflict", "prompt_hash", "drop_reason")
        .collect()
    )
    train = planned.filter(pl.col("split") == 0).group_by("reward").len()
    plan = splits.upsample_plan(dict(zip(*train.get_columns(), strict=True)))
    # Copy keys (a sha256 each) only for train's minority rows, and only when some get a
    # last copy: Polars would evaluate a when/then branch on every row.
    keys = pl.Series("copy_key", [None] * planned.height, dtype=pl.String)
    if plan.remainder:
        mask = planned.select(
            (pl.col("split") == 0) & (pl.col("reward") == plan.minority_reward)
        ).to_series()
        ids = planned["example_id"].filter(mask).to_list()
        keys = keys.scatter(mask.arg_true(), [splits.copy_key(seed, i) for i in ids])
    planned = planned.with_columns(keys)
    extra = splits.copies(
        planned["split"].to_numpy(),
        planned["reward"].to_numpy(),
        planned["copy_key"].to_arrow(),
        plan,
    )
    rows = (
        planned.lazy()
        .with_columns(pl.Series("extra", extra))
        .with_columns(pl.int_ranges(0, pl.col("extra") + 1, dtype=pl.Int16).alias("upsample_copy"))
        .explode("upsample_copy")
        .sort("example_id", "upsample_copy")
        .collect()
    )
    timings["plan"] = time.perf_counter() - start
    start = time.perf_counter()
    write_sorted(rows.to_arrow(), split_paths(out))
    timings["write"] = time.perf_counter() - start
    return timings


def baseline_engine(raw_path: Path, out: Path, *, seed: int, max_tokens: int) -> dict:
    """build-features' rules in one process with pyarrow and pandas."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from pria_ml.data import splits
    from pria_ml.data.examples import example_schema
    from pria_ml.data.splits import PROMPT_CONFLICT, TRACE_CONFLICT

    timings = {}
    start = time.perf_counter()
    examples = examples_in_threads(raw_path, max_tokens=max_tokens, columns=example_schema().names)
    timings["examples"] = time.perf_counter() - start
    start = time.perf_counter()
    usable = examples.filter(pc.is_null(examples["drop_reason"]))
    frame = usable.select(["trace_id", "prompt_hash", "record_date", "reward"]).to_pandas()
    cuts = splits.date_cut_points(frame.groupby("record_date").size().to_dict())
    frame["split"] = splits.split_of(usable["record_date"], cuts)
    frame["conflict"] = None
    for key, reason in (("trace_id", TRACE_CONFLICT), ("prompt_hash", PROMPT_CONFLICT)):
        live = frame["conflict"].isna()
        first = frame[live].groupby(key)["split"].transform("min")
        frame.loc[live & (frame["split"] > first.reindex(frame.index)), "conflict"] = reason
    kept = frame["conflict"].isna().to_numpy()
    split = frame["split"].to_numpy()[kept]
    reward = frame["reward"].to_numpy()[kept]
    rows = usable.filter(pa.array(kept))
    plan = splits.upsample_plan({r: int(((split == 0) & (reward == r)).sum()) for r in (0.0, 1.0)})
    minority = (split == 0) & (reward == plan.minority_reward)
    keys = pa.array(
        [
            splits.copy_key(seed, i) if m and plan.remainder else None
            for i, m in zip(rows["example_id"].to_pylist(), minority, strict=True)
        ],
        pa.string(),
    )
    extra = splits.copies(split, reward, keys, plan).astype(np.int64)
    index = np.repeat(np.arange(rows.num_rows), extra + 1)
    copy_number = np.arange(len(index)) - np.repeat(np.cumsum(extra + 1) - (extra + 1), extra + 1)
    rows = rows.take(pa.array(index)).append_column(
        "upsample_copy", pa.array(copy_number.astype(np.int16))
    )
    rows = rows.append_column("split", pa.array(split[index]))
    rows = rows.sort_by([("example_id", "ascending"), ("upsample_copy", "ascending")])
    timings["plan"] = time.perf_counter() - start
    start = time.perf_counter()
    write_sorted(rows, split_paths(out))
    timings["write"] = time.perf_counter() - start
    return timings


def spark_engine(home: Path, out: Path, *, seed: int, max_tokens: int) -> dict:
    """``features.build`` as the CLI calls it: no session given, a fresh JVM."""
    from pria_ml import features
    from pria_ml.data.contract import features_key
    from pria_ml.data.splits import SPLITS
    from pria_ml.data.storage import open_storage

    built = features.build(settings_for(home), DATE, seed=seed, max_tokens=max_tokens)
    storage = open_storage(settings_for(home))
    for name, path in split_paths(out).items():
        key = built.manifest["files"][f"{name}.parquet"]["key"]
        shutil.copyfile(storage.path(key), path)
    assert set(SPLITS) == set(split_paths(out))
    storage.delete(features_key(DATE, "manifest.json"))
    return built.timings


def split_paths(out: Path) -> dict[str, Path]:
    from pria_ml.data.splits import SPLITS

    return {name: out / f"{name}.parquet" for name in SPLITS}


def child(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    raw_path = Path(args.home) / "storage" / "datasets" / DATE.isoformat() / "raw.parquet"
    options = {"seed": args.seed, "max_tokens": args.max_tokens}
    if args.engine == "spark":
        timings = spark_engine(Path(args.home), out, **options)
    elif args.engine == "polars":
        timings = polars_engine(raw_path, out, **options)
    else:
        timings = baseline_engine(raw_path, out, **options)
    print("TIMINGS " + json.dumps({k: round(v, 2) for k, v in timings.items()}))


# ---------------------------------------------------------------------------------------------
# The parent: rounds, peak RSS of each process tree, verification, the table


def run_engine(engine: str, home: Path, out: Path, args, env: dict | None = None) -> dict:
    """One engine in a fresh process; wall seconds and the peak RSS of its process tree."""
    import psutil

    command = [
        sys.executable,
        __file__,
        "--engine",
        engine,
        "--home",
        str(home),
        "--out",
        str(out),
        "--seed",
        str(args.seed),
        "--max-tokens",
        str(args.max_tokens),
    ]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    start = time.perf_counter()
    process = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, text=True)
    peak = 0
    tree = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            members = [tree, *tree.children(recursive=True)]
            peak = max(peak, sum(_rss(p) for p in members))
        except psutil.NoSuchProcess:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    output = process.stdout.read()
    if process.returncode:
        raise SystemExit(f"{engine} failed (exit {process.returncode}):\n{output}")
    timings = next(
        json.loads(line[len("TIMINGS ") :])
        for line in output.splitlines()
        if line.startswith("TIMINGS ")
    )
    return {"wall": wall, "rss": peak, "timings": timings}


def _rss(process) -> int:
    import psutil

    try:
        return process.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def digests(out: Path) -> dict[str, str]:
    from pria_ml.data.storage import sha256_file

    return {name: sha256_file(path) for name, path in split_paths(out).items()}


def standalone_cluster(work: Path):
    """A Spark master and one worker on loopback (the pyspark package's own launcher)."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_LOG_DIR": str(work / "logs"),
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": str(ROOT),
    }
    cls = str(spark_home / "bin" / "spark-class")
    master = subprocess.Popen(
        [
            cls,
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            "7077",
            "--webui-port",
            "0",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(4)
    worker = subprocess.Popen(
        [
            cls,
            "org.apache.spark.deploy.worker.Worker",
            "spark://127.0.0.1:7077",
            "--host",
            "127.0.0.1",
            "--webui-port",
            "0",
            "--cores",
            str(os.cpu_count()),
            "--work-dir",
            str(work / "worker"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(4)
    return [worker, master]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=4096)
    parser.add_argument("--override-rate", type=float, default=0.2)
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--standalone", action="store_true", help="one run on a loopback cluster")
    parser.add_argument("--tiny", action="store_true", help=f"{TINY_ROWS:,} rows, one round")
    parser.add_argument("--engine", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        child(args)
        return
    if args.tiny:
        # 30 % overrides: the seed picks the last copies, so the tiny run covers that path too
        args.rows, args.rounds, args.override_rate = [TINY_ROWS], 1, 0.3
    engines = list(args.engines)
    if "polars" in engines and not _has_polars():
        engines.remove("polars")
        print("polars is not installed (pip install 'pria-ml[perf]'): its engine is skipped")
    commit = (
        subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        or "unknown"
    )
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--", "pria_ml", "perf"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    master = os.environ.get("PRIA_SPARK_MASTER", "local[*]")
    print(f"commit {commit}{' (modified)' if dirty else ''}; command: {' '.join(sys.argv)}")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, spark master {master}")
    work = Path(tempfile.mkdtemp(prefix="pria-bench-features-"))
    try:
        for rows in args.rows:
            bench_size(work, rows, engines, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench_size(work: Path, rows: int, engines: list[str], args) -> None:
    home = work / f"home-{rows}"
    start = time.perf_counter()
    raw = write_raw(home, rows, args.seed, args.override_rate)
    print(
        f"\n{rows:,} raw rows: {raw.stat().st_size / 1e6:.0f} MB, written in "
        f"{time.perf_counter() - start:.0f} s"
    )
    results: dict[str, list[dict]] = {engine: [] for engine in engines}
    reference = None
    for round_number in range(args.rounds):
        order = engines[round_number % len(engines) :] + engines[: round_number % len(engines)]
        for engine in order:
            out = work / f"out-{rows}-{engine}-{round_number}"
            run = run_engine(engine, home, out, args)
            run["sha256"] = digests(out)
            shutil.rmtree(out)
            results[engine].append(run)
            reference = reference or (run["sha256"] if engine == "spark" else None)
            print(
                f"  round {round_number + 1} {engine:9} {run['wall']:6.1f} s "
                f"{run['rss'] / 2**30:5.2f} GB  {run['timings']}",
                flush=True,
            )
    reference = reference or results[engines[0]][0]["sha256"]
    same = {e: all(r["sha256"] == reference for r in runs) for e, runs in results.items()}
    best = min(statistics.median(r["wall"] for r in runs) for runs in results.values())
    print(
        f"\n| engine, {rows:,} rows | wall min / median | peak RSS (process tree) | "
        "median / best | splits equal to Spark's |"
    )
    print("|---|---|---|---|---|")
    for engine, runs in results.items():
        walls = [r["wall"] for r in runs]
        print(
            f"| {engine} | {min(walls):.1f} / {statistics.median(walls):.1f} s | "
            f"{max(r['rss'] for r in runs) / 2**30:.2f} GB | "
            f"{statistics.median(walls) / best:.2f} | {same[engine]} |"
        )
    if args.standalone:
        cluster = standalone_cluster(work)
        try:
            out = work / f"out-{rows}-standalone"
            run = run_engine(
                "spark",
                home,
                out,
                args,
                env={"PRIA_SPARK_MASTER": "spark://127.0.0.1:7077", "SPARK_LOCAL_IP": "127.0.0.1"},
            )
            equal = digests(out) == reference
            same["standalone"] = equal
            print(
                f"| spark standalone (master + worker on loopback) | {run['wall']:.1f} s | "
                f"{run['rss'] / 2**30:.2f} GB (driver tree) | | {equal} |"
            )
        finally:
            for process in cluster:
                process.terminate()
                process.wait(timeout=30)
    if not all(same.values()):
        raise SystemExit(f"outputs differ from Spark's: {same}")


def _has_polars() -> bool:
    try:
        import polars  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
