"""The safety classifier on its labelled set, the 0.4 threshold, and the pluggable HF path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pria_ml.errors import ConfigError
from pria_ml.quality import safety
from pria_ml.settings import Settings

LABELLED = Path(__file__).parent / "safety_labelled.jsonl"


@pytest.fixture(scope="module")
def labelled() -> list[tuple[dict, dict[str, float]]]:
    rows = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    scores = safety.OfflineClassifier().score(
        [r["text"] for r in rows], [r["prompt"] for r in rows]
    )
    return list(zip(rows, scores, strict=True))


def precision_recall(labelled, category: str) -> tuple[float, float]:
    tp = sum(1 for r, s in labelled if r[category] and s[category] > safety.THRESHOLD)
    fp = sum(1 for r, s in labelled if not r[category] and s[category] > safety.THRESHOLD)
    fn = sum(1 for r, s in labelled if r[category] and s[category] <= safety.THRESHOLD)
    return tp / (tp + fp), tp / (tp + fn)


def test_labelled_set_has_real_positives_and_hard_negatives(labelled) -> None:
    rows = [r for r, _ in labelled]
    assert sum(r["pii_leakage"] for r in rows) >= 15 and sum(r["hateful"] for r in rows) >= 10
    assert sum(not r["pii_leakage"] and not r["hateful"] for r in rows) >= 25


@pytest.mark.parametrize(
    ("category", "min_precision", "min_recall"),
    [("pii_leakage", 0.75, 0.9), ("hateful", 0.9, 0.75)],
)  # the measured figures are in docs/evaluation.md
def test_default_classifier_precision_and_recall(labelled, category, min_precision, min_recall):
    precision, recall = precision_recall(labelled, category)
    assert precision >= min_precision and recall >= min_recall


def test_pseudonym_tokens_and_merchants_are_never_flagged(labelled) -> None:
    for row, scores in labelled:
        if "pseudonym" in row["note"] or row["note"].startswith(("action", "merchant")):
            assert not safety.flagged(scores), row["text"]


def test_exactly_the_threshold_is_not_flagged() -> None:
    assert not safety.flagged({"pii_leakage": 0.4, "hateful": 0.0})
    assert safety.flagged({"pii_leakage": 0.4, "hateful": 0.4000001})


def test_scores_are_per_category_and_in_range() -> None:
    (scores,) = safety.OfflineClassifier().score(["Mail jonas.berg@outlook.com, you idiot"])
    assert set(scores) == set(safety.CATEGORIES)
    assert all(0.0 <= v <= 1.0 for v in scores.values())
    assert scores["pii_leakage"] == 1.0 and scores["hateful"] > safety.THRESHOLD


def test_redact_removes_what_it_flags() -> None:
    text = 'categorize(category_id=3, note="call Anna Lindqvist on +46 70 123 45 67")'
    redacted = safety.redact(text)
    assert "Lindqvist" not in redacted and "123 45 67" not in redacted
    assert "[NAME]" in redacted and "[PHONE]" in redacted
    assert safety.pii_leakage(redacted) == 0.0


def tiny_tokenizer(settings: Settings):
    from transformers import AutoTokenizer

    from pria_ml.model import tiny as tinymodel

    return AutoTokenizer.from_pretrained(tinymodel.base_model_path(settings))


def test_hf_classifier_directory_must_be_a_sequence_classifier(tmp_path: Path) -> None:
    from transformers import MistralConfig

    causal = tmp_path / "causal"
    MistralConfig(architectures=["MistralForCausalLM"]).save_pretrained(causal)
    with pytest.raises(ConfigError, match="not a text-classification"):
        safety.load_classifier(Settings(home=tmp_path, safety_classifier=str(causal)))
    with pytest.raises(ConfigError, match="not a model directory"):
        safety.load_classifier(Settings(home=tmp_path, safety_classifier=str(tmp_path / "x")))


def test_hf_classifier_scores_every_non_benign_label(eval_settings, tmp_path: Path) -> None:
    from transformers import MistralConfig, MistralForSequenceClassification

    tokenizer = tiny_tokenizer(eval_settings)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=tokenizer.pad_token_id,
        id2label={0: "safe", 1: "pii_leakage", 2: "hateful"},
        label2id={"safe": 0, "pii_leakage": 1, "hateful": 2},
        problem_type="multi_label_classification",
    )
    directory = tmp_path / "classifier"
    MistralForSequenceClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    classifier = safety.load_classifier(Settings(home=tmp_path, safety_classifier=str(directory)))
    scores = classifier.score(["categorize(category_id=3)", "Anna Lindqvist"])
    assert [set(s) for s in scores] == [{"pii_leakage", "hateful"}] * 2
    assert all(0.0 <= v <= 1.0 for s in scores for v in s.values())
