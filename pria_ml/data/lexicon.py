"""The two word lists the name, address and contact detectors lean on, loaded once per process.

- ``first_names()``: the ~45,000 first names (61,000 with spelling variants) of Jörg Michael's
  ``nam_dict.txt`` (GNU FDL 1.2), read from the data file inside the ``gender-guesser``
  package; none of that package's (GPL) code is imported. docs/privacy.md has the licence note.
- ``common_words()``: whole-word tokens of the cl100k ranks file that ships with pria-ml.
"""

from __future__ import annotations

from functools import cache

from pria_ml.errors import ConfigError


@cache
def first_names() -> frozenset[str]:
    """The name gazetteer: the ~45,000 first names of nam_dict.txt (Jörg Michael, GNU FDL 1.2),
    lower-cased. The file ships in the ``gender-guesser`` package; only the data is read, none
    of that package's (GPL) code is imported."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("gender_guesser")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the name gazetteer is missing: install the gender-guesser package")
    path = Path(next(iter(spec.submodule_search_locations)), "data", "nam_dict.txt")
    names = set()
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line[:1] in ("#", "=") or len(line.split()) < 2:
                continue
            name = line.split()[1].lower()
            names.update(
                {name.replace("+", sep) for sep in ("", " ", "-")} if "+" in name else {name}
            )
    return frozenset(names)


@cache
def common_words() -> frozenset[str]:
    """Words common enough in written text to be a single cl100k token with a leading space,
    lower-case (" flight", " dinner", " berlin") or capitalised (" Manchester", " Munich"); not
    " kamau", " Wiśniewska". The lexicon that tells an ordinary capitalised word or a well-known
    place from a rare name. Read from the tokenizer ranks file that ships with pria-ml
    (pria_ml/assets), so nothing is downloaded."""
    import base64
    from importlib import resources

    words = set()
    with resources.files("pria_ml").joinpath("assets/cl100k_base.tiktoken").open("rb") as ranks:
        for line in ranks:
            token = base64.b64decode(line.split(maxsplit=1)[0])
            if token[:1] == b" " and len(token) > 2:
                word = token[1:].decode("utf-8", "replace")
                if word.isalpha() and (word.islower() or word[1:].islower()):
                    words.add(word)
    return frozenset(words)


@cache
def lower_ranks() -> dict[str, int]:
    """The cl100k rank of each lower-case whole-word token (`` john`` 40,742, `` down`` 1,523):
    how ordinary a word is when written in lower case. A low rank is a frequent word."""
    import base64
    from importlib import resources

    ranks = {}
    with resources.files("pria_ml").joinpath("assets/cl100k_base.tiktoken").open("rb") as lines:
        for line in lines:
            encoded, rank = line.split()
            token = base64.b64decode(encoded)
            if token[:1] == b" " and len(token) > 2:
                word = token[1:].decode("utf-8", "replace")
                if word.isalpha() and word.islower():
                    ranks[word] = int(rank)
    return ranks
