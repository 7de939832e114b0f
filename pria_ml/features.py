"""build-features: raw.parquet -> train / val / test training examples and a dataset card.

Reads ``datasets/D/raw.parquet`` (docs/data-contract.md) and writes
``datasets/D/features/{train,val,test}.parquet`` plus ``datasets/D/features/manifest.json``.
The run, in order (docs/features.md explains each rule):

1. stage: download raw.parquet to a local temp dir and check its schema (Spark has no S3
   connector offline, so every byte moves through ``pria_ml.data.storage``);
2. examples: one Spark pass (``mapInArrow``) turns each event into a prompt / completion example,
   counts tiktoken tokens, hashes the prompt and marks rows to drop (empty text, over-long);
   each part is sorted by example_id;
3. plan (Spark, narrow columns): date cut points 80 / 10 / 10 over the usable rows; a trace,
   and an identical prompt, belong to the first split they appear in and are dropped from later
   ones; the minority reward class of train only is up-sampled to at most 3x, by seed;
4. route: one streaming pass on the driver merges the sorted parts and writes each split as
   one Parquet file in (example_id, upsample_copy) order with fixed row groups, so the same
   input and seed give the same bytes;
5. publish: the splits are uploaded under a new generation key
   (``datasets/D/features/<generation>/<split>.parquet``), then the manifest is replaced: the
   manifest write is the switch, so a reader sees the old set or the new one, never a mix. A
   features set is complete exactly when its manifest exists and the splits match its sha256s
   (``contract.manifest_complete``); readers find the splits through the manifest.

The per-batch example logic, the cut points, the up-sampling plan, the split writer and the
dataset card are plain functions shared with the single-process baseline in
perf/bench_features.py, which must write the same bytes.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import clock
from pria_ml.data import contract, provenance, tokens
from pria_ml.data.contract import (
    dataset_key,
    features_key,
    manifest_complete,
    read_manifest,
    read_verified,
    write_manifest,
)
from pria_ml.data.spark import session
from pria_ml.data.storage import open_storage, sha256_file
from pria_ml.data.tokens import CL100K_SHA256, ENCODING_NAME, count_tokens
from pria_ml.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import tiktoken
    from pyspark.sql import DataFrame, SparkSession

    from pria_ml.settings import Settings

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MAX_UPSAMPLE = 3  # the minority class ends with at most 3x its natural rows (spec 3.3)
DEFAULT_MAX_TOKENS = 4096  # prompt + completion, in cl100k_base tokens
DEFAULT_SEED = 0
ROW_GROUP_ROWS = 32_768
SORT_KEY = ("example_id", "upsample_copy")  # the row order of every split file
TOKEN_PERCENTILES = (50, 90, 95, 99)


# The raw columns this stage reads; the others are checked, not used.
RAW_INPUT = (
    "event_id",
    "trace_id",
    "record_date",
    "override_flag",
    "prompt_messages",
    "agent_output",
    "corrected_output",
)


# What the example pass produces per raw row: the feature columns before up-sampling, plus
# the prompt's hash (for the no-identical-prompt rule) and why the row is dropped, if it is.
@functools.cache
def example_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [f for f in contract.FEATURE_SCHEMA if f.name != "upsample_copy"]
        + [pa.field("prompt_hash", pa.string()), pa.field("drop_reason", pa.string())]
    )


EXAMPLE_DDL = (
    "example_id string, trace_id string, record_date date, "
    "prompt array<struct<role:string,content:string>>, completion string, "
    "override_flag boolean, reward float, prompt_tokens int, completion_tokens int, "
    "prompt_hash string, drop_reason string"
)

# Why a raw row is not an example, in order of precedence (a row gets the first that applies).
MISSING_KEY = "missing_key_field"  # trace_id, event_id, record_date or override_flag is null
EMPTY_PROMPT = "empty_prompt"  # no message with non-blank content
EMPTY_COMPLETION = "empty_completion"  # the approved action is null or blank
OVER_LENGTH = "over_length"  # prompt_tokens + completion_tokens > max_tokens
# Why a usable example is left out of its date's split (leakage rules).
TRACE_CONFLICT = "trace_in_earlier_split"
PROMPT_CONFLICT = "prompt_in_earlier_split"
DROP_REASONS = (MISSING_KEY, EMPTY_PROMPT, EMPTY_COMPLETION, OVER_LENGTH)
CONFLICT_REASONS = (TRACE_CONFLICT, PROMPT_CONFLICT)


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
        spark: a running session to use (tests share one); default starts one from settings
            and stops it at the end.
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
    with tempfile.TemporaryDirectory(prefix="pria-features-") as tmp_name:
        tmp = Path(tmp_name)
        start = time.perf_counter()
        raw_path, raw_sha256 = read_verified(storage, raw_manifest_key, "raw.parquet", tmp)
        check_raw_schema(raw_path)
        timings["download"] = time.perf_counter() - start

        start = time.perf_counter()
        own_session = False
        if spark is None:
            from pyspark.sql import SparkSession

            # A session already running in this process (a notebook, the nightly chain) is
            # used and left running; one started here is stopped here.
            spark = SparkSession.getActiveSession()
            if spark is None:
                spark = session(settings, app_name=f"pria-ml build-features {date}")
                own_session = True
        timings["spark_start"] = time.perf_counter() - start
        engine = {"name": "spark", "version": spark.version, "master": spark.sparkContext.master}
        try:
            result = _run_spark(
                spark,
                raw_path,
                tmp,
                seed=seed,
                max_tokens=max_tokens,
                encoding_file=encoding_file,
                timings=timings,
            )
        finally:
            if own_session:
                spark.stop()

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
# Pure logic shared with the single-process baseline


def example_batch(
    batch: pa.RecordBatch,
    encoding: tiktoken.Encoding,
    *,
    max_tokens: int,
    num_threads: int = 1,
) -> pa.RecordBatch:
    """Raw rows -> example rows (``example_schema()``), one for one, with drop reasons marked.

    completion = corrected_output if override_flag else agent_output; reward = 1 -
    override_flag; prompt_tokens = the tiktoken tokens of every message's content, summed;
    completion_tokens = those of the completion. Equal texts in a batch are encoded once.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = batch.num_rows
    override = batch.column("override_flag")
    override_np = pc.fill_null(override, False).to_numpy(zero_copy_only=False)
    completion = pc.if_else(
        pa.array(override_np), batch.column("corrected_output"), batch.column("agent_output")
    ).cast(pa.string())
    prompt = batch.column("prompt_messages").cast(contract.PROMPT)

    messages = pc.list_flatten(prompt)
    parents = pc.list_parent_indices(prompt).to_numpy()
    role = pc.fill_null(pc.struct_field(messages, "role"), "")
    content = pc.fill_null(pc.struct_field(messages, "content"), "")

    message_tokens = _token_counts(content, encoding, num_threads)
    prompt_tokens = np.bincount(parents, weights=message_tokens, minlength=rows)
    completion_tokens = _token_counts(pc.fill_null(completion, ""), encoding, num_threads)
    has_text = np.bincount(parents, weights=_nonblank(content), minlength=rows) > 0

    # One string per prompt: role US content, messages joined by RS; its hash identifies the
    # prompt for the no-identical-prompt-in-two-splits rule.
    per_message = pc.binary_join_element_wise(role, content, "\x1f")
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents, minlength=rows), out=offsets[1:])
    canonical = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), per_message), "\x1e")
    prompt_hash = [_digest(text) for text in canonical.to_pylist()]

    trace_id = batch.column("trace_id")
    event_id = batch.column("event_id")
    example_id = [
        _digest(f"{trace}\x1f{event}")
        for trace, event in zip(
            pc.fill_null(trace_id, "").to_pylist(),
            pc.fill_null(event_id, "").to_pylist(),
            strict=True,
        )
    ]

    drop = np.full(rows, None, dtype=object)
    drop[prompt_tokens + completion_tokens > max_tokens] = OVER_LENGTH
    drop[~_nonblank(completion)] = EMPTY_COMPLETION
    drop[~has_text] = EMPTY_PROMPT
    key_missing = np.zeros(rows, dtype=bool)
    for name in ("trace_id", "event_id", "record_date", "override_flag"):
        key_missing |= batch.column(name).is_null().to_numpy(zero_copy_only=False)
    drop[key_missing] = MISSING_KEY

    return pa.RecordBatch.from_arrays(
        [
            pa.array(example_id, pa.string()),
            trace_id.cast(pa.string()),
            batch.column("record_date"),
            prompt,
            completion,
            override,
            pa.array(np.where(override_np, 0.0, 1.0).astype(np.float32)),
            pa.array(prompt_tokens.astype(np.int32)),
            pa.array(completion_tokens.astype(np.int32)),
            pa.array(prompt_hash, pa.string()),
            pa.array(drop, pa.string()),
        ],
        schema=example_schema(),
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _nonblank(texts: pa.Array) -> np.ndarray:
    import pyarrow.compute as pc

    length = pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(texts, "")))
    return pc.greater(length, 0).to_numpy(zero_copy_only=False)


def _token_counts(texts: pa.Array, encoding: tiktoken.Encoding, num_threads: int) -> np.ndarray:
    # System prompts and tool schemas repeat across rows: encode each distinct text once.
    import numpy as np

    values = texts.to_pylist()
    position = {text: i for i, text in enumerate(dict.fromkeys(values))}
    counts = np.asarray(count_tokens(list(position), encoding, num_threads=num_threads), np.int64)
    return counts[np.fromiter((position[text] for text in values), np.int64, len(values))]


def date_cut_points(
    rows_per_date: Mapping[dt.date, int], fractions: tuple[float, ...] = SPLIT_FRACTIONS
) -> tuple[dt.date, dt.date]:
    """The last date of train and the last date of val.

    Dates are ordered; each cut goes to the date boundary whose cumulative row count is nearest
    its target (80 %, then 90 % of all rows; ties go to the earlier date), keeping at least one
    date for each later split. So every date is in exactly one split.

    Raises:
        DataError: fewer than three dates have usable rows.
    """
    import numpy as np

    dates = sorted(d for d, n in rows_per_date.items() if n > 0)
    if len(dates) < len(SPLITS):
        shown = ", ".join(d.isoformat() for d in dates) or "none"
        raise DataError(
            f"cannot split by record_date: {len(dates)} date(s) with usable rows ({shown}); "
            f"train / val / test need at least {len(SPLITS)} distinct dates"
        )
    cumulative = np.cumsum([rows_per_date[d] for d in dates])
    total = cumulative[-1]
    train_target = fractions[0] * total
    val_target = (fractions[0] + fractions[1]) * total
    train_end = min(range(len(dates) - 2), key=lambda i: abs(cumulative[i] - train_target))
    val_end = min(
        range(train_end + 1, len(dates) - 1), key=lambda i: abs(cumulative[i] - val_target)
    )
    return dates[train_end], dates[val_end]


@dataclass(frozen=True)
class UpsamplePlan:
    """How the minority reward class of train is up-sampled.

    Every minority row gets ``full_copies`` extra copies, and the ``remainder`` rows with the
    smallest ``copy_key`` one more; the class grows to min(majority, 3 x minority) rows.
    """

    minority_reward: float | None
    minority_rows: int
    majority_rows: int
    full_copies: int
    remainder: int

    @property
    def extra_rows(self) -> int:
        return self.full_copies * self.minority_rows + self.remainder


def upsample_plan(train_rows_by_reward: Mapping[float, int]) -> UpsamplePlan:
    """The up-sampling of train for its rows per reward class (natural, before up-sampling)."""
    counts = {reward: train_rows_by_reward.get(reward, 0) for reward in (0.0, 1.0)}
    minority = min(counts, key=lambda r: (counts[r], r))
    majority = 1.0 - minority
    m, big = counts[minority], counts[majority]
    if m == 0 or m == big:
        return UpsamplePlan(None, m, big, 0, 0)
    extra = min(big, MAX_UPSAMPLE * m) - m
    return UpsamplePlan(minority, m, big, extra // m, extra % m)


def copy_key(seed: int, example_id: str) -> str:
    """The order in which minority rows receive the remainder copies (hex, compared as text)."""
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


class SplitWriter:
    """One split file, written from rows already in their final order.

    Row groups are exactly ROW_GROUP_ROWS rows (the last one shorter) and each is written from
    contiguous columns, whatever the incoming batch sizes, so the bytes depend only on the rows
    and their order.
    """

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = path
        self.rows = 0
        self._writer = pq.ParquetWriter(path, contract.FEATURE_SCHEMA, compression="zstd")
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, rows: pa.Table | pa.RecordBatch) -> None:
        import pyarrow as pa

        rows = rows.select(contract.FEATURE_SCHEMA.names).cast(contract.FEATURE_SCHEMA)
        self._pending.extend(rows.to_batches() if isinstance(rows, pa.Table) else [rows])
        self._pending_rows += rows.num_rows
        while self._pending_rows >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(self._pending, contract.FEATURE_SCHEMA)
            self._write_row_group(table.slice(0, ROW_GROUP_ROWS))
            rest = table.slice(ROW_GROUP_ROWS)
            self._pending, self._pending_rows = rest.to_batches(), rest.num_rows

    def close(self) -> int:
        """Flush the last row group and close the file; return its row count."""
        import pyarrow as pa

        if self._pending_rows:
            self._write_row_group(pa.Table.from_batches(self._pending, contract.FEATURE_SCHEMA))
            self._pending, self._pending_rows = [], 0
        self._writer.close()
        return self.rows

    def _write_row_group(self, table: pa.Table) -> None:
        # Contiguous columns: Parquet's page boundaries follow the chunks it is handed.
        self._writer.write_table(table.combine_chunks(), row_group_size=ROW_GROUP_ROWS)
        self.rows += table.num_rows


@dataclass(frozen=True)
class Routing:
    """Everything the final pass needs to place an example: the outcome of the plan."""

    cuts: tuple[dt.date, dt.date]
    conflicted: pa.Array  # example_ids dropped by a leakage rule
    plan: UpsamplePlan
    threshold: str | None  # largest copy key that gets a remainder copy
    seed: int


def route(examples: pa.Table, routing: Routing) -> list[pa.Table]:
    """Example rows (``example_schema``) -> the rows of train, val and test, with up-sampled copies.

    Rows keep their order and copies follow their original, so rows sorted by example_id come
    out sorted by (example_id, upsample_copy).
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    dates = examples["record_date"]
    split = np.where(
        pc.less_equal(dates, pa.scalar(routing.cuts[0], pa.date32())).to_numpy(False),
        0,
        np.where(
            pc.less_equal(dates, pa.scalar(routing.cuts[1], pa.date32())).to_numpy(False), 1, 2
        ),
    )
    keep = pc.and_(
        pc.is_null(examples["drop_reason"]),
        pc.invert(pc.is_in(examples["example_id"], value_set=routing.conflicted)),
    ).to_numpy(False)
    copies = np.zeros(examples.num_rows, dtype=np.int64)
    plan = routing.plan
    if plan.minority_reward is not None:
        reward = examples["reward"].to_numpy()
        minority = np.flatnonzero(keep & (split == 0) & (reward == plan.minority_reward))
        copies[minority] = plan.full_copies
        if routing.threshold is not None:
            ids = examples["example_id"].take(pa.array(minority)).to_pylist()
            extra = [copy_key(routing.seed, i) <= routing.threshold for i in ids]
            copies[minority] += np.asarray(extra, dtype=np.int64)
    out = []
    for index in range(len(SPLITS)):
        chosen = np.flatnonzero(keep & (split == index))
        repeats = copies[chosen] + 1
        starts = np.repeat(np.cumsum(repeats) - repeats, repeats)
        copy_number = np.arange(int(repeats.sum())) - starts
        rows = examples.take(pa.array(np.repeat(chosen, repeats)))
        out.append(rows.append_column("upsample_copy", pa.array(copy_number.astype(np.int16))))
    return out


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
    return provenance.code_version(["features.py", "data/tokens.py", "data/contract.py"])


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


# ---------------------------------------------------------------------------------------------
# The Spark job


@dataclass
class _SparkResult:
    split_paths: dict[str, Path]
    input_rows: int
    drops: dict[str, int]
    cuts: tuple[dt.date, dt.date]
    upsampling: UpsamplePlan


def _examples_partition(
    batches: Iterator[pa.RecordBatch], *, max_tokens: int, encoding_file: str | None
) -> Iterator[pa.RecordBatch]:
    encoding = tokens.encoding(encoding_file)
    for batch in batches:
        yield example_batch(batch, encoding, max_tokens=max_tokens)


def _run_spark(
    spark: SparkSession,
    raw_path: Path,
    tmp: Path,
    *,
    seed: int,
    max_tokens: int,
    encoding_file: str | None,
    timings: dict[str, float],
) -> _SparkResult:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    # 1. examples: tokenise and hash once, in parallel; each part sorted by example_id and kept
    # on local disk for the passes below.
    start = time.perf_counter()
    raw = spark.read.parquet(str(raw_path)).select(*RAW_INPUT)
    parallelism = spark.sparkContext.defaultParallelism
    # A Parquet row group is the smallest unit Spark can give a task; an extract written as
    # one big row group would tokenise on one core.
    if pq.ParquetFile(raw_path).metadata.num_row_groups < parallelism:
        raw = raw.repartition(2 * parallelism)
    examples_path = tmp / "examples"
    tokenise = functools.partial(
        _examples_partition, max_tokens=max_tokens, encoding_file=encoding_file
    )
    (
        raw.mapInArrow(tokenise, EXAMPLE_DDL)
        .sortWithinPartitions("example_id")
        .write.option("compression", "snappy")
        .parquet(str(examples_path))
    )
    examples = spark.read.parquet(str(examples_path))
    timings["examples"] = time.perf_counter() - start

    # 2. plan, on narrow columns: drops, cut points, leakage conflicts, up-sampling.
    start = time.perf_counter()
    drops: dict[str, int] = {}
    rows_per_date: dict[dt.date, int] = {}
    flags, input_rows = set(), 0
    for row in examples.groupBy("drop_reason", "record_date", "override_flag").count().collect():
        input_rows += row["count"]
        if row["drop_reason"] is not None:
            drops[row["drop_reason"]] = drops.get(row["drop_reason"], 0) + row["count"]
            continue
        rows_per_date[row["record_date"]] = rows_per_date.get(row["record_date"], 0) + row["count"]
        flags.add(bool(row["override_flag"]))
    _check_classes(flags, input_rows, drops)
    cuts = date_cut_points(rows_per_date)
    split = (
        F.when(F.col("record_date") <= F.lit(cuts[0]), 0)
        .when(F.col("record_date") <= F.lit(cuts[1]), 1)
        .otherwise(2)
    )
    # A trace, then an identical prompt, belongs to the first split it appears in.
    trace_first = F.min("split").over(Window.partitionBy("trace_id"))
    trace_conflict = F.when(F.col("split") > trace_first, F.lit(TRACE_CONFLICT))
    prompt_first = F.min(F.when(F.col("conflict").isNull(), F.col("split"))).over(
        Window.partitionBy("prompt_hash")
    )
    prompt_conflict = F.when(F.col("split") > prompt_first, F.lit(PROMPT_CONFLICT))
    narrow = (
        examples.where(F.col("drop_reason").isNull())
        .select("example_id", "trace_id", "prompt_hash", "reward", split.alias("split"))
        .withColumn("conflict", trace_conflict)
        .withColumn("conflict", F.coalesce(F.col("conflict"), prompt_conflict))
        .select("example_id", "reward", "split", "conflict")
        .cache()
    )
    try:
        routing, drops = _plan(narrow, drops, cuts, seed)
    finally:
        narrow.unpersist()
    timings["plan"] = time.perf_counter() - start

    # 3. route: one streaming pass in example_id order writes the three split files.
    start = time.perf_counter()
    split_paths = {name: tmp / f"{name}.parquet" for name in SPLITS}
    writers = [SplitWriter(split_paths[name]) for name in SPLITS]
    try:
        parts = sorted(examples_path.glob("part-*.parquet"))
        for batch in merge_sorted_parts(parts, key=("example_id",)):
            routed = route(pa.Table.from_batches([batch]), routing)
            for writer, rows in zip(writers, routed, strict=True):
                if rows.num_rows:
                    writer.write(rows)
    except DataError as exc:
        raise DataError(
            f"raw.parquet repeats (trace_id, event_id): {exc}; extract must write one row "
            "per workflow_event"
        ) from None
    finally:
        for writer in writers:
            writer.close()
    timings["route"] = time.perf_counter() - start
    return _SparkResult(split_paths, input_rows, drops, cuts, routing.plan)


def _plan(
    narrow: DataFrame, drops: dict[str, int], cuts: tuple[dt.date, dt.date], seed: int
) -> tuple[Routing, dict[str, int]]:
    """The routing of every example, from (example_id, reward, split, conflict) rows."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    drops = dict(drops)
    kept: dict[tuple[int, float], int] = {}
    for row in narrow.groupBy("split", "reward", "conflict").count().collect():
        if row["conflict"] is None:
            kept[(row["split"], row["reward"])] = row["count"]
        else:
            drops[row["conflict"]] = drops.get(row["conflict"], 0) + row["count"]
    for index, name in enumerate(SPLITS):
        if not any(kept.get((index, reward)) for reward in (0.0, 1.0)):
            raise DataError(
                f"the {name} split is empty after the leakage rules (every example shares a "
                f"trace or prompt with an earlier split); drops: {drops}"
            )
    conflicted = pa.array([], pa.string())
    if any(drops.get(reason) for reason in CONFLICT_REASONS):
        conflicted = (
            narrow.where(F.col("conflict").isNotNull())
            .select("example_id")
            .toArrow()["example_id"]
            .combine_chunks()
        )
    plan = upsample_plan({reward: kept.get((0, reward), 0) for reward in (0.0, 1.0)})
    threshold = None
    if plan.remainder:
        # The remainder copies go to the minority rows with the smallest copy keys.
        key = F.sha2(F.concat(F.lit(f"{seed}:"), F.col("example_id")), 256)
        minority = (
            (F.col("split") == 0)
            & (F.col("reward") == plan.minority_reward)
            & F.col("conflict").isNull()
        )
        smallest = narrow.where(minority).select(key.alias("key")).orderBy("key")
        threshold = smallest.limit(plan.remainder).agg(F.max("key")).first()[0]
    return Routing(cuts, conflicted, plan, threshold, seed), drops


def _check_classes(flags: set[bool], rows: int, drops: Mapping[str, int]) -> None:
    if not flags:
        raise DataError(f"none of the {rows} raw rows is a usable example; drops: {dict(drops)}")
    if len(flags) == 1:
        only = flags.pop()
        raise DataError(
            f"every usable example has override_flag={str(only).lower()} (reward "
            f"{0 if only else 1}): one reward class cannot be balanced or evaluated; check "
            "extract's override_flag mapping"
        )


def merge_sorted_parts(
    parts: list[Path], key: tuple[str, ...] = SORT_KEY
) -> Iterator[pa.RecordBatch]:
    """The rows of Parquet files each sorted by ``key``, in one global ``key`` order.

    Reads only the key columns to plan the merge, then streams every part once, holding at most
    ROW_GROUP_ROWS rows per part: a k-way merge without a Spark shuffle of the wide rows.

    Raises:
        DataError: two rows have the same key.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ordering = [(k, "ascending") for k in key]
    keys = []
    for number, part in enumerate(parts):
        table = pq.read_table(part, columns=list(key))
        if table.num_rows and pc.sort_indices(table, ordering) != (
            pa.array(np.arange(table.num_rows), pa.uint64())
        ):
            raise RuntimeError(f"{part} is not sorted by {key}")
        keys.append(table.append_column("part", pa.array(np.full(table.num_rows, number))))
    if not keys:
        return
    merged = pa.concat_tables(keys)
    order = pc.sort_indices(merged, ordering)
    sorted_keys = merged.select(list(key)).take(order)
    same = np.ones(max(sorted_keys.num_rows - 1, 0), dtype=bool)
    for name in key:
        column = sorted_keys[name]
        same &= pc.equal(column[1:], column[:-1]).to_numpy(False)
    if same.any():
        example = sorted_keys.slice(int(np.argmax(same)), 1).to_pylist()[0]
        raise DataError(f"{int(same.sum())} rows repeat the key {key}, e.g. {example}")
    source = merged["part"].take(order).to_numpy()
    readers = [pq.ParquetFile(part).iter_batches(batch_size=ROW_GROUP_ROWS) for part in parts]
    buffers: list[pa.Table] = [pa.table({}) for _ in parts]
    for begin in range(0, len(source), ROW_GROUP_ROWS):
        chunk = source[begin : begin + ROW_GROUP_ROWS]
        pieces, offsets = [], np.zeros(len(parts), dtype=np.int64)
        taken = 0
        for number in range(len(parts)):
            count = int(np.count_nonzero(chunk == number))
            while buffers[number].num_rows < count:
                batch = next(readers[number])
                buffers[number] = pa.concat_tables(
                    [buffers[number], pa.Table.from_batches([batch])]
                    if buffers[number].num_columns
                    else [pa.Table.from_batches([batch])]
                )
            pieces.append(buffers[number].slice(0, count))
            buffers[number] = buffers[number].slice(count)
            offsets[number] = taken
            taken += count
        # Row j of the chunk is the next unread row of its part: its place in the pieces is the
        # part's offset plus how many rows of that part came before it in the chunk.
        rank = np.zeros(len(chunk), dtype=np.int64)
        for number in range(len(parts)):
            mask = chunk == number
            rank[mask] = offsets[number] + np.arange(np.count_nonzero(mask))
        table = pa.concat_tables([piece for piece in pieces if piece.num_rows])
        yield from table.take(pa.array(rank)).to_batches()
