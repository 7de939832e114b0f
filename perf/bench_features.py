"""Benchmark build-features: Spark vs a single-process pyarrow/pandas run of the same logic.

    .venv/bin/python perf/bench_features.py [--rows 100000 1000000] [--seed 0]

For each size it generates raw.parquet synthetically (about 45 words of text per row, as the
extract writes it: zstd, one row group per 50k rows), then times

- ``features.build`` on the Spark session of ``PRIA_SPARK_MASTER`` (default local[*]), the
  session started once and warmed up by one tiny build; both fixed costs are reported on their
  own and counted in a second ratio;
- ``baseline``: the same rules in one Python process - pyarrow for I/O, the very same
  ``example_batch`` (tiktoken's batch encoder on all cores), pandas group-bys for the leakage
  rules, pyarrow's sort - ending in the same ``write_split``;

checks the two produced byte-identical split files, and prints rows/s, the Spark / baseline
ratio, where Spark's time went, and how each scales from the first size to the last.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pria_ml import features
from pria_ml.data import tokens
from pria_ml.data.contract import RAW_SCHEMA
from pria_ml.data.storage import sha256_file
from pria_ml.features import (
    CONFLICT_REASONS,
    PROMPT_CONFLICT,
    SPLITS,
    TRACE_CONFLICT,
    SplitWriter,
    copy_key,
    date_cut_points,
    example_batch,
    upsample_plan,
)
from pria_ml.settings import Settings

DATE = dt.date(2026, 11, 24)
WARM_UP_ROWS = 2_000
SYSTEM = (
    "You are PRIA, an expense assistant. Read the expense and the tool results, then answer "
    "with the category id and one short reason."
)
WORDS = np.array(
    [f"{a}{b}" for a in ("ta", "ro", "mi", "ke", "lu", "sa", "po", "ne") for b in range(250)]
)
MERCHANTS = np.array(["Uber", "Lufthansa", "Pret", "AWS", "Staples", "Hilton", "Shell", "Zoom"])


# The single-process baseline's own helpers (the Spark path does the same in its plan).
def remainder_threshold(keys: Iterable[str], remainder: int) -> str | None:
    """The largest copy key that still gets a remainder copy (None when none does)."""
    if remainder == 0:
        return None
    return sorted(keys)[remainder - 1]


def write_split(batches: Iterable[pa.RecordBatch], path: Path) -> int:
    """Write rows, already in their final order, as one split file; return the row count."""
    writer = SplitWriter(path)
    try:
        for batch in batches:
            writer.write(batch)
    finally:
        rows = writer.close()
    return rows


def synthetic_raw(rows: int, seed: int) -> pa.Table:
    """``rows`` raw rows over 60 days: traces of 1-3 events, 20 % overrides, some recurring
    prompts, a few traces crossing midnight."""
    rng = np.random.default_rng(seed)
    trace = np.sort(rng.integers(0, int(rows / 1.6), rows))
    step = np.arange(rows) - np.searchsorted(trace, trace)
    day = (trace * 60 // int(rows / 1.6)) + ((trace % 50 == 0) & (step > 0) & (trace < rows // 2))
    merchant = MERCHANTS[trace % len(MERCHANTS)]
    notes = [" ".join(ws) for ws in WORDS[rng.integers(0, len(WORDS), (rows, 24))]]
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
    overridden = rng.random(rows) < 0.2
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


def baseline(raw_path: Path, out: Path, *, seed: int, max_tokens: int) -> dict[str, Path]:
    """build-features' rules in one process, without Spark; returns the split files."""
    encoding = tokens.encoding()
    threads = os.cpu_count() or 1
    parquet = pq.ParquetFile(raw_path)
    examples = pa.Table.from_batches(
        [
            example_batch(batch, encoding, max_tokens=max_tokens, num_threads=threads)
            for batch in parquet.iter_batches(batch_size=50_000, columns=list(features.RAW_INPUT))
        ]
    )
    usable = examples.filter(pc.is_null(examples["drop_reason"]))
    narrow = usable.select(["example_id", "trace_id", "prompt_hash", "record_date", "reward"])
    frame = narrow.to_pandas()
    per_date = frame.groupby("record_date").size()
    cuts = date_cut_points(per_date.to_dict())
    dates = frame["record_date"].to_numpy()
    frame["split"] = np.where(dates <= cuts[0], 0, np.where(dates <= cuts[1], 1, 2))
    frame["conflict"] = None
    for key, reason in (("trace_id", TRACE_CONFLICT), ("prompt_hash", PROMPT_CONFLICT)):
        live = frame["conflict"].isna()
        first = frame[live].groupby(key)["split"].transform("min")
        frame.loc[live & (frame["split"] > first.reindex(frame.index)), "conflict"] = reason
    assert set(CONFLICT_REASONS) >= set(frame["conflict"].dropna())
    kept = frame["conflict"].isna().to_numpy()
    train = kept & (frame["split"].to_numpy() == 0)
    plan = upsample_plan(frame[train].groupby("reward").size().to_dict())
    copies = np.zeros(len(frame), dtype=np.int64)
    if plan.minority_reward is not None:
        minority = train & (frame["reward"].to_numpy() == plan.minority_reward)
        copies[minority] = plan.full_copies
        if plan.remainder:
            keys = np.array([copy_key(seed, i) for i in frame["example_id"][minority]])
            threshold = remainder_threshold(keys, plan.remainder)
            copies[np.flatnonzero(minority)[keys <= threshold]] += 1
    index = np.repeat(np.flatnonzero(kept), copies[kept] + 1)
    copy_number = np.arange(len(index)) - np.repeat(
        np.cumsum(copies[kept] + 1) - (copies[kept] + 1), copies[kept] + 1
    )
    rows = usable.take(pa.array(index)).append_column(
        "upsample_copy", pa.array(copy_number.astype(np.int16))
    )
    rows = rows.append_column("split", pa.array(frame["split"].to_numpy()[index]))
    rows = rows.sort_by([("example_id", "ascending"), ("upsample_copy", "ascending")])
    paths = {}
    for number, name in enumerate(SPLITS):
        paths[name] = out / f"{name}.parquet"
        split_rows = rows.filter(pc.equal(rows["split"], number))
        write_split(split_rows.to_batches(max_chunksize=features.ROW_GROUP_ROWS), paths[name])
    return paths


def write_raw(path: Path, rows: int, seed: int) -> float:
    """Write ``rows`` synthetic raw rows as extract does (zstd, 50k-row groups); chars/row."""
    table = synthetic_raw(rows, seed)
    pq.write_table(table, path, compression="zstd", row_group_size=50_000)
    contents = pc.struct_field(pc.list_flatten(table["prompt_messages"]), "content")
    return pc.sum(pc.utf8_length(contents)).as_py() / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from pria_ml.data.spark import session

    work = Path(tempfile.mkdtemp(prefix="pria-bench-features-"))
    settings = Settings(home=work / "home", storage_url=(work / "storage").as_uri())
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} cores, master {settings.spark_master}"
    )
    raw_path = work / "storage" / "datasets" / DATE.isoformat() / "raw.parquet"
    raw_path.parent.mkdir(parents=True)

    start = time.perf_counter()
    spark = session(settings, app_name="bench-features")
    spark_start = time.perf_counter() - start
    # The first job of a fresh JVM also pays for Python workers (imports, the encoding file),
    # JIT compilation and code generation: measured on a tiny input, reported apart.
    write_raw(raw_path, WARM_UP_ROWS, args.seed)
    start = time.perf_counter()
    features.build(settings, DATE, seed=args.seed, spark=spark)
    warm_up = time.perf_counter() - start
    fixed = spark_start + warm_up
    print(
        f"spark fixed costs: session start {spark_start:.1f} s + first job warm-up "
        f"{warm_up:.1f} s ({WARM_UP_ROWS:,} rows) = {fixed:.1f} s, paid once per run"
    )
    results = []
    for rows in args.rows:
        start = time.perf_counter()
        chars = write_raw(raw_path, rows, args.seed)
        print(
            f"\n{rows:,} raw rows generated in {time.perf_counter() - start:.1f} s "
            f"({raw_path.stat().st_size / 1e6:.0f} MB, {chars:.0f} chars/row)"
        )

        start = time.perf_counter()
        built = features.build(settings, DATE, seed=args.seed, spark=spark)
        spark_s = time.perf_counter() - start
        start = time.perf_counter()
        out = work / f"baseline-{rows}"
        out.mkdir()
        paths = baseline(raw_path, out, seed=args.seed, max_tokens=features.DEFAULT_MAX_TOKENS)
        base_s = time.perf_counter() - start
        same = all(
            sha256_file(paths[name]) == built.manifest["splits"][name]["sha256"] for name in SPLITS
        )
        results.append((rows, spark_s, base_s))
        phases = ", ".join(f"{name} {secs:.1f}" for name, secs in built.timings.items())
        print(f"  spark     {spark_s:6.1f} s  {rows / spark_s:9,.0f} rows/s   [{phases}]")
        print(f"  baseline  {base_s:6.1f} s  {rows / base_s:9,.0f} rows/s")
        print(
            f"  ratio baseline/spark {base_s / spark_s:.2f} (>1: Spark faster); with Spark's "
            f"fixed costs counted {base_s / (spark_s + fixed):.2f}; identical splits: {same}"
        )
        print(
            f"  examples written: {built.manifest['examples']:,}, drops {built.manifest['drops']}"
        )
    if len(results) > 1:
        (r0, s0, b0), (r1, s1, b1) = results[0], results[-1]
        print(
            f"\nscaling {r0:,} -> {r1:,} rows ({r1 / r0:.0f}x): spark time x{s1 / s0:.1f}, "
            f"baseline time x{b1 / b0:.1f}"
        )
    spark.stop()


if __name__ == "__main__":
    main()
