"""Every kind of PII the detectors emit has every handler downstream, kind by kind.

The kinds are ``privacy.KINDS`` itself, never a copy: a kind added there without a confidence
in the safety scorer, a redaction, a pseudonym or a line in the docs fails here (and without an
example below it fails too), not in a night's evaluation the first time a model leaks one.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import uuid
from pathlib import Path

import pytest
from eval_data import task_rows
from evalrecords import eval_record

from pria_ml import evaluate
from pria_ml.data import privacy
from pria_ml.data.storage import open_storage
from pria_ml.model import tiny
from pria_ml.model.loading import Comparison
from pria_ml.quality import safety
from pria_ml.quality.record import SplitResult, load_evaluated_samples
from pria_ml.settings import Settings

DOCS = Path(__file__).resolve().parents[2] / "docs"

# One text per kind that holds exactly one finding, of that kind.
EXAMPLES = {
    "SECRET": "my api key is sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "EMAIL": "write to jonas.berg@outlook.com",
    "IBAN": "refund to DE89 3704 0044 0532 0130 00",
    "CARD": "paid with 4111 1111 1111 1111",
    "IP": "logged in from 192.168.1.20",
    "ID": "codice fiscale RCCMNL83S18D969H",
    "ACCOUNT": "Kontonummer 12345678",
    "DOB": "date of birth: 14 March 1987",
    "PLATE": "parking, car reg KX19 ZPT",
    "PHONE": "call +46 70 123 45 67",
    "ADDRESS": "ship to 221B Baker Street",
    "NAME": "approved by Anna Lindqvist",
}


def only_finding(kind: str) -> privacy.Finding:
    text = EXAMPLES.get(kind)
    assert text is not None, f"privacy.KINDS has {kind}: add an example of it to EXAMPLES"
    findings = privacy.find_pii(text)
    assert [f.kind for f in findings] == [kind], f"{text!r} should hold one {kind}: {findings}"
    return findings[0]


def test_the_tables_cover_exactly_the_detectors_kinds() -> None:
    assert set(EXAMPLES) == set(privacy.KINDS), "one example per kind, no stale ones"
    assert set(safety.PII_CONFIDENCE) == set(privacy.KINDS), "one confidence per kind"


@pytest.mark.parametrize("kind", privacy.KINDS)
def test_safety_flags_a_finding_of_each_kind_at_its_confidence(kind: str) -> None:
    only_finding(kind)
    assert kind in safety.PII_CONFIDENCE, f"safety.PII_CONFIDENCE has no {kind}"
    assert safety.pii_leakage(EXAMPLES[kind]) == safety.PII_CONFIDENCE[kind] > safety.THRESHOLD
    (scores,) = safety.OfflineClassifier().score([EXAMPLES[kind]])
    assert safety.flagged(scores)


@pytest.mark.parametrize("kind", privacy.KINDS)
def test_redaction_names_each_kind_and_keeps_no_raw_value(kind: str) -> None:
    finding = only_finding(kind)
    redacted = safety.redact(EXAMPLES[kind])
    assert finding.value not in redacted
    assert safety.placeholder(kind) in redacted
    assert privacy.find_pii(redacted) == ()  # the placeholder is no finding: nothing to re-flag


@pytest.mark.parametrize("kind", privacy.KINDS)
def test_pseudonyms_name_each_kind_and_are_never_found_again(kind: str) -> None:
    finding = only_finding(kind)
    pseudo = privacy.Pseudonymiser(b"test-pii-kinds")
    once = pseudo.pseudonymise(EXAMPLES[kind])
    assert finding.value not in once
    assert re.search(rf"<{kind}_[0-9a-f]{{8}}>", once), once
    assert pseudo.pseudonymise(once) == once  # a pseudonym is masked, never a finding
    assert pseudo.pseudonyms == {kind: 1}  # what the extract manifest counts, by kind


def test_the_docs_name_every_kind() -> None:
    privacy_doc = (DOCS / "privacy.md").read_text()
    listed = re.search(r"`KIND` is\s+one of `([A-Z ]+)`", privacy_doc)
    assert listed is not None and listed.group(1).split() == list(privacy.KINDS)
    undocumented = [k for k in privacy.KINDS if f"\n| {k} |" not in privacy_doc]
    assert undocumented == [], f"docs/privacy.md's detector table lacks {undocumented}"
    evaluation_doc = (DOCS / "evaluation.md").read_text()
    safety_section = evaluation_doc.split("## Safety classifier", 1)[1].split("\n## ", 1)[0]
    unscored = [k for k in privacy.KINDS if f"`{k}`" not in safety_section]
    assert unscored == [], f"docs/evaluation.md gives no confidence for {unscored}"


class _Adapters:
    """The model side of a Comparison: which adapter is active, nothing else."""

    active = "candidate"

    def set_adapter(self, name: str) -> None:
        self.active = name

    @contextlib.contextmanager
    def disable_adapter(self):
        self.active, before = "baseline", self.active
        yield
        self.active = before


def test_evaluation_scores_and_stores_outputs_leaking_every_kind(monkeypatch, tmp_path) -> None:
    """The split evaluation ``evaluate.run`` does, on a candidate whose outputs each leak one
    kind, with the real classifier, redaction and sample store; only generation is canned."""
    rows = task_rows(len(privacy.KINDS), seed=11)
    leaks = {kind: only_finding(kind).value for kind in privacy.KINDS}
    outputs = {
        "candidate": [
            f'{row["completion"][:-1]}, note="{EXAMPLES[kind]}")'
            for row, kind in zip(rows, privacy.KINDS, strict=True)
        ],
        "baseline": [row["completion"] for row in rows],
    }

    def canned(model, tokenizer, prompts, *, max_new_tokens, batch_size):
        assert len(prompts) == len(rows)
        return outputs[model.active]

    monkeypatch.setattr(evaluate, "generate", canned)
    tokenizer = tiny.build_tokenizer(tiny.synthetic_corpus(200))
    comparison = Comparison(_Adapters(), tokenizer, None, None, "tiny")
    settings = Settings(home=tmp_path, storage_url=(tmp_path / "storage").as_uri())

    summary, table = evaluate._evaluate_split(
        comparison, safety.OfflineClassifier(), "val", rows, new_tokens=32, settings=settings
    )

    assert summary["candidate"]["safety_flags"] == len(privacy.KINDS)
    assert summary["baseline"]["safety_flags"] == 0
    columns = table.to_pydict()
    assert columns["candidate_flagged"] == [True] * len(privacy.KINDS)
    assert columns["candidate_pii_leakage"] == [safety.PII_CONFIDENCE[k] for k in privacy.KINDS]
    date, adapter_id = datetime.date(2026, 11, 20), uuid.uuid4()
    measured = eval_record(adapter_id, date).model_copy(
        update={"val": SplitResult.model_validate(summary)}  # the record takes the split as is
    )
    storage = open_storage(settings)
    evaluate._write(storage, measured, [table])
    stored = load_evaluated_samples(storage, date, adapter_id)
    for sample, kind in zip(stored, privacy.KINDS, strict=True):
        text = " ".join(str(value) for value in sample.values())
        assert leaks[kind] not in text, f"the raw {kind} reached samples.parquet"
        assert safety.placeholder(kind) in sample["candidate_output"]
