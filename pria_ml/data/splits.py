"""The split rules of build-features and the writer of the split files, without Spark.

Pure parts: the date cut points, the leakage decision for rows dated after the first cut, the
up-sampling plan and which minority rows get the last copies. The edge: ``write_splits``, the
final pass that reads the wide columns back from raw.parquet and writes train / val / test in
``(example_id, upsample_copy)`` order with fixed row groups, so the same input and seed give
the same bytes whatever engine computed the plan. docs/features.md explains each rule.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pria_ml.data import contract
from pria_ml.data.examples import RAW_WIDE, wide_columns
from pria_ml.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
MAX_UPSAMPLE = 3  # the minority class ends with at most 3x its natural rows (spec 3.3)
DEFAULT_SEED = 0
ROW_GROUP_ROWS = 32_768
SORT_KEY = ("example_id", "upsample_copy")  # the row order of every split file
# Decoded raw bytes the final pass holds at once; a larger input is written in several passes
# over raw.parquet, each for one range of example ids.
GATHER_BYTES = 768 * 2**20

# Why a usable example is left out of its date's split (leakage rules).
TRACE_CONFLICT = "trace_in_earlier_split"
PROMPT_CONFLICT = "prompt_in_earlier_split"
CONFLICT_REASONS = (TRACE_CONFLICT, PROMPT_CONFLICT)


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


def split_of(dates: pa.Array | pa.ChunkedArray, cuts: tuple[dt.date, dt.date]) -> np.ndarray:
    """0 / 1 / 2 (train / val / test) for each record date."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    train = pc.less_equal(dates, pa.scalar(cuts[0], pa.date32())).to_numpy(False)
    val = pc.less_equal(dates, pa.scalar(cuts[1], pa.date32())).to_numpy(False)
    return np.where(train, 0, np.where(val, 1, 2)).astype(np.int8)


def later_conflicts(later: pa.Table, train_traces: pa.Array, train_prompts: pa.Array) -> np.ndarray:
    """The leakage rules for the usable rows dated after the train cut.

    ``later`` has ``trace_id``, ``prompt_hash`` and ``split`` (1 or 2); ``train_traces`` /
    ``train_prompts`` are the traces and prompt hashes of those rows that train also has. A
    trace belongs to the first split it appears in; then an identical prompt belongs to the
    first split it appears in among the rows the trace rule kept. Train rows never conflict
    (train is the first split), so train only contributes whether it holds a key.

    Returns one reason per row of ``later`` (None where the row is kept).
    """
    import numpy as np
    import pyarrow.compute as pc

    split = later["split"].to_numpy()
    reasons = np.full(later.num_rows, None, dtype=object)
    trace_first = _first_split(later["trace_id"], split, pc.is_in(later["trace_id"], train_traces))
    traced = split > trace_first
    reasons[traced] = TRACE_CONFLICT
    in_train = pc.is_in(later["prompt_hash"], train_prompts).to_numpy(False)
    prompt_first = _first_split(later["prompt_hash"], np.where(traced, 9, split), in_train)
    reasons[~traced & (split > prompt_first)] = PROMPT_CONFLICT
    return reasons


def _first_split(keys: pa.ChunkedArray, split: np.ndarray, in_train) -> np.ndarray:
    """Per row, the smallest ``split`` among the rows with its key (0 where train has the key)."""
    import numpy as np
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(keys).combine_chunks()
    codes = encoded.indices.to_numpy()
    first = np.full(len(encoded.dictionary), 9, dtype=np.int8)
    np.minimum.at(first, codes, split.astype(np.int8))
    result = first[codes]
    result[np.asarray(in_train, dtype=bool)] = 0
    return result


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
    """The order in which minority rows receive the remainder copies (hex, compared as text).
    Spark computes the same value as ``sha2(concat('<seed>:', example_id), 256)``."""
    return hashlib.sha256(f"{seed}:{example_id}".encode()).hexdigest()


def copies(split: np.ndarray, reward: np.ndarray, keys: pa.Array, plan: UpsamplePlan) -> np.ndarray:
    """Extra copies per kept row: ``full_copies`` for train's minority rows, one more for the
    ``remainder`` of them with the smallest copy keys (``keys``: each row's ``copy_key``, or
    null where the row is not in train's minority class)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    extra = np.zeros(len(split), dtype=np.int16)
    if plan.minority_reward is None:
        return extra
    minority = (split == 0) & (reward == plan.minority_reward)
    extra[minority] = plan.full_copies
    if plan.remainder:
        chosen = pc.filter(keys, pa.array(minority))
        smallest = chosen.take(pc.sort_indices(chosen)).slice(0, plan.remainder)
        threshold = smallest[plan.remainder - 1].as_py()
        extra[np.flatnonzero(minority)[pc.less_equal(chosen, threshold).to_numpy(False)]] += 1
    return extra


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


def routing_table(
    example_id: pa.Array | pa.ChunkedArray,
    row: np.ndarray,
    split: np.ndarray,
    extra: np.ndarray,
    prompt_tokens: pa.Array | pa.ChunkedArray,
    completion_tokens: pa.Array | pa.ChunkedArray,
) -> pa.Table:
    """The kept examples in example_id order: where each sits in raw.parquet (``row``), its
    split, extra copies and token counts - all the final pass needs besides raw.parquet.

    Raises:
        DataError: two rows have the same example id (``(trace_id, event_id)`` repeats).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    table = pa.table(
        {
            "example_id": example_id,
            "row": pa.array(row, pa.int64()),
            "split": pa.array(split, pa.int8()),
            "extra": pa.array(extra, pa.int16()),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
    )
    table = table.take(pc.sort_indices(table, [("example_id", "ascending")]))
    return table


def check_unique(example_ids: pa.Array | pa.ChunkedArray) -> None:
    """Raise DataError naming one repeated id when ``example_ids`` repeats one."""
    import pyarrow.compute as pc

    if len(pc.unique(example_ids)) == len(example_ids):
        return
    counts = pc.value_counts(example_ids)
    repeated = counts.filter(pc.greater(counts.field("counts"), 1))
    raise DataError(
        f"{int(pc.sum(pc.subtract(repeated.field('counts'), 1)).as_py())} rows repeat the key "
        f"('example_id',), e.g. {{'example_id': {repeated[0]['values'].as_py()!r}}}"
    )


def write_splits(
    raw_path: Path,
    routing: pa.Table,
    paths: Mapping[str, Path],
    *,
    gather_bytes: int = GATHER_BYTES,
) -> dict[str, int]:
    """Write train / val / test from ``routing`` (``routing_table``, sorted by example_id) and
    the wide columns of raw.parquet; return the rows written per split.

    Rows leave in ``(example_id, upsample_copy)`` order, copies right after their original.
    The wide columns of at most ``gather_bytes`` of decoded raw rows are held at once: a larger
    input is written in several passes over raw.parquet, each for the next range of ids.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(raw_path)
    meta = parquet.metadata
    starts = np.zeros(meta.num_row_groups + 1, dtype=np.int64)
    np.cumsum([meta.row_group(g).num_rows for g in range(meta.num_row_groups)], out=starts[1:])
    decoded = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    per_pass = max(1, int(gather_bytes / max(decoded / max(meta.num_rows, 1), 1)))
    writers = [SplitWriter(paths[name]) for name in SPLITS]
    try:
        for begin in range(0, routing.num_rows, per_pass):
            part = routing.slice(begin, per_pass)
            rows = part["row"].to_numpy()
            order = np.argsort(rows, kind="stable")
            wanted = rows[order]
            pieces = []
            for group in range(meta.num_row_groups):
                lo, hi = np.searchsorted(wanted, starts[group : group + 2])
                if lo < hi:
                    table = parquet.read_row_group(group, columns=list(RAW_WIDE))
                    pieces.append(table.take(pa.array(wanted[lo:hi] - starts[group])))
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            raw = pa.concat_tables(pieces).take(pa.array(inverse))
            _write_part(part, raw, writers)
    finally:
        counts = {name: writer.close() for name, writer in zip(SPLITS, writers, strict=True)}
    return counts


def _write_part(part: pa.Table, raw: pa.Table, writers: list[SplitWriter]) -> None:
    """Rows of ``part`` (in example_id order) with their wide columns from ``raw`` (same order)
    -> each split's writer, every row followed by its copies."""
    import numpy as np
    import pyarrow as pa

    split = part["split"].to_numpy()
    extra = part["extra"].to_numpy().astype(np.int64)
    for begin in range(0, part.num_rows, ROW_GROUP_ROWS):
        chunk = slice(begin, begin + ROW_GROUP_ROWS)
        wide = wide_columns(raw.slice(begin, ROW_GROUP_ROWS))
        rows = pa.table(
            {
                "example_id": part["example_id"].slice(begin, ROW_GROUP_ROWS),
                **wide,
                "prompt_tokens": part["prompt_tokens"].slice(begin, ROW_GROUP_ROWS),
                "completion_tokens": part["completion_tokens"].slice(begin, ROW_GROUP_ROWS),
            }
        )
        for index, writer in enumerate(writers):
            chosen = np.flatnonzero(split[chunk] == index)
            if not len(chosen):
                continue
            repeats = extra[chunk][chosen] + 1
            starts = np.repeat(np.cumsum(repeats) - repeats, repeats)
            copy_number = np.arange(int(repeats.sum())) - starts
            out = rows.take(pa.array(np.repeat(chosen, repeats)))
            writer.write(out.append_column("upsample_copy", pa.array(copy_number, pa.int16())))
