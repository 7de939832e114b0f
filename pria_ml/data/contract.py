"""What passes between stages, as docs/data-contract.md fixes it: the storage keys and the
Parquet schemas.

``extract`` writes RAW_SCHEMA, ``build-features`` checks its input against it and writes
FEATURE_SCHEMA, ``train`` and the evaluator read that. One definition, so producer and consumers
cannot drift apart; change docs/data-contract.md together with this file.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml.data.storage import LocalStorage, sha256_file
from pria_ml.errors import ArtifactMismatch, DataError, StorageError

if TYPE_CHECKING:
    from pria_ml.data.storage import Storage


def dataset_key(date: dt.date, name: str) -> str:
    """``datasets/D/<name>``: where the dataset files of date D live in storage."""
    return f"datasets/{date.isoformat()}/{name}"


def features_key(date: dt.date, name: str) -> str:
    """``datasets/D/features/<name>``: the splits and dataset card of date D."""
    return dataset_key(date, f"features/{name}")


def adapter_keys(date: dt.date, attempt: int = 1) -> tuple[str, str]:
    """``(weights, config)`` keys of attempt ``attempt`` of the adapter trained on ``date``'s
    dataset: ``adapters/D.safetensors`` for the first, ``adapters/D.a2.safetensors`` for the
    second (``train --retrain``), and so on. Every attempt has its own immutable keys."""
    if attempt < 1:
        raise ValueError(f"attempt {attempt} of {date}: attempts are numbered from 1")
    stem = date.isoformat() if attempt == 1 else f"{date.isoformat()}.a{attempt}"
    return f"adapters/{stem}.safetensors", f"adapters/{stem}.config.json"


# The Parquet schemas need pyarrow, which takes a fifth of a second to import: they are built on
# first use, so commands that only need storage keys (`rollback`, `--help`) stay fast.
_SCHEMA_NAMES = ("MESSAGE", "PROMPT", "RAW_SCHEMA", "FEATURE_SCHEMA", "QUARANTINE_SCHEMA")


@functools.cache
def _schemas() -> dict[str, Any]:
    import pyarrow as pa

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
    return {
        "MESSAGE": MESSAGE,
        "PROMPT": PROMPT,
        "RAW_SCHEMA": RAW_SCHEMA,
        "FEATURE_SCHEMA": FEATURE_SCHEMA,
        "QUARANTINE_SCHEMA": QUARANTINE_SCHEMA,
    }


def __getattr__(name: str) -> Any:
    if name in _SCHEMA_NAMES:
        return _schemas()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------------------------------------
# Completeness: a stage's output for date D is complete exactly when its manifest exists and
# every file the manifest lists matches the sha256 recorded there. Manifests list their files as
# ``files: {name: {"key": <storage key>, "sha256": ..., "bytes": ...}}``; an entry without
# ``key`` lives beside the manifest (extract's layout).


def manifest_files(manifest: dict[str, Any], manifest_key: str) -> dict[str, dict[str, Any]]:
    """``{name: entry}`` of the files a manifest vouches for, each entry with its ``key``."""
    directory = manifest_key.rsplit("/", 1)[0]
    return {
        name: {**entry, "key": entry.get("key") or f"{directory}/{name}"}
        for name, entry in manifest.get("files", {}).items()
    }


def read_manifest(storage: Storage, manifest_key: str) -> dict[str, Any] | None:
    """The manifest at ``manifest_key``; None when there is none (the stage has not finished)."""
    if not storage.exists(manifest_key):
        return None
    try:
        manifest = json.loads(storage.read_bytes(manifest_key))
    except (ValueError, StorageError):
        return None  # deleted between exists() and the read, or cut off: not complete
    return manifest if isinstance(manifest, dict) and manifest.get("files") else None


def stored_sha256(storage: Storage, key: str) -> str | None:
    """The sha256 of the object at ``key`` as stored now; None when it does not exist."""

    if not storage.exists(key):
        return None
    if isinstance(storage, LocalStorage):
        return sha256_file(storage.path(key))
    with tempfile.TemporaryDirectory(prefix="pria-verify-") as scratch:
        return sha256_file(storage.download(key, Path(scratch, "object")))


def mismatches(storage: Storage, manifest_key: str) -> list[str]:
    """Why the output behind ``manifest_key`` is not complete; empty when it is."""
    manifest = read_manifest(storage, manifest_key)
    if manifest is None:
        return [f"{storage.uri(manifest_key)} is missing"]
    problems = []
    for name, entry in manifest_files(manifest, manifest_key).items():
        actual = stored_sha256(storage, entry["key"])
        if actual is None:
            problems.append(f"{storage.uri(entry['key'])} is missing")
        elif actual != entry["sha256"]:
            problems.append(
                f"{storage.uri(entry['key'])} has sha256 {actual[:12]}, its manifest records "
                f"{entry['sha256'][:12]} ({name})"
            )
    return problems


def manifest_complete(storage: Storage, manifest_key: str) -> bool:
    """Whether the manifest exists and each file it lists matches its recorded sha256."""
    return not mismatches(storage, manifest_key)


def read_verified(
    storage: Storage, manifest_key: str, name: str, directory: Path
) -> tuple[Path, str]:
    """Download file ``name`` of the manifest at ``manifest_key`` into ``directory`` and check
    the downloaded bytes against the manifest's sha256; return the local path and that sha256
    (consumers record it instead of hashing the file again).

    Raises ``ArtifactMismatch`` when there is no manifest, it does not list ``name``, or the
    bytes differ (the producer is being re-run, or the object was changed behind its back).
    """

    manifest = read_manifest(storage, manifest_key)
    if manifest is None:
        raise ArtifactMismatch(
            f"{storage.uri(manifest_key)} is missing or unreadable, so nothing vouches for "
            f"{name}: run the stage that writes it (`pria-ml nightly --date D` runs each stage "
            "whose output is incomplete)"
        )
    files = manifest_files(manifest, manifest_key)
    if name not in files:
        raise ArtifactMismatch(
            f"{storage.uri(manifest_key)} lists {sorted(files)}, not {name!r}: rebuild that stage"
        )
    entry = files[name]
    path = storage.download(entry["key"], Path(directory) / name)
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise ArtifactMismatch(
            f"{storage.uri(entry['key'])} has sha256 {actual[:12]} but "
            f"{storage.uri(manifest_key)} records {entry['sha256'][:12]}: the file changed after "
            "its manifest was written; rebuild it (`pria-ml nightly --date D --from <stage> "
            "--force`)"
        )
    return path, actual


def write_manifest(storage: Storage, manifest_key: str, manifest: dict[str, Any]) -> str:
    """Write ``manifest`` (JSON, atomically, replacing the old one); return its URI.

    This write is the switch: until it lands readers see the previous manifest and the files it
    lists, afterwards the new ones; there is no moment that shows a mix.
    """
    body = json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n"
    return storage.write_bytes(manifest_key, body).uri


def split_path(storage, date: dt.date, split: str, directory: Path) -> tuple[Path, str]:
    """Download ``split`` of ``date`` through the features manifest into ``directory``,
    checked against the manifest's sha256; return the local path and that sha256.

    Raises ArtifactMismatch when there is no manifest or the split does not match it.
    """
    return read_verified(
        storage, features_key(date, "manifest.json"), f"{split}.parquet", directory
    )


def load_split(storage: Storage, date: dt.date, split: str) -> list[dict[str, Any]]:
    """Rows (``prompt``, ``completion``) of a feature split; DataError when missing or empty."""
    return read_split(storage, date, split)[0]


def read_split(storage: Storage, date: dt.date, split: str) -> tuple[list[dict[str, Any]], str]:
    """Rows (``prompt``, ``completion``, ``record_date``) of a feature split and its sha256,
    read through the features manifest (the bytes are checked against the manifest's sha256 on
    the way in); DataError when the split is missing, does not match its manifest, or is empty."""
    import pyarrow.parquet as pq

    key = features_key(date, "manifest.json")
    with tempfile.TemporaryDirectory(prefix="pria-split-") as scratch:
        try:
            path, sha256 = split_path(storage, date, split, Path(scratch))
            table = pq.read_table(path)
        except StorageError as exc:  # ArtifactMismatch included
            raise DataError(
                f"no {split} split at {storage.uri(key)} that the manifest vouches for ({exc}); "
                f"run `pria-ml build-features --date {date}`"
            ) from exc
    missing = {"prompt", "completion"} - set(table.column_names)
    if missing:
        raise DataError(
            f"{storage.uri(key)} lacks column(s) {sorted(missing)} (see docs/data-contract.md)"
        )
    if table.num_rows == 0:
        raise DataError(f"the {split} split {storage.uri(key)} has no rows; nothing to train on")
    # record_date too, for the trainer's warm start (which days the prod adapter has not seen)
    columns = [c for c in ("prompt", "completion", "record_date") if c in table.column_names]
    return table.select(columns).to_pylist(), sha256
