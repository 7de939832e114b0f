"""What one training example is, computed per Arrow batch of raw rows.

This is the code Spark's Python workers run (``features.build``'s examples pass) and the
single-process engines of perf/bench_features.py call on the same batches, so every engine
derives the same example from the same raw row. It imports only pyarrow, numpy and the
tiktoken encoding, which keeps a fresh Python worker's start short.

Per raw row (docs/features.md, "What one example is"): ``example_id`` = first 32 hex of
sha256(trace_id US event_id); ``completion`` = corrected_output if override_flag else
agent_output; ``reward`` = 1 - override_flag; ``prompt_tokens`` / ``completion_tokens`` =
cl100k_base tokens of every message's content (summed) and of the completion; ``prompt_hash``
= sha256 of the messages (the no-identical-prompt rule); ``drop_reason`` = the first reason
that applies, or null.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from pria_ml.data import contract, tokens
from pria_ml.data.tokens import count_tokens

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import tiktoken

DEFAULT_MAX_TOKENS = 4096  # prompt + completion, in cl100k_base tokens

# The raw columns build-features reads; the others are checked, not used.
RAW_INPUT = (
    "event_id",
    "trace_id",
    "record_date",
    "override_flag",
    "prompt_messages",
    "agent_output",
    "corrected_output",
)
# The raw columns the final pass reads back to write the wide example columns.
RAW_WIDE = ("trace_id", "record_date", "override_flag", "prompt_messages", "agent_output",
            "corrected_output")  # fmt: skip

# Why a raw row is not an example, in order of precedence (a row gets the first that applies).
MISSING_KEY = "missing_key_field"  # trace_id, event_id, record_date or override_flag is null
EMPTY_PROMPT = "empty_prompt"  # no message with non-blank content
EMPTY_COMPLETION = "empty_completion"  # the approved action is null or blank
OVER_LENGTH = "over_length"  # prompt_tokens + completion_tokens > max_tokens
DROP_REASONS = (MISSING_KEY, EMPTY_PROMPT, EMPTY_COMPLETION, OVER_LENGTH)

# What the Spark pass sends back per raw row: everything the plan and the final pass need,
# without the wide text columns (those are read back from raw.parquet by row index).
NARROW_DDL = (
    "row long, example_id string, trace_id string, record_date date, reward float, "
    "prompt_tokens int, completion_tokens int, prompt_hash string, drop_reason string"
)


# The feature columns before up-sampling, plus the prompt's hash (for the no-identical-prompt
# rule) and why the row is dropped, if it is.
@functools.cache
def example_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [f for f in contract.FEATURE_SCHEMA if f.name != "upsample_copy"]
        + [pa.field("prompt_hash", pa.string()), pa.field("drop_reason", pa.string())]
    )


def wide_columns(batch: pa.RecordBatch | pa.Table) -> dict[str, pa.Array]:
    """The example columns that need no tokenising, from raw rows: trace_id, record_date,
    prompt, completion, override_flag, reward."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    override = batch.column("override_flag")
    override_np = pc.fill_null(override, False).to_numpy(zero_copy_only=False)
    completion = pc.if_else(
        pa.array(override_np), batch.column("corrected_output"), batch.column("agent_output")
    ).cast(pa.string())
    return {
        "trace_id": batch.column("trace_id").cast(pa.string()),
        "record_date": batch.column("record_date"),
        "prompt": batch.column("prompt_messages").cast(contract.PROMPT),
        "completion": completion,
        "override_flag": override,
        "reward": pa.array(np.where(override_np, 0.0, 1.0).astype(np.float32)),
    }


def example_batch(
    batch: pa.RecordBatch,
    encoding: tiktoken.Encoding,
    *,
    max_tokens: int,
    num_threads: int = 1,
) -> pa.RecordBatch:
    """Raw rows -> example rows (``example_schema()``), one for one, with drop reasons marked.

    Token counts come from one plain loop over the batch's distinct texts (``num_threads`` > 1
    uses tiktoken's batch encoder instead, one thread-pool task per text). Equal texts in a
    batch are encoded once.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = batch.num_rows
    wide = wide_columns(batch)
    prompt, completion = wide["prompt"], wide["completion"]

    messages = pc.list_flatten(prompt)
    parents = pc.list_parent_indices(prompt).to_numpy()
    role = pc.fill_null(pc.struct_field(messages, "role"), "")
    content = pc.fill_null(pc.struct_field(messages, "content"), "")

    message_tokens = _token_counts(content, encoding, num_threads)
    prompt_tokens = np.bincount(parents, weights=message_tokens, minlength=rows)
    completion_tokens = _token_counts(pc.fill_null(completion, ""), encoding, num_threads)
    has_text = np.bincount(parents, weights=_nonblank(content), minlength=rows) > 0

    # One string per prompt: role US content, messages joined by RS; its hash identifies the
    # prompt for the no-identical-prompt-in-two-splits rule.
    per_message = pc.binary_join_element_wise(role, content, "\x1f")
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(parents, minlength=rows), out=offsets[1:])
    canonical = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), per_message), "\x1e")
    prompt_hash = [digest(text) for text in canonical.to_pylist()]

    example_id = [
        digest(f"{trace}\x1f{event}")
        for trace, event in zip(
            pc.fill_null(batch.column("trace_id"), "").to_pylist(),
            pc.fill_null(batch.column("event_id"), "").to_pylist(),
            strict=True,
        )
    ]

    drop = np.full(rows, None, dtype=object)
    drop[prompt_tokens + completion_tokens > max_tokens] = OVER_LENGTH
    drop[~_nonblank(completion)] = EMPTY_COMPLETION
    drop[~has_text] = EMPTY_PROMPT
    key_missing = np.zeros(rows, dtype=bool)
    for name in ("trace_id", "event_id", "record_date", "override_flag"):
        key_missing |= batch.column(name).is_null().to_numpy(zero_copy_only=False)
    drop[key_missing] = MISSING_KEY

    return pa.RecordBatch.from_arrays(
        [
            pa.array(example_id, pa.string()),
            wide["trace_id"],
            wide["record_date"],
            prompt,
            completion,
            wide["override_flag"],
            wide["reward"],
            pa.array(prompt_tokens.astype(np.int32)),
            pa.array(completion_tokens.astype(np.int32)),
            pa.array(prompt_hash, pa.string()),
            pa.array(drop, pa.string()),
        ],
        schema=example_schema(),
    )


NARROW_COLUMNS = (
    "example_id",
    "trace_id",
    "record_date",
    "reward",
    "prompt_tokens",
    "completion_tokens",
    "prompt_hash",
    "drop_reason",
)


def read_units(row_groups: list[int], tasks: int) -> list[tuple[int, int, int]]:
    """How the examples pass divides raw.parquet: ``(row group, first row, end row)`` slices,
    whole row groups when there are at least ``tasks`` of them, else each group cut into equal
    slices so that every core gets work (``row_groups``: the rows of each group)."""
    pieces = max(1, -(-tasks // max(len(row_groups), 1)))
    units = []
    for group, rows in enumerate(row_groups):
        step = max(1, -(-rows // pieces))
        units += [(group, begin, min(begin + step, rows)) for begin in range(0, rows, step)]
    return units


def narrow_partition(
    ids: Iterator[pa.RecordBatch],
    *,
    raw_path: str,
    units: list[tuple[int, int, int]],
    max_tokens: int,
    encoding_file: str | None,
) -> Iterator[pa.RecordBatch]:
    """Spark's examples pass (``mapInArrow`` over unit ids): each unit's raw rows, read here
    from raw.parquet with pyarrow (the JVM never decodes the wide text columns), ->
    ``NARROW_DDL`` rows, in batches of 10,000. The encoding is parsed once per Python worker."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    encoding = tokens.encoding(encoding_file)
    parquet = pq.ParquetFile(raw_path)
    meta = parquet.metadata
    starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
    for batch in ids:
        for unit in batch.column(0).to_pylist():
            group, begin, end = units[unit]
            rows = parquet.read_row_group(group, columns=list(RAW_INPUT)).slice(begin, end - begin)
            offset = int(starts[group]) + begin
            for piece in rows.to_batches(max_chunksize=10_000):
                example = example_batch(piece, encoding, max_tokens=max_tokens)
                row = pa.array(np.arange(offset, offset + piece.num_rows), pa.int64())
                offset += piece.num_rows
                yield pa.RecordBatch.from_arrays(
                    [row, *(example.column(name) for name in NARROW_COLUMNS)],
                    names=["row", *NARROW_COLUMNS],
                )


def warm_worker(encoding_file: str | None) -> int:
    """Parse the encoding in a Python worker before the first real task needs it."""
    return tokens.encoding(encoding_file).n_vocab


def digest(text: str) -> str:
    """First 32 hex of sha256(text): example ids and prompt hashes."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _nonblank(texts: pa.Array) -> np.ndarray:
    import pyarrow.compute as pc

    length = pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(texts, "")))
    return pc.greater(length, 0).to_numpy(zero_copy_only=False)


def _token_counts(texts: pa.Array, encoding: tiktoken.Encoding, num_threads: int) -> np.ndarray:
    # System prompts and tool schemas repeat across rows: encode each distinct text once.
    import numpy as np

    values = texts.to_pylist()
    position = {text: i for i, text in enumerate(dict.fromkeys(values))}
    counts = np.asarray(count_tokens(list(position), encoding, num_threads=num_threads), np.int64)
    return counts[np.fromiter((position[text] for text in values), np.int64, len(values))]
