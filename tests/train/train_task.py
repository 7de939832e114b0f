"""The training tests' task and its feature splits (imported by name by the test modules, so
this module's name must be unique across the test folders)."""

from __future__ import annotations

import datetime
import random

import pyarrow as pa

from pria_ml import features
from pria_ml.data.contract import FEATURE_SCHEMA
from pria_ml.data.storage import Storage

MERCHANT_CATEGORY = {
    "Lufthansa": "travel",
    "Uber": "transport",
    "Hilton": "lodging",
    "Starbucks": "meals",
    "Amazon": "office",
    "Staples": "office",
    "Shell": "fuel",
    "Deutsche Bahn": "transport",
    "Marriott": "lodging",
    "Dropbox": "software",
    "Slack": "software",
    "Vodafone": "telecom",
    "IKEA": "equipment",
    "Apple": "equipment",
    "Pret": "meals",
    "Hertz": "travel",
}

DATE = datetime.date(2026, 11, 24)

# The demo profile shortened for a 2-core test machine; the resume test's subprocess passes the
# same values as CLI options, so both runs must produce the same adapter.
TEST_OVERRIDES = {
    "max_steps": 24,
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 8,
    "max_length": 256,
    "save_steps": 8,
    "logging_steps": 4,
    "warmup_steps": 2,
    "lora_dropout": 0.0,
}


def task_rows(
    n: int, seed: int, record_date: datetime.date = DATE, *, filler: int = 0
) -> list[dict]:
    """``n`` examples of the merchant -> category task, as features-split rows; with
    ``filler``, each user message carries up to that many extra words (uneven lengths)."""
    rng = random.Random(seed)
    merchants = sorted(MERCHANT_CATEGORY)
    rows = []
    for i in range(n):
        merchant = rng.choice(merchants)
        amount = f"{rng.randint(3, 900)}.{rng.randint(0, 99):02d}"
        note = rng.choice(["client lunch", "team trip", "receipt attached", "card paid", ""])
        overridden = rng.random() < 0.3
        if filler:
            note = f"{note} " + " ".join(["details"] * rng.randint(0, filler))
        prompt = [
            {"role": "system", "content": "You are PRIA's expense agent. Reply with the action."},
            {"role": "user", "content": f"Categorise: {merchant} {amount} EUR {note}".strip()},
            {"role": "tool", "content": f"merchant lookup: {merchant} found"},
        ]
        completion = f"set_category {MERCHANT_CATEGORY[merchant]}"
        rows.append(
            {
                "example_id": f"ex-{seed}-{i}",
                "trace_id": f"tr-{seed}-{i}",
                "record_date": record_date,
                "prompt": prompt,
                "completion": completion,
                "override_flag": overridden,
                "reward": 0.0 if overridden else 1.0,
                "prompt_tokens": 30,
                "completion_tokens": 4,
                "upsample_copy": 0,
            }
        )
    return rows


def write_features(
    storage: Storage,
    date: datetime.date = DATE,
    *,
    train: int = 192,
    val: int = 24,
    record_date: datetime.date = DATE,
    filler: int = 0,
) -> None:
    """Publish train / val / test splits following docs/data-contract.md, with the features
    manifest that vouches for them (training reads splits only through it).

    Every date gets the same examples (``record_date`` fixed), so runs on different dates with
    the same options must train the same adapter.
    """
    tables = {
        split: pa.Table.from_pylist(
            task_rows(n, seed, record_date, filler=filler), schema=FEATURE_SCHEMA
        )
        for split, n, seed in (("train", train, 1), ("val", val, 2), ("test", val, 3))
    }
    features.publish_tables(storage, date, tables)
