"""The pure rules of build-features, without Spark: cut points, up-sampling plan, the per-row
example logic, the raw schema check and the offline tiktoken encoding."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from features_raw import FIRST_DAY, raw_row, raw_table

from pria_ml import features
from pria_ml.data import splits, tokens
from pria_ml.data.contract import RAW_SCHEMA
from pria_ml.data.examples import (
    EMPTY_COMPLETION,
    EMPTY_PROMPT,
    MISSING_KEY,
    OVER_LENGTH,
    example_batch,
    read_units,
)
from pria_ml.data.splits import (
    PROMPT_CONFLICT,
    TRACE_CONFLICT,
    date_cut_points,
    later_conflicts,
    upsample_plan,
)
from pria_ml.data.tokens import CL100K_SHA256, default_encoding_file
from pria_ml.errors import DataError, EncodingMissing


def days(*counts: int) -> dict[dt.date, int]:
    return {FIRST_DAY + dt.timedelta(days=i): n for i, n in enumerate(counts)}


def day(i: int) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=i)


# --- cut points ------------------------------------------------------------------------------


def test_cut_points_split_uniform_dates_80_10_10():
    assert date_cut_points(days(*[10] * 10)) == (day(7), day(8))


def test_cut_points_follow_rows_not_dates():
    # Most rows are on the last days: train needs most of the dates to reach 80 % of rows.
    assert date_cut_points(days(1, 1, 1, 1, 1, 1, 1, 1, 40, 5, 5)) == (day(8), day(9))


def test_cut_points_keep_a_date_for_val_and_test_even_when_one_date_dominates():
    assert date_cut_points(days(1000, 1, 1)) == (day(0), day(1))
    assert date_cut_points(days(1, 1, 1000)) == (day(0), day(1))


def test_cut_points_ignore_dates_without_usable_rows():
    counts = days(10, 0, 10, 10)
    assert date_cut_points(counts) == (day(0), day(2))


@pytest.mark.parametrize("counts", [days(50), days(50, 50), {}])
def test_fewer_than_three_dates_cannot_be_split(counts):
    with pytest.raises(DataError, match="at least 3 distinct dates"):
        date_cut_points(counts)


# --- up-sampling plan ------------------------------------------------------------------------


def test_upsampling_is_capped_at_three_times_the_minority():
    plan = upsample_plan({0.0: 10, 1.0: 100})
    assert (plan.minority_reward, plan.full_copies, plan.remainder) == (0.0, 2, 0)
    assert plan.minority_rows + plan.extra_rows == 30


def test_upsampling_stops_at_the_majority_count():
    plan = upsample_plan({0.0: 100, 1.0: 40})
    assert plan.minority_reward == 1.0
    assert (plan.full_copies, plan.remainder, plan.extra_rows) == (1, 20, 60)


@pytest.mark.parametrize("counts", [{0.0: 50, 1.0: 50}, {0.0: 0, 1.0: 50}, {1.0: 7}])
def test_no_upsampling_for_balanced_or_single_class_train(counts):
    plan = upsample_plan(counts)
    assert plan.minority_reward is None and plan.extra_rows == 0


def test_copy_keys_depend_on_the_seed():
    assert splits.copy_key(1, "id0") != splits.copy_key(2, "id0")


# --- examples --------------------------------------------------------------------------------


def examples(rows, max_tokens=4096) -> list[dict]:
    batch = raw_table(rows).to_batches()[0]
    return example_batch(batch, tokens.encoding(), max_tokens=max_tokens).to_pylist()


def test_completion_reward_and_ids_per_row():
    rows = [
        raw_row(event_id="e1", trace_id="t1", record_date=day(0), agent_output="category=3"),
        raw_row(
            event_id="e2",
            trace_id="t1",
            record_date=day(0),
            override_flag=True,
            agent_output="category=3",
            corrected_output="category=5",
        ),
    ]
    first, second = examples(rows)
    assert (first["completion"], first["reward"], first["drop_reason"]) == ("category=3", 1.0, None)
    assert (second["completion"], second["reward"]) == ("category=5", 0.0)
    assert first["example_id"] == hashlib.sha256(b"t1\x1fe1").hexdigest()[:32]
    assert first["prompt_hash"] == second["prompt_hash"]
    assert first["prompt"] == rows[0]["prompt_messages"]


def test_token_counts_are_tiktoken_counts_of_message_contents():
    encoding = tokens.encoding()
    messages = [("system", "Be brief."), ("user", "Lunch at Pret, 12.50 EUR"), ("tool", "{}")]
    (row,) = examples([raw_row(event_id="e", trace_id="t", record_date=day(0), messages=messages)])
    assert row["prompt_tokens"] == sum(len(encoding.encode_ordinary(c)) for _, c in messages)
    assert row["completion_tokens"] == len(encoding.encode_ordinary("category=3"))
    # Special-token text is counted as text, never refused or expanded.
    (special,) = examples(
        [raw_row(event_id="e", trace_id="t", record_date=day(0), agent_output="<|endoftext|>")]
    )
    assert special["completion_tokens"] == len(encoding.encode_ordinary("<|endoftext|>")) > 1


def test_unusable_rows_are_marked_with_a_reason():
    base = {"record_date": day(0)}
    rows = [
        raw_row(event_id="ok", trace_id="t", **base),
        raw_row(event_id="blank", trace_id="t", messages=[("system", "  "), ("user", "")], **base),
        raw_row(event_id="none", trace_id="t", messages=[], **base),
        raw_row(event_id="e", trace_id="t", agent_output=" ", **base),
        raw_row(event_id="o", trace_id="t", override_flag=True, corrected_output=None, **base),
        raw_row(event_id="long", trace_id="t", agent_output="word " * 50, **base),
        raw_row(event_id="k", trace_id=None, **base),
    ]
    reasons = [row["drop_reason"] for row in examples(rows, max_tokens=40)]
    assert reasons == [
        None,
        EMPTY_PROMPT,
        EMPTY_PROMPT,
        EMPTY_COMPLETION,
        EMPTY_COMPLETION,
        OVER_LENGTH,
        MISSING_KEY,
    ]


def test_prompt_hash_tells_roles_and_contents_apart():
    rows = [
        raw_row(event_id="a", trace_id="t", record_date=day(0), messages=[("user", "hi")]),
        raw_row(event_id="b", trace_id="t", record_date=day(0), messages=[("system", "hi")]),
        raw_row(event_id="c", trace_id="t", record_date=day(0), messages=[("user", "hi ")]),
        raw_row(event_id="d", trace_id="u", record_date=day(1), messages=[("user", "hi")]),
    ]
    hashes = [row["prompt_hash"] for row in examples(rows)]
    assert len(set(hashes[:3])) == 3
    assert hashes[3] == hashes[0]


# --- raw schema ------------------------------------------------------------------------------


def write(path: Path, table: pa.Table) -> Path:
    pq.write_table(table, path)
    return path


def good_table() -> pa.Table:
    return raw_table([raw_row(event_id="e", trace_id="t", record_date=day(0))])


def test_schema_check_names_a_missing_column(tmp_path):
    path = write(tmp_path / "raw.parquet", good_table().drop_columns(["override_flag"]))
    with pytest.raises(DataError, match="missing column 'override_flag'"):
        features.check_raw_schema(path)


def test_schema_check_names_a_mistyped_column(tmp_path):
    table = good_table()
    index = table.schema.get_field_index("record_date")
    table = table.set_column(index, "record_date", pa.array(["2026-10-01"]))
    with pytest.raises(DataError, match="column 'record_date' is string, expected date32"):
        features.check_raw_schema(write(tmp_path / "raw.parquet", table))


def test_schema_check_accepts_large_types_and_extra_columns(tmp_path):
    table = good_table()
    large = pa.schema(
        [f.with_type(pa.large_string()) if f.type == pa.string() else f for f in RAW_SCHEMA]
    )
    table = table.cast(large).append_column("extra", pa.array([1]))
    assert features.check_raw_schema(write(tmp_path / "raw.parquet", table)) == 1


def test_schema_check_refuses_an_empty_file_and_a_non_parquet_file(tmp_path):
    with pytest.raises(DataError, match="no rows"):
        features.check_raw_schema(write(tmp_path / "raw.parquet", good_table().slice(0, 0)))
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        features.check_raw_schema(junk)


# --- tiktoken offline ------------------------------------------------------------------------


def test_shipped_encoding_is_cl100k_base():
    assert hashlib.sha256(default_encoding_file().read_bytes()).hexdigest() == CL100K_SHA256
    encoding = tokens.encoding()
    assert encoding.name == "cl100k_base"
    assert encoding.encode("hello world") == [15339, 1917]
    assert encoding.n_vocab == 100277


def test_missing_encoding_file_is_a_clear_error(tmp_path):
    with pytest.raises(EncodingMissing, match="does not exist"):
        tokens.encoding(str(tmp_path / "cl100k_base.tiktoken"))


def test_altered_encoding_file_is_refused(tmp_path):
    altered = tmp_path / "cl100k_base.tiktoken"
    altered.write_bytes(default_encoding_file().read_bytes().replace(b" 0\n", b" 1\n", 1))
    with pytest.raises(EncodingMissing, match="sha256 must be"):
        tokens.encoding(str(altered))


# --- the leakage decision, the last copies and the final pass ---------------------------------


def later_rows(rows: list[tuple[str, str, int]]) -> pa.Table:
    """(trace_id, prompt_hash, split) rows dated after the train cut."""
    return pa.table(
        {
            "trace_id": [t for t, _, _ in rows],
            "prompt_hash": [p for _, p, _ in rows],
            "split": pa.array([s for _, _, s in rows], pa.int8()),
        }
    )


def test_a_trace_then_a_prompt_stays_in_the_first_split_it_appears_in():
    later = later_rows(
        [
            ("t-train", "p1", 1),  # its trace is in train
            ("t-a", "p-train", 1),  # its prompt is in train
            ("t-b", "p2", 1),
            ("t-b", "p3", 2),  # trace t-b is in val first
            ("t-c", "p2", 2),  # prompt p2 is in val first
            ("t-d", "p3", 2),  # p3's val row was dropped by the trace rule: p3 is test's
            ("t-e", "p4", 2),
        ]
    )
    reasons = later_conflicts(later, pa.array(["t-train"]), pa.array(["p-train"]))
    assert list(reasons) == [
        TRACE_CONFLICT,
        PROMPT_CONFLICT,
        None,
        TRACE_CONFLICT,
        PROMPT_CONFLICT,
        None,
        None,
    ]


def test_the_remainder_copies_go_to_the_smallest_copy_keys():
    ids = [f"id{i}" for i in range(10)]
    split = np.array([0] * 8 + [1, 2])
    reward = np.array([0.0] * 3 + [1.0] * 5 + [0.0, 0.0], dtype=np.float32)
    plan = upsample_plan({0.0: 3, 1.0: 5})  # the minority grows by 2 rows: 0 full copies
    assert (plan.full_copies, plan.remainder) == (0, 2)
    keys = pa.array(
        [
            splits.copy_key(7, i) if s == 0 and r == 0.0 else None
            for i, s, r in zip(ids, split, reward, strict=True)
        ]
    )
    extra = splits.copies(split, reward, keys, plan)
    ranked = sorted(range(3), key=lambda i: splits.copy_key(7, ids[i]))
    assert sorted(np.flatnonzero(extra).tolist()) == sorted(ranked[:2])
    assert extra.sum() == plan.extra_rows


def test_final_pass_writes_the_same_bytes_in_one_pass_or_many(tmp_path):
    """A raw file too large for one gather is written range by range, with the same bytes."""
    rows = [
        raw_row(
            event_id=f"e{i}",
            trace_id=f"t{i}",
            record_date=day(i % 3),
            override_flag=i % 4 == 0,
            corrected_output="category=1" if i % 4 == 0 else None,
        )
        for i in range(300)
    ]
    raw = write_row_groups(tmp_path / "raw.parquet", raw_table(rows), 37)
    batch = example_batch(raw_table(rows).to_batches()[0], tokens.encoding(), max_tokens=4096)
    split = splits.split_of(batch.column("record_date"), (day(0), day(1)))
    reward = batch.column("reward").to_numpy()
    plan = upsample_plan({0.0: int(((split == 0) & (reward == 0)).sum()), 1.0: 10**6})
    keys = pa.array([splits.copy_key(0, i) for i in batch.column("example_id").to_pylist()])
    extra = splits.copies(split, reward, keys, plan)
    routing = splits.routing_table(
        batch.column("example_id"),
        np.arange(len(rows)),
        split,
        extra,
        batch.column("prompt_tokens"),
        batch.column("completion_tokens"),
    )
    written = {}
    meta = pq.ParquetFile(raw).metadata
    decoded = sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups))
    for name, budget in (("one", 2**30), ("many", decoded // 6)):
        paths = {s: tmp_path / f"{name}-{s}.parquet" for s in splits.SPLITS}
        counts = splits.write_splits(raw, routing, paths, gather_bytes=budget)
        assert sum(counts.values()) == len(rows) + int(extra.sum())
        written[name] = {s: paths[s].read_bytes() for s in splits.SPLITS}
    assert written["one"] == written["many"]
    train = pq.read_table(tmp_path / "one-train.parquet")
    assert train["example_id"].to_pylist() == sorted(train["example_id"].to_pylist())
    assert train.num_rows == int((split == 0).sum()) + int(extra.sum())


def write_row_groups(path: Path, table: pa.Table, rows_per_group: int) -> Path:
    pq.write_table(table, path, row_group_size=rows_per_group)
    return path


def test_repeated_example_ids_are_named():
    with pytest.raises(DataError, match="1 rows repeat the key"):
        splits.check_unique(pa.array(["a", "b", "a"]))
    splits.check_unique(pa.array(["a", "b"]))


def test_examples_pass_reads_whole_row_groups_or_cuts_few_into_slices():
    assert read_units([5, 5, 5, 5], tasks=4) == [(0, 0, 5), (1, 0, 5), (2, 0, 5), (3, 0, 5)]
    # One group, four tasks: four slices that cover every row once.
    assert read_units([10], tasks=4) == [(0, 0, 3), (0, 3, 6), (0, 6, 9), (0, 9, 10)]
    assert read_units([3, 1], tasks=4) == [(0, 0, 2), (0, 2, 3), (1, 0, 1)]
