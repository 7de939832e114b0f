"""Issue 23's classes: secrets, dates of birth, plates, encoded payloads, obfuscated contacts,
names in any case (held_out_hidden.py); what must be kept on seeded data; bad input.
docs/privacy.md quotes the figures these print."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter

import pytest
from held_out_hidden import hidden_leaks, hidden_plants

from pria_ml import extract
from pria_ml.data import privacy, textview
from pria_ml.quality import safety
from pria_ml.world import seed


def test_hidden_classes_recall_per_class() -> None:
    pseudo = privacy.Pseudonymiser(b"hidden", protected=frozenset(seed.MERCHANTS))
    total, misses = Counter(), []
    for plant in hidden_plants():
        total[plant.kind] += 1
        output = pseudo.pseudonymise(plant.text)
        if hidden_leaks(plant, output):
            misses.append((plant.kind, plant.origin, plant.text, output))
    missed = Counter(kind for kind, *_ in misses)
    print("\nhidden classes, recall per class:")
    for kind in sorted(total):
        caught = total[kind] - missed[kind]
        print(f"  {kind:18} {caught:4}/{total[kind]:<4} {caught / total[kind]:7.1%}")
    for miss in misses:
        print("  MISS", miss)
    assert set(total) == {
        "secret", "dob", "plate", "encoded", "obfuscated_email", "odd_phone", "name_any_case"
    }  # fmt: skip
    # Every class but names must be whole; names (heuristic) may miss Faker's odd compounds.
    assert {kind for kind, *_ in misses} <= {"name_any_case"}
    assert missed["name_any_case"] <= total["name_any_case"] // 10


def test_a_secret_a_birth_date_and_a_plate_in_an_output_are_safety_flags() -> None:
    outputs = [
        "Use the key AKIAZ7Q2LMN4RT6WXY3B to upload the receipt.",
        "The traveller, born on 03.07.1984, needs a visa.",
        "Parking fine for car reg KT21 VBN.",
        "Receipt from jane (at) example (dot) org.",
        "payload=eyJlbWFpbCI6ICJqYW5lQGV4YW1wbGUub3JnIn0",
        'categorize(category_id=3, merchant="Uber")',
    ]
    flags = [safety.flagged(s) for s in safety.OfflineClassifier().score(outputs)]
    assert flags == [True, True, True, True, True, False]
    assert [f.kind for f in privacy.find_pii(outputs[0])] == ["SECRET"]
    assert [f.kind for f in privacy.find_pii(outputs[1])] == ["DOB"]
    assert [f.kind for f in privacy.find_pii(outputs[2])] == ["PLATE"]


def test_encoded_payloads_are_scrubbed_in_their_encoding() -> None:
    pseudo = privacy.Pseudonymiser(b"enc")
    url = pseudo.pseudonymise("GET /export?contact=ana.silva%40mail.pt&page=2")
    assert url.startswith("GET /export?contact=%3CEMAIL_") and url.endswith("&page=2")
    blob = textview.encode('{"note": "call Ana Silva on +351 912 345 678"}', "base64")
    out = pseudo.pseudonymise(f"data {blob}")
    decoded = textview.decode(out.split()[1], "base64")
    assert decoded is not None and "Silva" not in decoded and "<PHONE_" in decoded
    assert pseudo.pseudonymise(out) == out  # scrubbing twice changes nothing


def test_ordinary_dates_and_travel_stay() -> None:
    for text in (
        "Flight LH 2412 on 14.03.2026, return 2026-03-18",
        "Receipt dated 3 March 2026, Anna Berg travelled on 12/05/2026",
        "Invoice 2024-11-02 for 3 nights",
    ):
        assert "DOB" not in {f.kind for f in privacy.find_pii(text)}, text


def test_seeded_texts_keep_merchants_categories_amounts_and_dates() -> None:
    """2,000 PII-free seeded texts: the false-positive rate, and nothing a label needs altered."""
    planted = seed.Planted()
    chunk = next(seed.generate(900, 17, dt.date(2026, 11, 24), planted=planted))
    values = {value for *_, value in planted.values}
    texts = [t for row in chunk.expense for t in (row[3], row[4], row[5]) if t]
    for row in chunk.agent_trace:
        texts += [m["content"] for m in json.loads(row[3])["messages"] if m["role"] != "tool"]
    clean = [t for t in texts if not any(v in t for v in values)][:2000]
    assert len(clean) == 2000
    pseudo = privacy.Pseudonymiser(b"fp", protected=frozenset(seed.MERCHANTS))
    altered = [(t, o) for t in clean if (o := pseudo.pseudonymise(t)) != t]
    merchants_altered = sum(t.count(m) - o.count(m) for t, o in altered for m in seed.MERCHANTS)
    rate = len(altered) / len(clean)
    print(f"\nseeded PII-free texts altered: {len(altered)} of {len(clean)} ({rate:.2%})")
    print(f"merchant mentions altered: {merchants_altered}")
    for text, output in altered[:5]:
        print("  ALTERED", text, "->", output)
    assert merchants_altered == 0
    assert altered == []
    for row in chunk.expense:  # the label and amount columns are never text to scrub
        assert isinstance(row[6], int) and float(row[7]) > 0


def test_seeded_pii_is_found_whole_as_its_own_kind() -> None:
    """Every value the seeder plants is covered by one finding of its kind: no detector takes a
    part of it for another kind (an address's user "christopher.weber158" read as a random token
    once left "<SECRET_..>@beispiel.de"). A phone number out of context may be read as another
    number kind (a national id's checksum or a card's Luhn digit holds by chance): it is still
    replaced whole."""
    planted = seed.Planted()
    for _chunk in seed.generate(3000, 29, dt.date(2026, 11, 24), planted=planted):
        pass
    numbers = {"PHONE", "ID", "CARD", "ACCOUNT"}
    wrong = []
    for _source, location, kind, value in planted.values:
        text = f"Reply to {value} please." if kind == "email" else f"note: {value}"
        found = privacy.find_pii(text, frozenset(seed.MERCHANTS))
        start = text.index(value)
        inside = [i for i in range(start, start + len(value)) if text[i].isalnum()]
        covering = [f for f in found if f.start <= inside[0] and f.end > inside[-1]]
        kinds = numbers if kind == "phone" else {kind.upper()}
        if len(covering) != 1 or covering[0].kind not in kinds:
            wrong.append((location, kind, value, found))
    print(f"\nplanted values: {len(planted.values)}; not found whole as their kind: {len(wrong)}")
    assert len(planted.values) > 3000
    assert wrong == []


BAD_TEXTS = {
    "lone_surrogate": "Taxi for Ana \ud800Silva, ana.silva@mail.pt",
    "invalid_utf8": b"Taxi \xff\xfe for ana.silva@mail.pt".decode("utf-8", "surrogateescape"),
    "one_megabyte": "receipt " * 131_072 + "ana.silva@mail.pt",
    "binary": "".join(chr(i % 32) for i in range(4096)) + "ana.silva@mail.pt",
    "adversarial_run": "a" * 19_000 + " 1" * 400,
}


@pytest.mark.parametrize("name", sorted(BAD_TEXTS))
def test_bad_text_is_scrubbed_or_refused_with_a_reason(name: str) -> None:
    pseudo = privacy.Pseudonymiser(b"bad")
    try:
        out = pseudo.pseudonymise(BAD_TEXTS[name])
    except privacy.Unscrubbable as refused:
        assert refused.reason in ("oversized_text", "binary_content")
        return
    assert "ana.silva@mail.pt" not in out
    out.encode("utf-8")  # valid Unicode: Parquet takes it


def test_json_nested_200_deep_is_quarantined_not_crashed() -> None:
    deep: object = {"email": "x"}
    for _ in range(200):
        deep = {"a": [deep]}
    pseudo = privacy.Pseudonymiser(b"deep")
    with pytest.raises(privacy.Unscrubbable, match="json_too_deep"):
        pseudo.scrub_text(json.dumps(deep))
    with pytest.raises(privacy.Unscrubbable, match="json_too_deep"):
        pseudo.scrub_text("[" * 5000 + "]" * 5000)  # past the parser's recursion limit


def _row(trace: str, description: str = "Taxi") -> dict:
    at = dt.datetime(2026, 11, 24, 12, tzinfo=dt.UTC)
    return {
        "event_id": "e", "trace_id": "t", "event_type": seed.EVENT_TYPE, "override_flag": False,
        "trace_found": True, "trace": trace, "action_index": 1, "corrected_output": None,
        "created_at": at, "description": description, "merchant": "Uber", "notes": None,
        "category_id": 3,
    }  # fmt: skip


def _trace(user_text: str) -> str:
    messages = [{"role": "user", "content": user_text}, {"role": "assistant", "content": "ok"}]
    return json.dumps({"messages": messages})


BAD_ROWS = [
    ("[" * 300 + "]" * 300, "Taxi", "json_too_deep"),
    (_trace("[" * 200 + "]" * 200), "Taxi", "json_too_deep"),
    (_trace("hi"), "\x00\x01\x02\x03" * 64, "binary_content"),
]


@pytest.mark.parametrize(("trace", "description", "reason"), BAD_ROWS)
def test_extract_quarantines_bad_rows_with_a_reason(trace, description, reason) -> None:
    retention = extract.Retention(dt.date(2026, 11, 24))
    batch = extract.build_batch(
        [_row(trace, description)], privacy.Pseudonymiser(b"rows"), retention
    )
    assert batch.good == [] and dict(batch.quarantined) == {reason: 1}
    assert "\x00" not in batch.bad[0]["detail"]
