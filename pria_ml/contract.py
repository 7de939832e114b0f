"""What passes between stages, as docs/data-contract.md fixes it: the storage keys and the
Parquet schemas.

``extract`` writes RAW_SCHEMA, ``build-features`` checks its input against it and writes
FEATURE_SCHEMA, ``train`` and the evaluator read that. One definition, so producer and consumers
cannot drift apart; change docs/data-contract.md together with this file.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa


def dataset_key(date: dt.date, name: str) -> str:
    """``datasets/D/<name>``: where the dataset files of date D live in storage."""
    return f"datasets/{date.isoformat()}/{name}"


def features_key(date: dt.date, name: str) -> str:
    """``datasets/D/features/<name>``: the splits and dataset card of date D."""
    return dataset_key(date, f"features/{name}")


def adapter_keys(date: dt.date) -> tuple[str, str]:
    """``(weights, config)`` keys of the adapter trained on ``date``'s dataset."""
    return f"adapters/{date.isoformat()}.safetensors", f"adapters/{date.isoformat()}.config.json"


MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
PROMPT = pa.list_(MESSAGE)

RAW_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("trace_id", pa.string(), nullable=False),
        pa.field("record_date", pa.date32(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("override_flag", pa.bool_(), nullable=False),
        pa.field("prompt_messages", PROMPT, nullable=False),
        pa.field("agent_output", pa.string(), nullable=False),
        pa.field("corrected_output", pa.string()),
        pa.field("category_id", pa.int32()),
        pa.field("expense_text", pa.string()),
    ]
)

FEATURE_SCHEMA = pa.schema(
    [
        ("example_id", pa.string()),
        ("trace_id", pa.string()),
        ("record_date", pa.date32()),
        ("prompt", PROMPT),
        ("completion", pa.string()),
        ("override_flag", pa.bool_()),
        ("reward", pa.float32()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("upsample_copy", pa.int16()),
    ]
)

# Rows extraction could not use, with why (quarantine.parquet beside raw.parquet).
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("source_key", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("detail", pa.string(), nullable=False),
    ]
)
