"""build-features end to end on real Spark and real Parquet: the leakage, balance and
determinism invariants of spec section 3.3-3.4, read back from the published files."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from features_raw import split_key, storage_settings, synthetic_rows, write_raw

from pria_ml import features
from pria_ml.data import tokens
from pria_ml.data.contract import FEATURE_SCHEMA
from pria_ml.data.splits import PROMPT_CONFLICT, SPLITS, TRACE_CONFLICT
from pria_ml.data.storage import LocalStorage

DATE = dt.date(2026, 11, 24)


def example_id(trace_id: str, event_id: str) -> str:
    return hashlib.sha256(f"{trace_id}\x1f{event_id}".encode()).hexdigest()[:32]


def prompt_key(prompt: list[dict]) -> tuple:
    return tuple((m["role"], m["content"]) for m in prompt)


def split_path(root: Path, name: str) -> Path:
    storage = LocalStorage((root / "storage").as_uri())
    return storage.path(split_key(storage, DATE, name))


def read_splits(root: Path) -> dict[str, list[dict]]:
    return {name: pq.read_table(split_path(root, name)).to_pylist() for name in SPLITS}


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory):
    """One build of a 12-day synthetic dataset, shared by the invariant tests below."""
    root = tmp_path_factory.mktemp("features-built")
    settings = storage_settings(root)
    raw = synthetic_rows()
    write_raw(settings, DATE, raw)
    result = features.build(settings, DATE, seed=3, spark=spark)
    return root, raw, result, read_splits(root)


def test_writes_three_splits_and_a_manifest_that_vouches_for_them(built):
    root, raw, result, splits = built
    storage = LocalStorage((root / "storage").as_uri())
    manifest = json.loads(storage.read_bytes(f"datasets/{DATE}/features/manifest.json"))
    assert manifest["splits"] == result.manifest["splits"]
    assert manifest["input"]["rows"] == len(raw)
    for name in SPLITS:
        path = split_path(root, name)
        assert pq.read_schema(path).remove_metadata() == FEATURE_SCHEMA
        assert hashlib.sha256(path.read_bytes()).hexdigest() == manifest["splits"][name]["sha256"]
        assert manifest["splits"][name]["rows"] == len(splits[name])
    kept = sum(
        1 for row in splits["train"] + splits["val"] + splits["test"] if row["upsample_copy"] == 0
    )
    assert kept + sum(manifest["drops"].values()) == len(raw)


def test_completion_is_the_approved_action_and_reward_is_one_minus_override(built):
    _, raw, _, splits = built
    by_id = {example_id(r["trace_id"], r["event_id"]): r for r in raw}
    rows = [row for name in SPLITS for row in splits[name]]
    assert {row["override_flag"] for row in rows} == {True, False}
    for row in rows:
        source = by_id[row["example_id"]]
        expected = source["corrected_output"] if source["override_flag"] else source["agent_output"]
        assert row["completion"] == expected
        assert row["override_flag"] == source["override_flag"]
        assert row["reward"] == 1.0 - float(source["override_flag"])
        assert row["prompt"] == source["prompt_messages"]
        assert row["record_date"] == source["record_date"]


def test_token_counts_are_cl100k_base_counts(built):
    _, _, _, splits = built
    encoding = tokens.encoding()
    for row in splits["val"]:
        expected = sum(len(encoding.encode_ordinary(m["content"])) for m in row["prompt"])
        assert row["prompt_tokens"] == expected
        assert row["completion_tokens"] == len(encoding.encode_ordinary(row["completion"]))


def test_no_date_appears_in_two_splits(built):
    _, _, result, splits = built
    dates = {name: {row["record_date"] for row in splits[name]} for name in SPLITS}
    assert all(dates[name] for name in SPLITS)
    assert max(dates["train"]) < min(dates["val"]) <= max(dates["val"]) < min(dates["test"])
    cuts = result.manifest["rules"]["split"]
    assert max(dates["train"]).isoformat() <= cuts["train_last_date"]
    assert max(dates["val"]).isoformat() <= cuts["val_last_date"] < min(dates["test"]).isoformat()


def test_split_is_about_80_10_10_by_rows(built):
    _, _, _, splits = built
    natural = {name: sum(r["upsample_copy"] == 0 for r in splits[name]) for name in SPLITS}
    total = sum(natural.values())
    assert 0.65 < natural["train"] / total < 0.9
    assert natural["val"] > 0 and natural["test"] > 0


def test_no_trace_appears_in_two_splits(built):
    _, _, result, splits = built
    traces = {name: {row["trace_id"] for row in splits[name]} for name in SPLITS}
    assert not traces["train"] & traces["val"]
    assert not traces["train"] & traces["test"]
    assert not traces["val"] & traces["test"]
    # The synthetic data has traces running past midnight, so the rule had work to do.
    assert result.manifest["drops"][TRACE_CONFLICT] > 0


def test_no_identical_prompt_appears_in_two_splits(built):
    _, _, result, splits = built
    prompts = {name: {prompt_key(row["prompt"]) for row in splits[name]} for name in SPLITS}
    assert not prompts["train"] & prompts["val"]
    assert not prompts["train"] & prompts["test"]
    assert not prompts["val"] & prompts["test"]
    assert result.manifest["drops"][PROMPT_CONFLICT] > 0


def test_upsampling_happens_in_train_only_and_at_most_3x(built):
    _, _, result, splits = built
    for name in ("val", "test"):
        assert {row["upsample_copy"] for row in splits[name]} == {0}
    train = splits["train"]
    copies = Counter(row["example_id"] for row in train)
    assert max(copies.values()) <= 3
    natural = Counter(row["reward"] for row in train if row["upsample_copy"] == 0)
    after = Counter(row["reward"] for row in train)
    minority = min(natural, key=natural.get)
    majority = max(natural, key=natural.get)
    assert after[majority] == natural[majority]
    # 20 % overrides: tripling the minority stays below the majority, so the cap binds.
    assert 3 * natural[minority] < natural[majority]
    assert after[minority] == 3 * natural[minority]
    copied = {row["reward"] for row in train if row["upsample_copy"] > 0}
    assert copied == {minority}
    # Copies are whole rows: every copy equals its original but for upsample_copy.
    originals = {row["example_id"]: row for row in train if row["upsample_copy"] == 0}
    for row in train:
        assert {**row, "upsample_copy": 0} == originals[row["example_id"]]
    card = result.manifest["splits"]["train"]
    assert card["rows_by_class_after_upsampling"] != card["rows_by_class_before_upsampling"]


def test_val_and_test_keep_the_natural_class_balance(built):
    """Every usable raw row of a val / test date is there once, unless a leakage rule took it
    out because its trace or prompt is in an earlier split."""
    _, raw, result, splits = built
    earlier_traces = {row["trace_id"] for row in splits["train"]}
    earlier_prompts = {prompt_key(row["prompt"]) for row in splits["train"]}
    for name in ("val", "test"):
        dates = {row["record_date"] for row in splits[name]}
        got = Counter(row["example_id"] for row in splits[name])
        assert set(got.values()) == {1}
        for source in (r for r in raw if r["record_date"] in dates):
            key = example_id(source["trace_id"], source["event_id"])
            if key not in got:
                assert (
                    source["trace_id"] in earlier_traces
                    or prompt_key(source["prompt_messages"]) in earlier_prompts
                )
        card = result.manifest["splits"][name]
        assert card["rows_by_class_before_upsampling"] == card["rows_by_class_after_upsampling"]
        earlier_traces |= {row["trace_id"] for row in splits[name]}
        earlier_prompts |= {prompt_key(row["prompt"]) for row in splits[name]}


def test_same_input_and_seed_give_byte_identical_splits(spark, built, tmp_path):
    root, raw, first, _ = built
    settings = storage_settings(tmp_path)
    write_raw(settings, DATE, list(reversed(raw)))  # same rows, another file layout
    before = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "3")  # another partitioning too
    try:
        again = features.build(settings, DATE, seed=3, spark=spark)
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", before)
    for name in SPLITS:
        assert again.manifest["splits"][name]["sha256"] == first.manifest["splits"][name]["sha256"]
        assert split_path(root, name).read_bytes() == split_path(tmp_path, name).read_bytes()


def test_another_seed_picks_other_rows_for_the_last_copies(spark, tmp_path):
    # 30 % overrides: the minority grows by a fraction of a copy, so the seed picks which rows get
    # the last copy.
    raw = synthetic_rows(override_rate=0.3)
    builds = {}
    for seed in (3, 4):
        settings = storage_settings(tmp_path / str(seed))
        write_raw(settings, DATE, raw)
        builds[seed] = features.build(settings, DATE, seed=seed, spark=spark).manifest
    plan = builds[3]["rules"]["upsampling"]
    assert plan["extra_rows"] % plan["minority_rows"] != 0
    train = {seed: card["splits"]["train"] for seed, card in builds.items()}
    assert train[3]["sha256"] != train[4]["sha256"]
    assert train[3]["rows_by_class_after_upsampling"] == train[4]["rows_by_class_after_upsampling"]
    assert builds[3]["splits"]["val"]["sha256"] == builds[4]["splits"]["val"]["sha256"]


def test_dataset_card_reports_dates_tokens_and_drops(built):
    _, _, result, splits = built
    card = result.manifest
    for name in SPLITS:
        split = card["splits"][name]
        dates = sorted({row["record_date"].isoformat() for row in splits[name]})
        assert split["dates"]["list"] == dates
        tokens = split["tokens"]["total"]
        assert tokens["p50"] <= tokens["p90"] <= tokens["p95"] <= tokens["p99"] <= tokens["max"]
        assert tokens["max"] == max(
            r["prompt_tokens"] + r["completion_tokens"] for r in splits[name]
        )
    assert set(card["drops"]) == set(features.DROP_REASONS + features.CONFLICT_REASONS)
    assert card["tokenizer"]["name"] == "cl100k_base"
    assert card["rules"]["max_tokens"] == features.DEFAULT_MAX_TOKENS


def test_record_dates_are_real_dates(built):
    _, _, _, splits = built
    assert all(isinstance(row["record_date"], dt.date) for row in splits["test"])
