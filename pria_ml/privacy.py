# ruff: noqa: RUF001 - the patterns spell street words and names in their own alphabets
"""PII detection and keyed tokenisation: the privacy rules extraction applies before writing.

Two jobs, both pure (no I/O, no network, no model):

- ``find_pii(text)`` finds emails, phone numbers, payment card numbers, IBANs, IP addresses,
  street addresses and person names. Checksummed identifiers are validated by libraries (Luhn
  and IBAN mod-97 from ``python-stdnum``, phone numbering plans from ``phonenumbers``, IPs from
  ``ipaddress``); names use a first-name gazetteer of ~45,000 names from 50+ countries (the data
  file shipped inside ``gender-guesser``), honorifics and introductions ("Dear", "my name is"),
  and surname endings common across Europe and beyond. docs/privacy.md has the measured recall
  and the known limits.
- ``Tokeniser`` replaces every finding with a stable keyed token, ``<EMAIL_3f2a9c1b>``: the
  first 32 bits of HMAC-SHA256(key, kind + normalised value). The same value gives the same
  token on every night with the same key, so the model can still learn "same person", and
  nobody without the key can test a guess. ``Tokeniser.scrub`` removes user identifier fields
  (``user_id``, ``email``, ``name``, ``phone``, ``ip``, ...) from JSON at any depth and
  tokenises every remaining string.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from pria_ml.errors import ConfigError

if TYPE_CHECKING:
    from pria_ml.settings import Settings

# Highest priority first: when findings overlap, the earlier kind wins (an IBAN contains
# digit runs a phone detector would also like).
KINDS = ("EMAIL", "IBAN", "CARD", "IP", "PHONE", "ADDRESS", "NAME")

# Keys whose values identify a user; compared after lower-casing and mapping "-"/" " to "_".
IDENTIFIER_FIELDS = frozenset({
    "user", "user_id", "userid", "uid", "user_email", "email", "email_address", "e_mail", "mail",
    "name", "full_name", "first_name", "last_name", "given_name", "family_name", "surname",
    "display_name", "username", "user_name", "login", "phone", "phone_number", "mobile",
    "mobile_number", "telephone", "tel", "fax", "ip", "ip_address", "client_ip", "remote_ip",
    "remote_addr", "x_forwarded_for", "address", "street", "street_address", "postal_address",
    "home_address", "iban", "card", "card_number", "pan", "ssn", "national_id", "passport",
    "date_of_birth", "dob", "birth_date", "workspace_id", "device_id"
})  # fmt: skip
IDENTIFIER_SUFFIXES = ("_email", "_phone", "_ip", "_user_id", "_address", "_iban")


@dataclass(frozen=True)
class Finding:
    start: int
    end: int
    kind: str
    value: str


# --- detectors --------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
# A run of digits with the separators phone numbers are written with; validated afterwards.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+|00)?\(?\d[\d \u00a0().\-/]{5,22}\d(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w])"
)
_PHONE_CUE = re.compile(
    r"(?i)(?:tel|phone|mobile|cell|call|ring|fax|whatsapp|telefon|puhelin|numer|número|numero"
    r"|téléphone|portable|celular|contact|nummer|nr)\W{0,12}$"
)
_DATE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}$")

# Upper-case letters of the Latin scripts: names and street names start with one.
_UP = "A-Z" + "".join(ch for ch in map(chr, range(0xC0, 0x250)) if ch.isupper())
_CAP = rf"[{_UP}][\w'’.-]*"  # a capitalised word
_WORD = r"[^\W\d_][\w'’.-]*"  # any word
_NUMBER = r"\d{1,5}[A-Za-z]?(?:/\d{1,5})?"  # "12", "221B", "11/86"

_STREET_WORDS = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Boulevard|Blvd|Way|Place|Pl|Court|Ct|Square"
    r"|Sq|Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Row|Mews|Gardens|Walk|Trail|Circle"
    r"|Path|End|Marg|Nagar|Chowk"
)
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Piso|Depto|Int|Interior)\.?\s*#?\d{1,5}"
# "221B Baker Street", "74/391, Balasubramanian Path", "1318 Yorulmaz Views Apt. 390"
_ADDRESS_NUMBER_FIRST = re.compile(
    rf"\b{_NUMBER},?\s+(?:{_CAP}\s+){{0,3}}(?:{_STREET_WORDS})\b\.?(?:,?\s+{_UNIT})?"
    rf"|\b{_NUMBER}\s+(?:{_CAP}\s+){{1,3}}{_UNIT}"
)
_STREET_PREFIXES = (
    r"rue|avenue|av\.|boulevard|bd|chemin|allée|impasse|place|quai|route|via|viale|piazza"
    r"|piazzale|corso|largo|vicolo|contrada|borgo|incrocio|lungomare|calle|avenida|avda\.|paseo"
    r"|plaza|camino|ronda|carrera|carretera|cerrada|privada|prolongación|continuación"
    r"|circunvalación|andador|retorno|callejón|rua|travessa|praça|alameda|estrada|rodovia"
    r"|quadra|jardim|fazenda|chácara|vereda|ulica|ul\.|aleja|al\.|plac|pl\.|os\.|osiedle|ulice"
    r"|náměstí|nám\.|strada|str\.|bulevardul|calea|aleea|intrarea|șoseaua|soseaua|splaiul"
    r"|piața|sokak|sokağı|cadde|caddesi|cad\.|bulvarı|mahallesi|mah\.|ulitsa|prospekt|jalan"
    r"|jl\.|rruga|odos|leoforos"
)
_STREET_ABBREVIATIONS = r"Av\.?|R\.|Tv\.|Pça\.|Rod\."
_PARTICLES = r"(?:(?:de|du|des|la|le|l'|d'|del|della|di|da|do|dos|das|van|von|der|den)\s+)*"
# "ulica Baczyńskiego 66", "12, rue de la Paix", "Praça André Sampaio, 44", "rue Victoire Perrier"
_ADDRESS_PREFIX = re.compile(
    rf"(?:\b\d{{1,5}}[A-Za-z]?,?\s+)?(?:\b(?i:{_STREET_PREFIXES})|\b(?:{_STREET_ABBREVIATIONS}))"
    rf"\s+{_PARTICLES}{_CAP}(?:\s+{_PARTICLES}{_CAP}){{0,3}}?"
    rf"(?:,?\s+(?:No:?\s*|n[º°o]\.?\s*)?{_NUMBER}\b|(?=\s*$|\s*[,.;)\n]))"
)
_STREET_SUFFIXES = (
    r"straße|strasse|str\.|gasse|weg|platz|allee|ring|damm|ufer|gatan|vägen|gränd|torget"
    r"|stigen|backen|katu|tie|kuja|polku|kaari|rinne|raitti|väylä|tori|aukio|bulevardi|straat"
    r"|laan|gracht|plein|kade|singel|dreef|baan|pad|hof|steeg|dijk|markt|wal|vej|gade|plads"
    r"|vænge|veien|vegen|veg|gata|gaten|moen|vika|svingen|haugen|lia|åsen|bakken|stien|tunet"
    r"|jordet|sletta|grenda|toppen|kroken|løkka|holtet|stræde|ská|ská|ní|ých|ova|ého"
)
_STREET_TYPE_WORDS = (
    r"Allé|Alle|Vej|Gade|Plads|Vænge|katu|tie|kuja|polku|puistopolku|kaari|utca|út|útja|tér"
    r"|körút|sor|köz|Straße|Strasse|Weg|Platz|Gasse|Ring|laan|straat|weg|gata|vägen|gatan"
)
# "Hauptstraße 12", "Mannerheimintie 5 A 12", "Teglværks Allé 519", "József attila utca 212."
_ADDRESS_SUFFIX = re.compile(
    rf"\b{_CAP}(?:{_STREET_SUFFIXES})\s+{_NUMBER}(?:\s?[A-Za-z]\b)?(?:\s\d{{1,4}}\b)?"
    rf"|\b{_CAP}(?:\s+{_WORD}){{0,2}}\s+(?:{_STREET_TYPE_WORDS})\s+{_NUMBER}\.?"
)
# What follows "deliver to", "address:", "moved to": capitalised words and a house number.
_ADDRESS_CUE = re.compile(
    r"(?i:\b(?:address|adresse|adres|adresa|addr\.?|indirizzo|dirección|endereço|osoite|cím"
    r"|deliver(?:ed|y)?\s+to|mailed\s+to|ship(?:ped)?\s+to|sent\s+to|moved\s+to|located\s+at"
    r"|lives\s+at|based\s+at))\s*:?\s+"
    rf"(?P<address>(?:{_WORD}\s+){{0,3}}{_CAP}\s+{_NUMBER}\b|{_NUMBER},?\s+(?:{_CAP}\s*){{1,3}})"
)

_DIGIT = re.compile(r"\d")
_WORDS = re.compile(r"\w+")
_NAME_TOKEN = re.compile(r"[^\W\d_][\w'’-]*\.?")
_TITLES = re.compile(
    r"(?i)\b(?:mr|mrs|ms|miss|mx|dr|prof|herr|frau|mme|mlle|sr|sra|srta|srita|sig|sig\.ra|dott"
    r"|dott\.ssa|ing|arq|lic|mgr|bc|rndr|mudr|judr|pan|pani|bay|bayan|sayın|okt|uz|hr|fru|dhr"
    r"|mevr|shri|smt|don|doña|dña|univ\.prof)\.?\s+$"
)
_INTRO = re.compile(
    r"(?i)(?:\bname(?:\s+is)?|\bnamed|\bI\s+am|\bI'm|\bit's|\bthis\s+is|\bdear|\bhi|\bhello"
    r"|\bsigned|\bregards|\bthanks|\battendees?|\bguests?|\bcontact|\bcc|\bapproved\s+by"
    r"|\bsubmitted\s+by|\bwith)\W{0,3}$"
)
# Place names that are also first names in the gazetteer: on their own they make no person.
_PLACES = frozenset({
    "London", "Paris", "York", "Berlin", "Sydney", "Florence", "Austin", "Dallas", "Orlando",
    "Phoenix", "Madison", "Victoria", "Georgia", "Chelsea", "Lincoln", "Houston", "Denver",
    "Vienna", "Milan", "Lyon", "Valencia", "Santiago", "Israel", "India", "China", "America",
})  # fmt: skip
_NAME_PARTICLES = frozenset({
    "da", "de", "di", "do", "dos", "das", "del", "della", "van", "von", "der", "den", "ten", "ter",
    "la", "le", "du", "bin", "al", "y", "e"
})  # fmt: skip
_SURNAME_ENDINGS = (
    "son", "sen", "ski", "ska", "cki", "cka", "dzki", "wicz", "owicz", "ová", "ov", "ova", "ev",
    "eva", "enko", "escu", "eanu", "oğlu", "oglu", "poulos", "idis", "akis", "opoulou", "nen",
    "inen", "ez", "vić", "vic", "ić", "yan", "ian", "dze", "shvili", "ini", "elli", "etti",
    "ucci", "mann", "berg", "ström", "qvist", "kvist", "sson", "ler", "auer", "huber", "ak",
    "czyk", "czak", "ek", "oglou", "aki", "ishi", "moto", "yama", "kawa", "uchi",
)  # fmt: skip
# Capitalised words that follow a first name in business text without making a person.
_NOT_NAMES = frozenset({
    "Hotel", "Hotels", "Airlines", "Airline", "Air", "Airways", "Express", "Inc", "Ltd", "LLC",
    "GmbH", "AB", "AG", "SA", "AS", "Oy", "BV", "NV", "Plc", "Street", "Road", "Avenue", "Bank",
    "Group", "Cafe", "Café", "Restaurant", "Bar", "Grill", "House", "Centre", "Center", "Store",
    "Shop", "Market", "Media", "Video", "Communications", "Technologies", "Systems", "Summit",
    "Rail", "Cars", "Airport", "Station", "Burgers", "Direct", "Blu", "Inn", "One", "Kitchen",
    "Pizza", "Coffee", "Foods", "Services", "Solutions", "Consulting", "Partners", "Holdings",
    "International", "Pharmacy", "Taxi", "Parking", "Office", "Team", "Shuttle", "Scandinavian",
    "Royal", "Dutch", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December", "Club", "Lounge", "Stores", "Studio", "Park", "Mall", "Can",
    "Please", "New", "The", "And", "Our", "Your", "This", "That", "Thanks", "Hi", "Hello", "Dear",
    "Reply", "Call", "Approved", "Guest", "Lunch", "Dinner", "Deliver",
    "Questions", "Paid", "Receipt", "It's", "I'm"
})  # fmt: skip


def _iban_findings(text: str) -> list[Finding]:
    from stdnum import iban

    found = []
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # The pattern may run into a following upper-case word; drop trailing groups until valid.
        while len(candidate.replace(" ", "")) >= 15:
            if iban.is_valid(candidate):
                end = match.start() + len(candidate)
                found.append(Finding(match.start(), end, "IBAN", candidate))
                break
            candidate = candidate[:-1].rstrip()
    return found


def _card_findings(text: str) -> list[Finding]:
    from stdnum import luhn

    found = []
    for match in _CARD.finditer(text):
        digits = re.sub(r"\D", "", match.group())
        if 12 <= len(digits) <= 19 and luhn.is_valid(digits):
            found.append(Finding(match.start(), match.end(), "CARD", match.group()))
    return found


def _ip_findings(text: str) -> list[Finding]:
    found = []
    for pattern in (_IPV4, _IPV6):
        for match in pattern.finditer(text):
            value = match.group()
            if pattern is _IPV6 and sum(c.isalnum() for c in value) < 3:
                continue  # "a::b" shapes too short to be an address worth a token
            try:
                ipaddress.ip_address(value)
            except ValueError:
                continue
            found.append(Finding(match.start(), match.end(), "IP", value))
    return found


def _possible_international(value: str, digits: str) -> bool:
    import phonenumbers

    if not value.startswith(("+", "00")):
        return False
    try:
        number = phonenumbers.parse("+" + (digits[2:] if value.startswith("00") else digits))
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_possible_number(number)


def _phone_findings(text: str) -> list[Finding]:
    found = []
    for match in _PHONE.finditer(text):
        value = match.group().rstrip(" ./-(")
        if value.count("(") != value.count(")") and not value.startswith("("):
            value = value.split("(")[0].rstrip()
        digits = re.sub(r"\D", "", re.split(r"\s?(?:x|ext)", value)[0])
        if not 7 <= len(digits) <= 15 or _DATE.match(value):
            continue
        # International numbers must fit a numbering plan; national formats need length, a
        # trunk prefix or bracketed area code, or a cue word ("tel", "call", "numer") before.
        national = value.startswith(("0", "(")) and len(digits) >= 8
        cued = _PHONE_CUE.search(text[max(0, match.start() - 30) : match.start()]) is not None
        if not (_possible_international(value, digits) or len(digits) >= 9 or national or cued):
            continue
        found.append(Finding(match.start(), match.start() + len(value), "PHONE", value))
    return found


_PREFIX_WORDS = frozenset(
    w.lower().rstrip("\\.")
    for w in re.sub(r"\\\.", "", _STREET_PREFIXES + "|" + _STREET_ABBREVIATIONS).split("|")
)
_CUE_WORDS = frozenset({
    "address", "adresse", "adres", "adresa", "addr", "indirizzo", "dirección", "endereço",
    "osoite", "cím", "to", "at"
})  # fmt: skip


def _address_findings(text: str) -> list[Finding]:
    words = set(_WORDS.findall(text.lower()))
    patterns = []
    if _DIGIT.search(text):
        patterns += [_ADDRESS_NUMBER_FIRST, _ADDRESS_SUFFIX]
    if not words.isdisjoint(_PREFIX_WORDS):
        patterns.append(_ADDRESS_PREFIX)
    found = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            value = match.group().rstrip(" ,.")
            found.append(Finding(match.start(), match.start() + len(value), "ADDRESS", value))
    if not words.isdisjoint(_CUE_WORDS):
        for match in _ADDRESS_CUE.finditer(text):
            value = match.group("address").rstrip(" ,.")
            start = match.start("address")
            found.append(Finding(start, start + len(value), "ADDRESS", value))
    return found


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


@lru_cache(maxsize=65536)
def _is_capitalised(word: str) -> bool:
    word = word.rstrip(".")
    return word[0].isupper() and any(ch.islower() for ch in word) and word not in _NOT_NAMES


def _ends_sentence(word: str) -> bool:
    """A full stop after a word longer than an initial or a title ends the run of names."""
    return word.endswith(".") and len(word) > 4


def _name_findings(text: str) -> list[Finding]:
    """Runs of two to four capitalised words (with particles such as "van der") that hold a
    gazetteer first name, follow a title or an introduction, or end like a surname; and a
    single capitalised word right after a title."""
    names = first_names()
    words = list(_NAME_TOKEN.finditer(text))
    found = []
    i = 0
    while i < len(words):
        if not _is_capitalised(words[i].group()):
            i += 1
            continue
        j, last = i + 1, i
        while j < len(words) and j - i < 6:
            gap = text[words[j - 1].end() : words[j].start()]
            word = words[j].group()
            if (
                _ends_sentence(words[j - 1].group())
                or gap not in (" ", "\u00a0")
                or not (_is_capitalised(word) or word in _NAME_PARTICLES or len(word) == 2)
            ):
                break
            if _is_capitalised(word):
                last = j
            j += 1
        run = [w.group().rstrip(".") for w in words[i : last + 1]]
        before = text[max(0, words[i].start() - 30) : words[i].start()]
        if len(run) >= 2 and (
            any(w.lower() in names and w not in _PLACES for w in run)
            or run[-1].lower().endswith(_SURNAME_ENDINGS)
            or _TITLES.search(before)
            or _INTRO.search(before)
        ):
            found.append(Finding(words[i].start(), words[last].end(), "NAME", ""))
            i = last + 1
            continue
        if len(run) == 1 and _TITLES.search(before):
            found.append(Finding(words[i].start(), words[i].end(), "NAME", ""))
        i += 1
    return [
        Finding(f.start, end, "NAME", text[f.start : end])
        for f in found
        for end in [f.end - text[f.start : f.end].endswith(".")]
    ]


_DETECTORS = {
    "EMAIL": lambda text: [
        Finding(m.start(), m.end(), "EMAIL", m.group()) for m in _EMAIL.finditer(text)
    ],
    "IBAN": _iban_findings,
    "CARD": _card_findings,
    "IP": _ip_findings,
    "PHONE": _phone_findings,
    "ADDRESS": _address_findings,
    "NAME": _name_findings,
}
_NEEDS_DIGIT = frozenset({"IBAN", "CARD", "IP", "PHONE"})


@lru_cache(maxsize=8192)
def find_pii(text: str) -> tuple[Finding, ...]:
    """Non-overlapping PII findings in ``text``, in order; higher-priority kinds win overlaps.

    Cached: prompts repeat (the system prompt, stock phrases, merchant names)."""
    has_digit = _DIGIT.search(text) is not None
    taken: list[Finding] = []
    for kind in KINDS:
        if kind in _NEEDS_DIGIT and not has_digit:
            continue
        if kind == "EMAIL" and "@" not in text:
            continue
        for finding in sorted(_DETECTORS[kind](text), key=lambda f: (f.start, -f.end)):
            if all(finding.end <= t.start or finding.start >= t.end for t in taken):
                taken.append(finding)
    return tuple(sorted(taken, key=lambda f: f.start))


def _normalise(kind: str, value: str) -> str:
    if kind in ("CARD", "IBAN"):
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if kind == "PHONE":
        digits = re.sub(r"\D", "", value)
        return (
            "+" + digits[2:] if value.startswith("00") else ("+" if "+" in value else "") + digits
        )
    if kind == "IP":
        return str(ipaddress.ip_address(value))
    return " ".join(value.split()).casefold()


# --- tokeniser ----------------------------------------------------------------------------------


class Tokeniser:
    """Replaces PII with keyed tokens and strips identifier fields; counts what it did."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ConfigError("the PII key is empty: set PRIA_PII_KEY to a long random secret")
        self._key = key
        self.tokens: Counter[str] = Counter()
        self.fields_removed = 0

    @property
    def fingerprint(self) -> str:
        """Identifies the key without revealing it: equal fingerprints mean comparable tokens."""
        return hmac.new(self._key, b"pria-ml key fingerprint", hashlib.sha256).hexdigest()[:12]

    def token(self, kind: str, value: str) -> str:
        message = f"{kind}:{_normalise(kind, value)}".encode()
        return f"<{kind}_{hmac.new(self._key, message, hashlib.sha256).hexdigest()[:8]}>"

    def tokenise(self, text: str) -> str:
        """``text`` with every PII finding replaced by its token."""
        parts, last = [], 0
        for finding in find_pii(text):
            parts.append(text[last : finding.start])
            parts.append(self.token(finding.kind, finding.value))
            self.tokens[finding.kind] += 1
            last = finding.end
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)

    def strip_identifiers(self, value: Any) -> Any:
        """JSON ``value`` without user identifier fields at any depth; strings untouched."""
        if isinstance(value, dict):
            kept = {}
            for key, item in value.items():
                if is_identifier_field(key):
                    self.fields_removed += 1
                else:
                    kept[key] = self.strip_identifiers(item)
            return kept
        if isinstance(value, list):
            return [self.strip_identifiers(item) for item in value]
        return value

    def scrub(self, value: Any) -> Any:
        """JSON ``value`` without identifier fields at any depth, every string tokenised."""
        value = self.strip_identifiers(value)
        return self._tokenise_strings(value)

    def _tokenise_strings(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._tokenise_strings(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._tokenise_strings(item) for item in value]
        if isinstance(value, str):
            return self.tokenise(value)
        return value

    def scrub_text(self, text: str) -> str:
        """Message content: JSON documents (tool results) are scrubbed, other text tokenised."""
        import json

        stripped = text.lstrip()
        if stripped[:1] in ("{", "["):
            try:
                document = json.loads(text)
            except ValueError:
                pass
            else:
                return json.dumps(self.scrub(document), ensure_ascii=False)
        return self.tokenise(text)


@lru_cache(maxsize=4096)
def is_identifier_field(key: str) -> bool:
    normal = re.sub(r"[\s-]+", "_", str(key).strip()).lower()
    return normal in IDENTIFIER_FIELDS or normal.endswith(IDENTIFIER_SUFFIXES)


def tokeniser(settings: Settings) -> Tokeniser:
    """The tokeniser keyed by ``settings.pii_key``; ConfigError naming PRIA_PII_KEY if unset."""
    if settings.pii_key is None or not settings.pii_key.get_secret_value():
        raise ConfigError(
            "PRIA_PII_KEY is not set: extraction replaces PII with keyed HMAC tokens and will "
            "not run without the secret; set PRIA_PII_KEY (environment or .env)"
        )
    return Tokeniser(settings.pii_key.get_secret_value().encode())
