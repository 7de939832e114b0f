# ruff: noqa: RUF001, RUF002 - the patterns spell fullwidth and look-alike characters on purpose
"""The text the PII detectors read, and the encodings they read through. Pure functions.

- ``clean(text)``: what any text becomes before anything else looks at it: lone surrogates
  (from ``\\ud800`` escapes in JSON or bytes decoded with ``surrogateescape``) and bytes that
  are not UTF-8 become U+FFFD, so nothing downstream (regexes, Parquet) can fail on them.
  ``unfit(text)`` says why a text cannot be scrubbed at all (too long, binary).
- ``view(text)``: a normalised view of ``text`` and the map back to its offsets. People and
  tools hide contacts from pattern matchers - ``jane (at) example [dot] com``, a fullwidth
  ``＠``, ``&#64;``, digits spelled out (``oh seven seven ...``, ``null eins zwei``), phone
  groups joined by no-break spaces or en dashes. The view undoes that (compatibility forms of
  NFKC, unified spaces and dashes, HTML entities, at / dot words and brackets, spelled digits
  in English, German, French and Spanish), the detectors run on the view, and every finding is
  mapped back so that the *whole* original span is replaced.
- ``encoded_runs(text)``: percent-encoded runs (``%40`` and ``+`` for a space) and base64
  runs that decode to text, with ``decode`` / ``encode`` to scrub them in their own encoding.

Every pattern here is linear in the length of the text: each run is anchored by a look-behind
that keeps it from restarting inside itself, and repetitions are bounded.
"""

from __future__ import annotations

import base64
import binascii
import html
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from pria_ml.data.lexicon import common_words, first_names

# Texts longer than this are not scrubbed but quarantined (extract.py): no message, note or
# tool-result string of an expense conversation is this long, and a detector pass over a
# megabyte would hold a worker for seconds.
MAX_TEXT_CHARS = 20_000
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Control characters other than tab, newline and carriage return, the replacement character
# and the private-use area: a text made of them is a binary blob, not something a person wrote.
_BINARY = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd\ue000-\uf8ff]")


def clean(text: str | bytes) -> str:
    """``text`` as valid Unicode: undecodable bytes and lone surrogates become U+FFFD."""
    if isinstance(text, bytes | bytearray | memoryview):
        return bytes(text).decode("utf-8", "replace")
    if _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("\ufffd", text)


def unfit(text: str) -> str | None:
    """Why ``text`` cannot be scrubbed with confidence (it is quarantined instead), or None:
    ``oversized_text`` above MAX_TEXT_CHARS, ``binary_content`` when more than a tenth of it
    (and at least eight characters) is control characters, replacement characters or private
    use."""
    if len(text) > MAX_TEXT_CHARS:
        return "oversized_text"
    if len(text) >= 8:
        odd = len(_BINARY.findall(text))
        if odd >= 8 and odd * 10 > len(text):
            return "binary_content"
    return None


# --- the normalised view ----------------------------------------------------------------------

_AT_WORDS = r"at|arroba|arobase|ät|klammeraffe|chiocciola|snabel-a|malpa|małpa|zavináč|кукла"
_DOT_WORDS = r"dot|punkt|point|punto|ponto|piste|kropka|tečka|pont|nokta|точка|dott"
_OPEN, _CLOSE = r"[\(\[\{<«]", r"[\)\]\}>»]"
_AT = (
    rf"\s*(?:{_OPEN}\s*(?i:{_AT_WORDS}|@)\s*{_CLOSE}|[@＠﹫])\s*"
    rf"|\s+(?i:{_AT_WORDS})\s+|\s*-(?i:at)-\s*|\s*_(?i:at)_\s*"
)
_DOT = (
    rf"\s*{_OPEN}\s*(?i:{_DOT_WORDS}|\.)\s*{_CLOSE}\s*|\s+(?i:{_DOT_WORDS})\s+"
    r"|\s*-(?i:dot)-\s*|\s*_(?i:dot)_\s*|[.．。｡]"
)
_LABEL = r"[\w+-]{1,64}"
# A whole obfuscated address: local part, an at, labels joined by dots, a top-level domain.
_OBFUSCATED_EMAIL = (
    rf"(?<![\w.+-]){_LABEL}(?:(?:{_DOT}){_LABEL}){{0,4}}(?P<at>{_AT})"
    rf"{_LABEL}(?:(?:{_DOT}){_LABEL}){{0,4}}(?:{_DOT})[^\W\d_]{{2,12}}(?!\w)"
)
_AT_ONLY = re.compile(_AT)
_DOT_ONLY = re.compile(_DOT)

_DIGIT_WORDS = {
    # English
    "zero": "0", "oh": "0", "o": "0", "nil": "0", "one": "1", "two": "2", "three": "3",
    "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
    # German
    "null": "0", "eins": "1", "zwei": "2", "zwo": "2", "drei": "3", "vier": "4", "fünf": "5",
    "funf": "5", "fuenf": "5", "sechs": "6", "sieben": "7", "acht": "8", "neun": "9",
    # French
    "zéro": "0", "un": "1", "deux": "2", "trois": "3", "quatre": "4", "cinq": "5", "sept": "7",
    "huit": "8", "neuf": "9",
    # Spanish
    "cero": "0", "uno": "1", "dos": "2", "tres": "3", "cuatro": "4", "cinco": "5", "seis": "6",
    "siete": "7", "ocho": "8", "nueve": "9",
}  # fmt: skip
_REPEAT_WORDS = {"double": 2, "triple": 3, "doppel": 2, "doble": 2}
_NUMBER_WORD = "|".join(sorted(set(_DIGIT_WORDS) | set(_REPEAT_WORDS), key=len, reverse=True))
_SPELLED_TOKEN = rf"(?:(?i:{_NUMBER_WORD})|\d{{1,4}})"
# Six or more tokens (digit words or short digit groups), maybe after "plus", that make seven
# or more digits: a phone number read out. Shorter runs ("one or two") are ordinary text.
_SPELLED = (
    rf"(?<![\w+])(?:(?i:plus)\s+|\+\s?)?{_SPELLED_TOKEN}"
    rf"(?:[\s,.\-/]{{1,3}}{_SPELLED_TOKEN}(?!\w)){{5,24}}"
)
_SPELLED_PART = re.compile(rf"(?i:{_NUMBER_WORD})|\d+|\+|(?i:plus)")
_ENTITY = r"&(?:#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
# Characters whose compatibility form (NFKC) is what a reader sees: fullwidth and halfwidth
# forms, small forms, mathematical letters and digits; and the spaces, dashes and invisible
# characters that split a number or an address so that no pattern sees it whole.
_SPECIAL = (
    r"[\u00a0\u00ad\u1680\u180e\u2000-\u200b\u2010-\u2015\u2028\u2029\u202f\u205f\u2060\u2212"
    r"\u2027\u2219\u22c5\u3000\ufe50-\ufe6f\ufeff\uff01-\uffef\U0001d400-\U0001d7ff]"
)
_VIEW = re.compile(
    rf"(?P<email>{_OBFUSCATED_EMAIL})|(?P<spelled>{_SPELLED})|(?P<entity>{_ENTITY})"
    rf"|(?P<special>{_SPECIAL}+)"
)
_VIEW_HINT = re.compile(rf"{_SPECIAL}|&[#A-Za-z]|[\(\[\{{<«\s_-](?i:{_AT_WORDS})[\)\]\}}>»\s_-]")
_SPELLED_HINT = re.compile(rf"(?i:\b(?:{_NUMBER_WORD})\b.{{0,12}}){{4}}")
# An exact shortcut for _SPELLED_HINT on ASCII text: every number word is letters only and the
# hint bounds each by \b, so each of its four words is a whole \w run; in ASCII text (?i) matches
# an ASCII word exactly when the lower cases are equal, and no word with "ü" or "é" can match. An
# ASCII text with fewer than four such runs cannot match (most texts: the regex is tried at every
# word and costs more than the rest of the view).
_ASCII_NUMBER_WORDS = frozenset(w for w in (*_DIGIT_WORDS, *_REPEAT_WORDS) if w.isascii())
_WORD_RUN = re.compile(r"\w+")
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
_INVISIBLE = frozenset("\u00ad\u180e\u200b\u2060\ufeff")
_DOTS = frozenset("\u2027\u2219\u22c5")


@dataclass(frozen=True)
class View:
    """``text`` as the detectors read it; ``starts[i]:ends[i]`` is the original span behind
    view character ``i`` (a normalised piece maps every character to the piece's whole span)."""

    text: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span behind view span ``[start, end)``."""
        if self.starts is None or self.ends is None:
            return start, end
        return self.starts[start], self.ends[end - 1]


def _special(piece: str) -> str:
    out = []
    for ch in piece:
        if ch in _INVISIBLE:
            continue
        if ch in _DASHES:
            out.append("-")
        elif ch in _DOTS:
            out.append(".")
        elif unicodedata.category(ch) in ("Zs", "Zl", "Zp"):
            out.append(" ")
        else:
            out.append(unicodedata.normalize("NFKC", ch))
    return "".join(out)


def _email(piece: str, at: tuple[int, int]) -> str:
    local, domain = piece[: at[0]], piece[at[1] :]
    local = _DOT_ONLY.sub(".", local)
    return f"{local}@{_DOT_ONLY.sub('.', domain)}"


def _spelled(piece: str) -> str:
    out, repeat = [], 1
    for part in _SPELLED_PART.findall(piece):
        lower = part.lower()
        if lower in ("+", "plus"):
            out.append("+")
        elif lower in _REPEAT_WORDS:
            repeat = _REPEAT_WORDS[lower]
            continue
        elif part.isdigit():
            out.append(part[:1] * (repeat - 1) + part)
        else:
            out.append(_DIGIT_WORDS[lower] * repeat)
        repeat = 1
    return "".join(out)


def view(text: str) -> View:
    """The normalised view of ``text`` (itself, with no map, when there is nothing to undo)."""
    if _VIEW_HINT.search(text) is None and not _may_spell_digits(text):
        return View(text)
    pieces: list[tuple[str, int, int, bool]] = []  # (view text, start, end, exact)
    last = 0
    for match in _VIEW.finditer(text):
        kind = match.lastgroup
        piece = match.group()
        if kind == "email":
            local_at = match.start("at") - match.start(), match.end("at") - match.start()
            local = piece[: local_at[0]].strip()
            if not _AT_ONLY.fullmatch(piece[local_at[0] : local_at[1]].strip() or " ") and (
                _plain_at_is_prose(piece, local_at, local)
            ):
                continue
            new = _email(piece, local_at)
        elif kind == "spelled":
            new = _spelled(piece)
            if sum(ch.isdigit() for ch in new) < 7 or sum(ch.isalpha() for ch in piece) < 6:
                continue
        elif kind == "entity":
            new = html.unescape(piece)
        else:
            new = _special(piece)
        if new == piece:
            continue
        if match.start() > last:
            pieces.append((text[last : match.start()], last, match.start(), True))
        pieces.append(
            (new, match.start(), match.end(), kind == "special" and len(new) == len(piece))
        )
        last = match.end()
    if not pieces:
        return View(text)
    pieces.append((text[last:], last, len(text), True))
    starts: list[int] = []
    ends: list[int] = []
    for new, start, end, exact in pieces:
        if exact and len(new) == end - start:
            starts.extend(range(start, end))
            ends.extend(range(start + 1, end + 1))
        else:
            starts.extend([start] * len(new))
            ends.extend([end] * len(new))
    return View("".join(p[0] for p in pieces), tuple(starts), tuple(ends))


def _may_spell_digits(text: str) -> bool:
    """Whether _SPELLED_HINT matches ``text`` (the same answer, faster on ASCII text)."""
    if text.isascii():
        spelled = 0
        for word in _WORD_RUN.findall(text.lower()):
            if word in _ASCII_NUMBER_WORDS:
                spelled += 1
        if spelled < 4:
            return False
    return _SPELLED_HINT.search(text) is not None


def _plain_at_is_prose(piece: str, at: tuple[int, int], local: str) -> bool:
    """``dinner at hotel.com``: an at written as a plain word, after an ordinary word."""
    word = piece[at[0] : at[1]].strip()
    if word.startswith(("(", "[", "{", "<", "«", "-", "_")) or word in ("@", "＠", "﹫"):
        return False
    bare = local.lower()
    return bare in common_words() and bare not in first_names()


# --- encodings --------------------------------------------------------------------------------

# A run of URL characters holding at least one %XX escape (``%40``, ``%2B``); ``+`` is a space
# in the query-string style.
_PERCENT = re.compile(
    r"(?<![%\w.~!*'();:@&=+$,/?#\[\]-])[\w.~!*'();:@&=+$,/?#\[\]%-]*%[0-9A-Fa-f]{2}[\w.~!*'();:@&=+$,/?#\[\]%-]*"
)
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}(?![A-Za-z0-9+/=_-])")
_PRINTABLE = re.compile(r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]*")


@dataclass(frozen=True)
class Encoded:
    """``text[start:end]`` is ``encoding`` of ``decoded``."""

    start: int
    end: int
    encoding: str  # "percent", "percent+", "base64", "base64url" (+ "=" when padded)
    decoded: str


def _text_of(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 4 or _PRINTABLE.fullmatch(text) is None:
        return None
    # Decoded text a person or a tool wrote has spaces, punctuation or structure; random bytes
    # that happen to be UTF-8 rarely do.
    letters = sum(ch.isalnum() for ch in text)
    return text if letters * 2 >= len(text) and any(not ch.isalnum() for ch in text) else None


def base64_text(run: str) -> Encoded | None:
    """``run`` decoded as base64 (standard or URL-safe alphabet) when that gives text."""
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    url = "-" in body or "_" in body
    try:
        data = base64.b64decode(
            body + "=" * (-len(body) % 4), altchars=b"-_" if url else None, validate=True
        )
    except (binascii.Error, ValueError):
        return None
    text = _text_of(data)
    if text is None:
        return None
    encoding = ("base64url" if url else "base64") + ("=" if run.endswith("=") else "")
    return Encoded(0, len(run), encoding, text)


def encoded_runs(text: str) -> list[Encoded]:
    """The percent-encoded and base64 runs of ``text`` that decode to something else."""
    found = []
    if "%" in text:
        for match in _PERCENT.finditer(text):
            run = match.group().rstrip(".,;:!?)")
            plus = "+" in run and " " not in run
            decoded = unquote_plus(run) if plus else unquote(run)
            if decoded != run:
                kind = "percent+" if plus else "percent"
                found.append(Encoded(match.start(), match.start() + len(run), kind, decoded))
    for match in _BASE64.finditer(text):
        run = match.group()
        if not any(ch.isdigit() or ch in "+/=_-" for ch in run):
            continue  # a long word
        decoded = base64_text(run)
        if decoded is not None:
            found.append(Encoded(match.start(), match.end(), decoded.encoding, decoded.decoded))
    return found


_URL_SAFE = "/:@&=?#;,$!*'()[]~"


def decode(value: str, encoding: str) -> str | None:
    """``value`` decoded from ``encoding``; None when it does not decode to text."""
    if encoding.startswith("percent"):
        return unquote_plus(value) if encoding == "percent+" else unquote(value)
    found = base64_text(value)
    return found.decoded if found is not None else None


def encode(text: str, encoding: str) -> str:
    """``text`` in ``encoding`` (one of Encoded.encoding's values)."""
    if encoding == "percent+":
        return quote_plus(text, safe=_URL_SAFE.replace("&", "").replace("=", "") + "&=")
    if encoding == "percent":
        return quote(text, safe=_URL_SAFE)
    data = text.encode()
    out = (
        base64.urlsafe_b64encode(data)
        if encoding.startswith("base64url")
        else base64.b64encode(data)
    ).decode()
    return out if encoding.endswith("=") else out.rstrip("=")
