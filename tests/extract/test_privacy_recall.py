"""Measured recall of the PII detectors: on the seeder's planted PII, and on held-out PII from
sixteen countries the seeder never uses. docs/privacy.md quotes the figures this prints."""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from collections import Counter

from extract_samples import held_out_people

from pria_ml.data import privacy
from pria_ml.world import seed

# Held-out floors: exact kinds must be perfect; the heuristic ones (names, street addresses)
# are held to what they measured when these tests were written, so a regression fails.
FLOORS = {
    "email": 1.0,
    "iban": 1.0,
    "card": 1.0,
    "ipv4": 1.0,
    "ipv6": 1.0,
    "phone": 0.98,
    "name": 0.99,
    "address": 0.98,
}
CONTEXTS = {
    "name": ("Lunch with {} from Siemens", "Approved by {}.", "{} joined the dinner", "Guest: {}"),
    "phone": ("Call {} tomorrow", "Hotel phone {}", "{}"),
    "address": ("Deliver to {}, thanks", "Office moved to {}.", "Taxi to {}"),
    "email": ("cc {}", "Contact {} for the receipt"),
    "iban": ("Pay to {}", "IBAN: {}"),
    "card": ("card {}",),
    "ipv4": ("login from {}",),
    "ipv6": ("login from {}",),
}
# Words that are part of a value but identify nobody: titles, floor and unit words.
NOT_IDENTIFYING = frozenset({
    "pan", "pani", "dott", "sig", "lic", "sra", "srta", "srita", "prof", "univ", "fru", "rndr",
    "okt", "piso", "depto", "edif", "interior", "mgr", "ing", "bay", "bayan", "apt", "suite",
    "piano", "appartamento", "interno", "scala", "puerta", "escalera",
})  # fmt: skip
PSEUDONYM = re.compile(r"<[A-Z]+_[0-9a-f]{8}>")


def survives(value: str, kind: str, output: str) -> bool:
    """Whether an identifying fragment of ``value`` is left in ``output`` (pseudonyms removed)."""
    rest = PSEUDONYM.sub(" ", output)
    for word in re.findall(r"\w+", value):
        if len(word) < 3 or word.lower() in NOT_IDENTIFYING:
            continue
        if kind == "address" and word.isdigit() and len(word) < 4:
            continue  # a house number alone identifies nobody
        if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", rest):
            return True
    return False


def held_out_recall() -> tuple[dict[str, float], dict[tuple[str, str], int]]:
    rng = random.Random(0)
    pseudo = privacy.Pseudonymiser(b"recall")
    caught, total, misses = Counter(), Counter(), Counter()
    for person in held_out_people(per_locale=40):
        for kind, contexts in CONTEXTS.items():
            if kind not in person:
                continue
            output = pseudo.pseudonymise(rng.choice(contexts).format(person[kind]))
            total[kind] += 1
            if survives(person[kind], kind, output):
                misses[(kind, person["locale"])] += 1
            else:
                caught[kind] += 1
    return {kind: caught[kind] / total[kind] for kind in total}, dict(misses)


def test_held_out_recall_meets_the_floors() -> None:
    recall, misses = held_out_recall()
    print("\nheld-out recall:", json.dumps({k: round(v, 3) for k, v in recall.items()}))
    print("misses by kind and locale:", sorted(misses.items(), key=lambda kv: -kv[1])[:12])
    assert {k: v for k, v in recall.items() if v < FLOORS[k]} == {}


def test_every_value_the_seeder_plants_is_caught_and_nothing_else() -> None:
    """Recall 100 % on the seeder's PII, and no false positive on its PII-free texts with the
    known merchants protected (as extraction runs): no merchant, no ordinary word altered."""
    planted = seed.Planted()
    chunk = next(seed.generate(1500, 9, dt.date(2026, 11, 24), planted=planted))
    pseudo = privacy.Pseudonymiser(b"recall", protected=frozenset(seed.MERCHANTS))
    texts = [t for row in chunk.expense for t in (row[3], row[4], row[5]) if t]
    for row in chunk.agent_trace:
        texts += [message["content"] for message in json.loads(row[3])["messages"]]
    outputs = [pseudo.scrub_text(text) for text in texts]
    by_kind = Counter(kind for _, where, kind, _ in planted.values if "session" not in where)
    joined = "\n".join(outputs)
    missed = {value for _, where, _, value in planted.values if value in joined}
    values = {value for *_, value in planted.values}
    clean = [
        (t, o)
        for t, o in zip(texts, outputs, strict=True)
        if not t.startswith("{") and not any(v in t for v in values)  # not the tool results
    ]
    altered = [o for t, o in clean if t != o]
    print(
        "\nplanted values in free text by kind:", dict(by_kind), "missed:", len(missed),
        f"| PII-free texts: {len(clean)}, altered: {len(altered)}",
    )  # fmt: skip
    assert missed == set()
    assert set(by_kind) == {"email", "phone", "card", "iban", "address", "name", "ip"}
    assert len(clean) > 2000 and altered == []
