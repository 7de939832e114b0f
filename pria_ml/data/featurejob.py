"""build-features' Spark plan: the examples pass and the split plan, then the final pass.

Only necessary work, on one machine as on a cluster:

1. examples (Spark, parallel): ``mapInArrow`` over slices of raw.parquet (row groups), which
   the Python workers read themselves with pyarrow: handing the nested text columns over from
   the JVM cost more than tokenising them (measured: 30 - 58 s against 3 - 7 s for the same 1 M
   rows on two busy cores). One plain tokenising loop per batch (``examples.narrow_partition``);
   what comes back is narrow (ids, date, reward, token counts, prompt hash, drop reason, the
   row's index in raw.parquet), cached, never written.
2. plan (Spark on the cached narrow rows, no shuffle of train): counts per (drop reason, date,
   class) give the drops, the cut points and train's classes; the rows dated after the train
   cut (val and test, about a fifth) are collected, and train is only asked, through a
   broadcast semi-join with their trace and prompt keys, which of those keys it holds; the
   leakage decision is then taken on the driver (``splits.later_conflicts``); the copies of
   train's minority rows are counted by Spark (the last ones by the smallest ``sha2`` copy
   keys, a top-k) and collected with the routing columns.
3. route (driver): ``splits.write_splits`` reads the wide columns back from raw.parquet by row
   index and writes each split in ``(example_id, upsample_copy)`` order.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pria_ml.data import examples, splits
from pria_ml.data.examples import NARROW_DDL
from pria_ml.data.splits import CONFLICT_REASONS, SPLITS, UpsamplePlan, upsample_plan
from pria_ml.errors import DataError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class SplitResult:
    """The split files one build wrote, and the facts the dataset card reports about it."""

    split_paths: dict[str, Path]
    input_rows: int
    drops: dict[str, int]
    cuts: tuple[dt.date, dt.date]
    upsampling: UpsamplePlan


def warm_up(spark: SparkSession, encoding_file: str | None) -> None:
    """Start the Python workers and parse the encoding in each, so the examples pass does not
    wait for them (run while the driver downloads raw.parquet)."""
    cores = spark.sparkContext.defaultParallelism
    warm = functools.partial(_warm_partition, encoding_file=encoding_file)
    spark.sparkContext.parallelize(range(cores), cores).mapPartitions(warm).collect()


def _warm_partition(rows, *, encoding_file: str | None):
    yield examples.warm_worker(encoding_file)


def run(
    spark: SparkSession,
    raw_path: Path,
    tmp: Path,
    *,
    seed: int,
    max_tokens: int,
    encoding_file: str | None,
    timings: dict[str, float],
) -> SplitResult:
    """Build the three split files of ``raw_path`` under ``tmp``.

    Raises:
        DataError: fewer than three usable dates, one reward class, a split left empty, or
            ``(trace_id, event_id)`` repeated.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    # 1. examples: tokenise and hash once, in parallel; only narrow columns come back.
    start = time.perf_counter()
    parallelism = spark.sparkContext.defaultParallelism
    meta = pq.ParquetFile(raw_path).metadata
    units = examples.read_units(
        [meta.row_group(g).num_rows for g in range(meta.num_row_groups)], 2 * parallelism
    )
    tokenise = functools.partial(
        examples.narrow_partition,
        raw_path=str(raw_path),
        units=units,
        max_tokens=max_tokens,
        encoding_file=encoding_file,
    )
    # Two tasks per core: a core slowed by a neighbour hands its share to the other.
    raw = spark.range(len(units), numPartitions=min(len(units), 2 * parallelism))
    narrow = raw.mapInArrow(tokenise, NARROW_DDL).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        counts = narrow.groupBy("drop_reason", "record_date", "reward").count().collect()
        timings["examples"] = time.perf_counter() - start

        # 2. plan
        start = time.perf_counter()
        drops: dict[str, int] = {}
        rows_per_date: dict[dt.date, int] = {}
        by_date_class: dict[tuple[dt.date, float], int] = {}
        input_rows = 0
        for row in counts:
            input_rows += row["count"]
            if row["drop_reason"] is not None:
                drops[row["drop_reason"]] = drops.get(row["drop_reason"], 0) + row["count"]
                continue
            date = row["record_date"]
            rows_per_date[date] = rows_per_date.get(date, 0) + row["count"]
            by_date_class[(date, row["reward"])] = row["count"]
        _check_classes({reward for _, reward in by_date_class}, input_rows, drops)
        cuts = splits.date_cut_points(rows_per_date)
        split = (
            F.when(F.col("record_date") <= F.lit(cuts[0]), 0)
            .when(F.col("record_date") <= F.lit(cuts[1]), 1)
            .otherwise(2)
        )
        usable = narrow.where(F.col("drop_reason").isNull())
        later_rows = usable.where(F.col("record_date") > F.lit(cuts[0]))
        train_rows = usable.where(F.col("record_date") <= F.lit(cuts[0]))
        later = later_rows.select(
            "example_id", "trace_id", "prompt_hash", "reward", split.cast("byte").alias("split")
        ).toArrow()
        # Which of the later rows' traces and prompts train holds: train is only filtered
        # against the broadcast keys, never shuffled (repeats are harmless: is_in below).
        held = (
            train_rows.select(F.lit("trace").alias("kind"), F.col("trace_id").alias("key"))
            .join(
                F.broadcast(later_rows.select(F.col("trace_id").alias("key"))),
                "key",
                "left_semi",
            )
            .unionByName(
                train_rows.select(
                    F.lit("prompt").alias("kind"), F.col("prompt_hash").alias("key")
                ).join(
                    F.broadcast(later_rows.select(F.col("prompt_hash").alias("key"))),
                    "key",
                    "left_semi",
                )
            )
            .toArrow()
        )
        is_trace = pc.equal(held["kind"], "trace")
        reasons = splits.later_conflicts(
            later,
            pc.filter(held["key"], is_trace).combine_chunks(),
            pc.filter(held["key"], pc.invert(is_trace)).combine_chunks(),
        )
        for reason in CONFLICT_REASONS:
            drops[reason] = int(np.count_nonzero(reasons == reason))
        kept_later = later.filter(pa.array(np.equal(reasons, None)))
        train_by_class = {0.0: 0, 1.0: 0}
        for (date, reward), count in by_date_class.items():
            if date <= cuts[0]:
                train_by_class[reward] += count
        kept = {
            "train": sum(train_by_class.values()),
            "val": int(pc.sum(pc.equal(kept_later["split"], 1)).as_py() or 0),
            "test": int(pc.sum(pc.equal(kept_later["split"], 2)).as_py() or 0),
        }
        for name in SPLITS:
            if not kept[name]:
                raise DataError(
                    f"the {name} split is empty after the leakage rules (every example shares "
                    f"a trace or prompt with an earlier split); drops: {drops}"
                )
        plan = upsample_plan(train_by_class)
        in_train = F.col("drop_reason").isNull() & (F.col("record_date") <= F.lit(cuts[0]))
        extra = F.lit(0)
        if plan.minority_reward is not None:
            minority = in_train & (F.col("reward") == F.lit(plan.minority_reward))
            extra = F.when(minority, F.lit(plan.full_copies)).otherwise(0)
            if plan.remainder:
                # The last copies go to the minority rows with the smallest copy keys
                # (splits.copy_key): orderBy + limit, collected, is a top-k per partition.
                key = F.sha2(F.concat(F.lit(f"{seed}:"), F.col("example_id")), 256)
                smallest = narrow.where(minority).select(key.alias("key")).orderBy("key")
                threshold = pc.max(smallest.limit(plan.remainder).toArrow()["key"]).as_py()
                extra = extra + F.when(minority & (key <= F.lit(threshold)), 1).otherwise(0)
        routed = narrow.select(
            "example_id",
            "row",
            F.when(F.col("drop_reason").isNull(), split).cast("byte").alias("split"),
            extra.cast("short").alias("extra"),
            "prompt_tokens",
            "completion_tokens",
        ).toArrow()
    finally:
        narrow.unpersist()
    try:
        splits.check_unique(routed["example_id"])
    except DataError as exc:
        raise DataError(
            f"raw.parquet repeats (trace_id, event_id): {exc}; extract must write one row "
            "per workflow_event"
        ) from None
    conflicted = pc.filter(later["example_id"], pa.array(np.not_equal(reasons, None)))
    keep = pc.and_(
        pc.is_valid(routed["split"]), pc.invert(pc.is_in(routed["example_id"], conflicted))
    )
    routed = routed.filter(keep)
    routing = splits.routing_table(
        routed["example_id"],
        routed["row"].to_numpy(),
        routed["split"].to_numpy(),
        routed["extra"].to_numpy(),
        routed["prompt_tokens"],
        routed["completion_tokens"],
    )
    timings["plan"] = time.perf_counter() - start

    # 3. route: one pass in example_id order writes the three split files.
    start = time.perf_counter()
    split_paths = {name: tmp / f"{name}.parquet" for name in SPLITS}
    splits.write_splits(raw_path, routing, split_paths)
    timings["route"] = time.perf_counter() - start
    return SplitResult(split_paths, input_rows, drops, cuts, plan)


def _check_classes(flags: set[float], rows: int, drops: dict[str, int]) -> None:
    if not flags:
        raise DataError(f"none of the {rows} raw rows is a usable example; drops: {dict(drops)}")
    if len(flags) == 1:
        only = flags.pop() == 0.0  # reward 0 = overridden
        raise DataError(
            f"every usable example has override_flag={str(only).lower()} (reward "
            f"{0 if only else 1}): one reward class cannot be balanced or evaluated; check "
            "extract's override_flag mapping"
        )
