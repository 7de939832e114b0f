"""build-features: raw.parquet -> train / val / test training examples and a dataset card.

Reads ``datasets/D/raw.parquet`` (docs/data-contract.md) and writes
``datasets/D/features/{train,val,test}.parquet`` plus ``datasets/D/features/manifest.json``.
The run, in order (docs/features.md explains each rule):

1. stage: download raw.parquet to a local temp dir and check its schema (Spark has no S3
   connector offline, so every byte moves through ``pria_ml.data.storage``); a Spark session
   this stage starts itself starts meanwhile, in the background;
2. examples, plan, route (``pria_ml.data.featurejob``): Spark tokenises and hashes every raw row
   (``pria_ml.data.examples``) and computes the split plan on narrow columns - date cut points
   80 / 10 / 10, a trace and an identical prompt belong to the first split they appear in,
   train's minority reward class up-sampled to at most 3x by seed (``pria_ml.data.splits``);
   one pass on the driver writes each split in (example_id, upsample_copy) order with fixed
   row groups, so the same input and seed give the same bytes;
3. publish: the splits are uploaded under a new generation key
   (``datasets/D/features/<generation>/<split>.parquet``), then the manifest is replaced: the
   manifest write is the switch, so a reader sees the old set or the new one, never a mix. A
   features set is complete exactly when its manifest exists and the splits match its sha256s
   (``contract.manifest_complete``); readers find the splits through the manifest.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import clock
from pria_ml.data import contract, featurejob, provenance, tokens
from pria_ml.data.contract import (
    dataset_key,
    features_key,
    manifest_complete,
    read_manifest,
    read_verified,
    write_manifest,
)
from pria_ml.data.examples import DEFAULT_MAX_TOKENS, DROP_REASONS
from pria_ml.data.spark import session
from pria_ml.data.splits import (
    CONFLICT_REASONS,
    DEFAULT_SEED,
    MAX_UPSAMPLE,
    SPLIT_FRACTIONS,
    SPLITS,
    UpsamplePlan,
)
from pria_ml.data.storage import open_storage, sha256_file
from pria_ml.data.tokens import CL100K_SHA256, ENCODING_NAME
from pria_ml.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from pria_ml.settings import Settings

TOKEN_PERCENTILES = (50, 90, 95, 99)


@dataclass
class FeatureBuild:
    """What build-features wrote: the dataset card and where the time went (seconds)."""

    date: dt.date
    manifest: dict[str, Any]
    manifest_uri: str
    timings: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Entry point


def build(
    settings: Settings,
    date: dt.date,
    *,
    seed: int = DEFAULT_SEED,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    encoding_file: str | None = None,
    spark: SparkSession | None = None,
    now: dt.datetime | None = None,
) -> FeatureBuild:
    """Build the train / val / test examples of ``date`` and publish them with their card.

    Args:
        settings: storage and Spark settings.
        date: the dataset date ``D`` (``YYYY-MM-DD``); reads ``datasets/D/raw.parquet``.
        seed: picks which minority rows get the last up-sampled copies (same seed, same bytes).
        max_tokens: examples longer than this (prompt + completion, cl100k_base tokens) are
            dropped and counted as ``over_length``.
        encoding_file: a ``cl100k_base.tiktoken`` ranks file; default the one shipped with
            pria-ml.
        spark: a running session to use (tests share one); default: the process's active
            session, else one started from settings while raw.parquet downloads (its Python
            workers warmed up meanwhile) and stopped at the end.
        now: the card's ``built_at`` (default: the real clock).

    Returns:
        The manifest that was published and the time spent in each phase.

    Raises:
        DataError: raw.parquet is missing, has the wrong schema, or cannot be split (fewer than
            three usable dates, one reward class, a split left empty, duplicate events).
        EncodingMissing: the tiktoken ranks file is missing or altered.
        StorageError: storage refused a read or write.

    Nothing under ``datasets/D/features/`` is replaced unless every split was built.
    """
    if max_tokens < 1:
        raise DataError(f"max_tokens must be positive, got {max_tokens}")
    storage = open_storage(settings)
    raw_manifest_key = dataset_key(date, "manifest.json")
    if read_manifest(storage, raw_manifest_key) is None:
        raise DataError(
            f"raw.parquet of {date} is not complete: {storage.uri(raw_manifest_key)} does not "
            f"exist; run `pria-ml extract --date {date}` first"
        )
    tokens.encoding(encoding_file)  # fail before Spark starts if the encoding is missing
    timings: dict[str, float] = {}
    starting = None
    if spark is None:
        from pyspark.sql import SparkSession

        # A session already running in this process (a notebook, the nightly chain) is used
        # and left running; one started here starts while raw.parquet downloads, and is
        # stopped here.
        spark = SparkSession.getActiveSession()
        if spark is None:
            starting = _start_session(settings, f"pria-ml build-features {date}", encoding_file)
    with tempfile.TemporaryDirectory(prefix="pria-features-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            start = time.perf_counter()
            raw_path, raw_sha256 = read_verified(storage, raw_manifest_key, "raw.parquet", tmp)
            check_raw_schema(raw_path)
            timings["download"] = time.perf_counter() - start
            start = time.perf_counter()
            if starting is not None:
                spark = starting.result()
            timings["spark_start"] = time.perf_counter() - start
            engine = {
                "name": "spark",
                "version": spark.version,
                "master": spark.sparkContext.master,
            }
            result = featurejob.run(
                spark,
                raw_path,
                tmp,
                seed=seed,
                max_tokens=max_tokens,
                encoding_file=encoding_file,
                timings=timings,
            )
        finally:
            if starting is not None:
                starting.result().stop()

        start = time.perf_counter()
        manifest = dataset_card(
            date=date,
            split_paths=result.split_paths,
            input_rows=result.input_rows,
            input_sha256=raw_sha256,
            drops=result.drops,
            cuts=result.cuts,
            upsampling=result.upsampling,
            seed=seed,
            max_tokens=max_tokens,
            engine=engine,
            generation=new_generation(),
            built_at=clock.now(now),
        )
        timings["card"] = time.perf_counter() - start
        start = time.perf_counter()
        manifest_uri = publish(storage, date, result.split_paths, manifest)
        timings["upload"] = time.perf_counter() - start
    return FeatureBuild(date=date, manifest=manifest, manifest_uri=manifest_uri, timings=timings)


def _start_session(settings: Settings, app_name: str, encoding_file: str | None) -> Future:
    """Start a SparkSession and warm its Python workers in a background thread."""

    def start() -> SparkSession:
        spark = session(settings, app_name=app_name)
        featurejob.warm_up(spark, encoding_file)
        return spark

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-start")
    try:
        return pool.submit(start)
    finally:
        pool.shutdown(wait=False)


# ---------------------------------------------------------------------------------------------
# Input


def check_raw_schema(path: Path) -> int:
    """Check raw.parquet against docs/data-contract.md; return its row count.

    Extra columns are allowed; ``large_string`` / ``large_list`` count as their plain kinds.

    Raises:
        DataError: naming each missing or mistyped column.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise DataError(f"raw.parquet is not a readable Parquet file: {exc}") from None
    schema = parquet.schema_arrow
    problems = []
    for expected in contract.RAW_SCHEMA:
        if expected.name not in schema.names:
            problems.append(f"missing column {expected.name!r} ({expected.type})")
            continue
        actual = schema.field(expected.name).type
        if _plain(actual) != expected.type:
            problems.append(f"column {expected.name!r} is {actual}, expected {expected.type}")
    if problems:
        raise DataError(
            "raw.parquet does not follow docs/data-contract.md: "
            + "; ".join(problems)
            + " (re-run extract)"
        )
    rows = parquet.metadata.num_rows
    if rows == 0:
        raise DataError("raw.parquet has no rows: nothing to build (check extract's manifest)")
    return rows


def _plain(kind: pa.DataType) -> pa.DataType:
    """``kind`` with large strings / lists replaced by the plain ones the contract names."""
    import pyarrow as pa

    if pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_list_view(kind):
        return pa.list_(_plain_field(kind.value_field))
    if pa.types.is_struct(kind):
        return pa.struct([_plain_field(kind.field(i)) for i in range(kind.num_fields)])
    return kind


def _plain_field(item: pa.Field) -> pa.Field:
    import pyarrow as pa

    return pa.field(item.name, _plain(item.type))


# ---------------------------------------------------------------------------------------------
# The dataset card and publishing


def dataset_card(
    *,
    date: dt.date,
    split_paths: Mapping[str, Path],
    input_rows: int,
    input_sha256: str,
    drops: Mapping[str, int],
    cuts: tuple[dt.date, dt.date],
    upsampling: UpsamplePlan,
    seed: int,
    max_tokens: int,
    engine: dict[str, str],
    generation: str,
    built_at: dt.datetime,
) -> dict[str, Any]:
    """The manifest: what is in each split, read back from the split files themselves.

    The splits of this build are stored under ``datasets/D/features/<generation>/``; the
    manifest's ``files`` section is what ``contract.manifest_complete`` checks.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    splits = {}
    for name in SPLITS:
        path = split_paths[name]
        table = pq.read_table(
            path,
            columns=[
                "record_date",
                "reward",
                "prompt_tokens",
                "completion_tokens",
                "upsample_copy",
            ],
        )
        original = pc.equal(table["upsample_copy"], 0)
        natural = table.filter(original)
        dates = pc.unique(natural["record_date"]).to_pylist()
        prompt = natural["prompt_tokens"].to_numpy()
        completion = natural["completion_tokens"].to_numpy()
        splits[name] = {
            "key": features_key(date, f"{generation}/{name}.parquet"),
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "rows": table.num_rows,
            "dates": {
                "first": min(dates).isoformat(),
                "last": max(dates).isoformat(),
                "count": len(dates),
                "list": sorted(d.isoformat() for d in dates),
            },
            "rows_by_class_before_upsampling": _by_class(natural["reward"]),
            "rows_by_class_after_upsampling": _by_class(table["reward"]),
            "tokens": {
                "prompt": _percentiles(prompt),
                "completion": _percentiles(completion),
                "total": _percentiles(prompt + completion),
            },
        }
    return {
        "date": date.isoformat(),
        "built_at": built_at.isoformat(timespec="seconds"),
        "code_version": code_version(),
        "generation": generation,
        "files": {
            f"{name}.parquet": {k: split[k] for k in ("key", "sha256", "bytes")}
            for name, split in splits.items()
        },
        "input": {
            "key": dataset_key(date, "raw.parquet"),
            "sha256": input_sha256,
            "rows": input_rows,
        },
        "examples": sum(s["rows"] for s in splits.values()),
        "splits": splits,
        "drops": {reason: int(drops.get(reason, 0)) for reason in DROP_REASONS + CONFLICT_REASONS},
        "rules": {
            "completion": "corrected_output if override_flag else agent_output",
            "reward": "1 - override_flag",
            "split": {
                "by": "record_date",
                "fractions": list(SPLIT_FRACTIONS),
                "train_last_date": cuts[0].isoformat(),
                "val_last_date": cuts[1].isoformat(),
                "conflicts": "a trace or identical prompt stays in the first split it appears in",
            },
            "max_tokens": max_tokens,
            "over_length": "dropped (prompt_tokens + completion_tokens > max_tokens)",
            "upsampling": {
                "split": "train",
                "cap": MAX_UPSAMPLE,
                "seed": seed,
                "minority_reward": upsampling.minority_reward,
                "minority_rows": upsampling.minority_rows,
                "majority_rows": upsampling.majority_rows,
                "extra_rows": upsampling.extra_rows,
            },
        },
        "tokenizer": {"name": ENCODING_NAME, "library": "tiktoken", "sha256": CL100K_SHA256},
        "engine": engine,
    }


def _by_class(reward: pa.ChunkedArray) -> dict[str, int]:
    import pyarrow.compute as pc

    overridden = int(pc.sum(pc.equal(reward, 0.0)).as_py() or 0)
    return {"reward_0": overridden, "reward_1": len(reward) - overridden}


def _percentiles(values: np.ndarray) -> dict[str, int]:
    import numpy as np

    if len(values) == 0:
        return {}
    shown = {f"p{q}": int(np.percentile(values, q, method="higher")) for q in TOKEN_PERCENTILES}
    return {**shown, "max": int(values.max()), "mean": round(float(values.mean()), 2)}


def code_version() -> str:
    """Package version plus a hash of the code that decides what a features set contains."""
    return provenance.code_version(
        [
            "features.py",
            "data/examples.py",
            "data/splits.py",
            "data/featurejob.py",
            "data/tokens.py",
            "data/contract.py",
        ]
    )


def new_generation() -> str:
    """A fresh name for one build's files: ``<UTC time>-<random>``, on the real clock (easy to
    tell apart when listing storage; pruning does not rely on their order)."""
    return f"{clock.system():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


def publish(storage, date: dt.date, split_paths: Mapping[str, Path], manifest: dict) -> str:
    """Upload the splits under the manifest's generation, then switch the manifest; return its
    URI.

    Files of the new build never replace files a manifest vouches for, and the manifest is
    replaced in one atomic write, so a reader sees the previous build or this one, never a mix.
    Afterwards every generation but this one and the previous one is deleted (the previous one
    stays for a reader that read the old manifest a moment ago). Which ones those are is read
    from the two manifests, not from the names: a clock that went back cannot delete this build.
    """
    manifest_key = features_key(date, "manifest.json")
    previous = read_manifest(storage, manifest_key) or {}
    for name in SPLITS:
        storage.upload(split_paths[name], manifest["files"][f"{name}.parquet"]["key"])
    uri = write_manifest(storage, manifest_key, manifest)
    _prune_generations(storage, date, keep=[manifest, previous])
    return uri


def publish_tables(storage, date: dt.date, tables: Mapping[str, pa.Table]) -> str:
    """Publish ready-made split tables (``{"train": table, ...}``) as the features set of
    ``date``, with a manifest listing only the files: for tests and demos that build their
    examples without Spark. Return the manifest's URI."""
    import pyarrow.parquet as pq

    generation = new_generation()
    with tempfile.TemporaryDirectory(prefix="pria-features-") as scratch:
        paths, files = {}, {}
        for name in SPLITS:
            paths[name] = Path(scratch, f"{name}.parquet")
            pq.write_table(tables[name], paths[name], compression="zstd")
            files[f"{name}.parquet"] = {
                "key": features_key(date, f"{generation}/{name}.parquet"),
                "sha256": sha256_file(paths[name]),
                "bytes": paths[name].stat().st_size,
            }
        manifest = {
            "date": date.isoformat(),
            "code_version": code_version(),
            "generation": generation,
            "files": files,
        }
        return publish(storage, date, paths, manifest)


def _prune_generations(storage, date: dt.date, *, keep: list[dict]) -> None:
    """Delete the files of every generation of ``date`` that no manifest in ``keep`` names."""
    prefix = features_key(date, "")

    def generation(key: str) -> str | None:
        relative = key[len(prefix) :] if key.startswith(prefix) else ""
        return relative.split("/", 1)[0] if "/" in relative else None

    kept = {
        generation(entry.get("key", ""))
        for manifest in keep
        for entry in (manifest.get("files") or {}).values()
        if isinstance(entry, dict)
    }
    for key in storage.list(prefix):
        name = generation(key)
        if name is not None and name not in kept:
            storage.delete(key)


def complete(settings: Settings, date: dt.date) -> bool:
    """Whether the features of ``date`` are complete and built from the current raw.parquet:
    the manifest exists, each split matches its sha256, and the raw.parquet it was built from
    is the one extract's manifest vouches for now (a re-extract makes the features stale)."""
    storage = open_storage(settings)
    manifest_key = features_key(date, "manifest.json")
    manifest = read_manifest(storage, manifest_key)
    raw = read_manifest(storage, dataset_key(date, "manifest.json"))
    if manifest is None or raw is None:
        return False
    built_from = manifest.get("input", {}).get("sha256")
    if built_from != raw["files"]["raw.parquet"]["sha256"]:
        return False
    return manifest_complete(storage, manifest_key)
