# ruff: noqa: RUF001 - the patterns spell street words and names in their own alphabets
"""PII detection and keyed pseudonymisation: the privacy rules extraction applies before writing.

Two jobs, both pure (no I/O, no network, no model):

- ``find_pii(text)`` finds emails, phone numbers, payment card numbers, IBANs and other bank
  account numbers, national identity / social security / tax / passport numbers, IP addresses,
  street addresses and person names. Checksummed identifiers are validated by libraries (Luhn,
  IBAN mod-97 and ~50 national id and tax number checks from ``python-stdnum``, phone numbering
  plans from ``phonenumbers``, IPs from ``ipaddress``); numbers without a checksum count after a
  cue word ("passport", "SSN", "Kontonummer", ...). Names use a first-name gazetteer of ~45,000
  names from 50+ countries (the data file shipped inside ``gender-guesser``), honorifics and
  introductions, person contexts (prepositions, verbs, possessives) and surname forms. Names the
  caller protects (the known merchants) are never touched. docs/privacy.md has the measured
  recall and the known limits.
- ``Pseudonymiser`` replaces every finding with a stable keyed pseudonym, ``<EMAIL_3f2a9c1b>``: the
  first 32 bits of HMAC-SHA256(key, kind + normalised value). The same value gives the same
  pseudonym on every night with the same key, so the model can still learn "same person", and
  nobody without the key can test a guess. ``Pseudonymiser.scrub`` removes user identifier fields
  (``user_id``, ``email``, ``name``, ``phone``, ``ip``, ...) from JSON at any depth and
  pseudonymises every remaining string.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from pria_ml.data import secrets, textview
from pria_ml.data.lexicon import common_words, first_names, lower_ranks
from pria_ml.errors import ConfigError, DataError

if TYPE_CHECKING:
    from pria_ml.settings import Settings

# Every kind a finding can have, and the only list of them: each consumer (the safety scorer's
# confidences, redaction, pseudonyms, the docs) covers exactly these, which
# tests/eval/test_pii_kinds.py checks kind by kind. Highest priority first: when findings
# overlap, the earlier kind wins (an IBAN contains digit runs a phone detector would also like).
KINDS = (
    "SECRET", "EMAIL", "IBAN", "CARD", "IP", "ID", "ACCOUNT", "DOB", "PLATE", "PHONE", "ADDRESS",
    "NAME",
)  # fmt: skip
# JSON nested deeper than this (a trace, a tool result, a string holding JSON) is not scrubbed
# but quarantined: no conversation needs it, and recursion that deep is how parsers fall over.
MAX_JSON_DEPTH = 64
# Encoded payloads inside encoded payloads are decoded this many levels deep; a payload still
# encoded below that is replaced whole (as a SECRET: it cannot be scrubbed with confidence).
MAX_DECODE_DEPTH = 4

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
    """PII in a text: ``text[start:end]`` is ``value``, ``kind`` one of KINDS. An ``encoding``
    (``percent``, ``base64``, ...) says that ``value`` is an encoded payload holding PII of
    ``kind`` (its most important finding): it is scrubbed inside its encoding."""

    start: int
    end: int
    kind: str
    value: str
    encoding: str | None = None


class Unscrubbable(DataError):
    """A text that cannot be scrubbed with confidence; ``reason`` names why (quarantined)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- detectors --------------------------------------------------------------------------------

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}\b")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){8,30}\b")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){11,18}(?![\d-])")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(
    r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])"
)
# A run of digits with the separators phone numbers are written with; validated afterwards.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+|00)?\(?\d[\d \u00a0().\-/]{5,22}\d(?:\s?(?:x|ext\.?)\s?\d{1,5})?(?![\w])"
)
# Cue patterns that end at "$" are searched in the few characters before a candidate. Each opens
# with a look-ahead for the shape every one of its matches has (a cue word or two, then
# separators, then the end), so the long list of alternatives is tried at a handful of
# positions instead of at every one: the same matches, found faster.
_PHONE_CUE = re.compile(
    r"(?i)(?=\w{2,9}\W{0,12}$)"
    r"(?:tel|phone|mobile|cell|call|ring|fax|whatsapp|telefon|puhelin|numer|número|numero"
    r"|téléphone|portable|celular|contact|nummer|nr)\W{0,12}$"
)
_DATE = re.compile(r"^\d{1,4}[-./]\d{1,2}[-./]\d{1,4}$")
_AMOUNT = re.compile(r"^\d{1,3}(?:[ ,.]\d{3})*[.,]\d{2}$|^\d+[.,]\d{2}$")

# Upper-case letters of the Latin scripts: names and street names start with one.
_UP = "A-Z" + "".join(ch for ch in map(chr, range(0xC0, 0x250)) if ch.isupper())
_CAP = rf"[{_UP}][\w'’.-]*"  # a capitalised word
_WORD = r"[^\W\d_][\w'’.-]*"  # any word
_NUMBER = r"\d{1,5}(?:-?[A-Za-z])?(?:/\d{1,5})?"  # "12", "221B", "11/86", "231-H"

_STREET_WORDS = (
    r"Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Boulevard|Blvd|Way|Place|Pl|Court|Ct|Square"
    r"|Sq|Terrace|Close|Crescent|Parkway|Pkwy|Highway|Hwy|Row|Mews|Gardens|Walk|Trail|Circle"
    r"|Path|End|Marg|Nagar|Chowk|Causeway|Subdivision|Estate|Estates|Heights|Village|Ganj"
)
_UNIT = r"(?:Apt|Apartment|Suite|Ste|Unit|Flat|Piso|Depto|Int|Interior)\.?\s*#?\d{1,5}"
# "221B Baker Street", "74/391, Balasubramanian Path", "1318 Yorulmaz Views Apt. 390"
_ADDRESS_NUMBER_FIRST = re.compile(
    rf"\b{_NUMBER},?\s+(?:(?:{_CAP}|\d{{1,3}}(?:st|nd|rd|th))\s+){{0,3}}(?:{_STREET_WORDS})\b\.?"
    rf"(?:,?\s+{_UNIT})?"
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
    r"|jl\.|gg\.|gang|rruga|odos|leoforos|diagonal|transversal|pasaje|psje\.|rua|đường|phố"
    r"|ngõ|ngách|hẻm|khóm|khu|thôn|ấp"
)
_STREET_ABBREVIATIONS = r"Av\.?|R\.|Tv\.|Pça\.|Rod\."
_PARTICLES = r"(?:(?:de|du|des|la|le|l'|d'|del|della|di|da|do|dos|das|van|von|der|den)\s+)*"
# "ulica Baczyńskiego 66", "12, rue de la Paix", "Praça André Sampaio, 44", "rue Victoire Perrier"
# Streets with numbers for names (Latin America): "Calle 19Y # 5-80 Sur", "Diagonal 7 N° 410".
_ADDRESS_NUMBERED_STREET = re.compile(
    rf"\b(?i:{_STREET_PREFIXES}|av\.|cl\.|cra\.|kr\.|dg\.|tv\.)\s+\d{{1,3}}[A-Za-z]?(?:\s+Bis)?"
    r"\s*(?:N[º°o]\.?|No\.?|#)\s*\d{1,5}[A-Za-z]?(?:-\d{1,4})?(?:\s+(?:Sur|Este|Norte|Oeste))?"
)
# Vietnamese: house number, then block / hamlet / street words and their numbers or names.
_ADDRESS_VIETNAMESE = re.compile(
    r"(?i:\b(?:số\s+)?\d{1,5}(?:/\d{1,5})*,?\s+)?"
    r"(?i:\b(?:khóm|khu|đường|phố|ngõ|ngách|hẻm|tổ|ấp|thôn|phường|xã))\s+[^,;\n]{1,40}"
)
_VIETNAMESE_WORDS = frozenset({"khóm", "khu", "đường", "phố", "ngõ", "ngách", "hẻm", "thôn", "ấp"})
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
    r"|ulica|ulice|cesta|pot|trg|nábrežie|námestie|iela|gatvė|tänav|tee|sokak|sokağı|caddesi"
    r"|bulevardi|puistobulevardi|puistotie|raitti|rinne"
)
# "Hauptstraße 12", "Mannerheimintie 5 A 12", "Teglværks Allé 519", "József attila utca 212."
# Street words are bounded (no street name is 40 letters): an unbounded word here would be
# re-scanned from every capital inside a long dash-joined run (quadratic time).
_CAP_WORD = rf"[{_UP}][\w'’.-]{{0,40}}"
_ANY_WORD = r"[^\W\d_][\w'’.-]{0,40}"
_ADDRESS_SUFFIX = re.compile(
    rf"\b{_CAP_WORD}(?:{_STREET_SUFFIXES})\s+{_NUMBER}(?:\s?[A-Za-z]\b)?(?:\s\d{{1,4}}\b)?"
    rf"|\b{_CAP_WORD}(?:\s+{_ANY_WORD}){{0,2}}\s+(?:{_STREET_TYPE_WORDS})\s+{_NUMBER}\.?"
)
# What follows "deliver to", "address:", "moved to": capitalised words and a house number.
_ADDRESS_CUE = re.compile(
    r"(?i:\b(?:address|adresse|adres|adresa|addr\.?|indirizzo|dirección|endereço|osoite|cím"
    r"|deliver(?:ed|y)?\s+to|mailed\s+to|ship(?:ped)?\s+to|sent\s+to|moved\s+to|located\s+at"
    r"|lives\s+at|based\s+at))\s*:?\s+"
    rf"(?P<address>(?:{_WORD}\s+){{0,3}}{_CAP}\s+{_NUMBER}\b|{_NUMBER},?\s+(?:{_CAP}\s*){{1,3}})"
)

# The layout most of the world writes without a street word: a street name and a house
# number closing the clause ("Podtatranského 825", "Τζιωρτζή 59", "הפרדס 91"), or a house number
# and a street name ("825 Ondieki Circles,"). Kept only when the name holds a word that is no
# ordinary word (see _is_plausible_street).
_NAME_THEN_NUMBER = re.compile(
    r"(?<![\w'’.-])(?P<street>(?:[^\W\d_][\w'’.-]*\s+){0,3}[^\W\d_][\w'’.-]*)\s+(?:No\.?\s*|N[º°o]\.?\s*|#\s*)?"
    r"\d{1,4}[^\W\d_]?(?:[/-]\d{1,4}[^\W\d_]?)?"
    r"(?:\s+(?i:of|ofic|oficina|dpto|depto|apt|apto|piso|int|local|casa|torre|stan|kv)\.?\s*\w{1,6})*"
    r"(?=\s*(?:$|[,;)\n]|\s\d{4,6}\b))"
)
_NUMBER_THEN_NAME = re.compile(
    r"(?<![\w.,/-])\d{1,5}[A-Za-z]?,?\s+(?P<street>[^\W\d_][\w'’.-]*(?:\s+[^\W\d_][\w'’.-]*){0,3})"
    r"(?=\s*(?:$|[,;)\n]))"
)
# A unit before the house number: "Flat 3, 12 High St", "Apt 4B, 221 Baker Street", "Unit 5/".
_UNIT_BEFORE = re.compile(
    r"(?i:\b(?:flat|apt|apartment|unit|suite|ste|room|rm|floor|fl|level|lvl|lot|shop|piso"
    r"|depto|dpto|apto|apartamento|wohnung|whg|appartement|appt|app|lgh|lägenhet|bte|boîte"
    r"|etage|étage|kv|kv\.|квартира|кв)\.?\s*(?:no\.?\s*)?#?\s*[\w-]{1,6}(?:\s*/)?[,\s]\s*)$"
)
# Addresses in scripts without capital letters or with their own street words and postal marks.
_ADDRESS_SCRIPTS = re.compile(
    # Japanese: postal mark and code, then the address up to the end of the clause.
    r"〒\s?\d{3}-?\d{4}(?:\s*[\u3040-\u30ff\u4e00-\u9fff\uff00-\uffef\d\-−ー－]+)*"
    # Japanese without the mark: prefecture, then municipality, then block numbers.
    r"|[\u4e00-\u9fff]{1,4}[都道府県][\u4e00-\u9fff\u3040-\u30ff]{1,12}[市区町村郡]"
    r"[\u4e00-\u9fff\u3040-\u30ff\uff10-\uff190-9\-−ー－丁目番地号の ]*"
    # Chinese: road / street / lane words followed by a number and 号 / 號.
    r"|[\u4e00-\u9fff]{1,20}(?:路|街|大道|巷|弄|胡同|道)(?:\s?[\d\uff10-\uff19]+\s?(?:段|巷|弄))*"
    r"\s?[\d\uff10-\uff19]+\s?(?:号|號|弄|巷)(?:之[\d\uff10-\uff19]+)?"
    r"(?:\s?[\u4e00-\u9fff]{0,6}[\d\uff10-\uff19]+\s?(?:室|楼|樓|座|栋|棟))*"
    # Chinese: province / city, then county / district, then the rest of the run.
    r"|[\u4e00-\u9fff]{1,6}(?:省|自治区|自治區|市|縣)[\u4e00-\u9fff]{1,10}(?:市|县|縣|区|區|镇|鎮)"
    r"[\u4e00-\u9fffA-Za-z0-9\uff10-\uff19]*"
    # Korean: province / city and district words, a road name (-로, -길, -가, -대로), a building
    # number, and the neighbourhood in brackets.
    r"|(?:[가-힣]+(?:특별시|광역시|특별자치시|특별자치도|도|시|군|구)\s)*"
    r"[가-힣\d]{1,20}(?:로|길|대로|가)\s?\d{1,5}(?:-\d{1,5})?(?:번길\s?\d{1,5})?"
    r"(?:\s?\([가-힣\d]+\))?"
    # Georgian: a street name and ქ. (street), გამზ. (avenue), a number.
    r"|[\u10d0-\u10ff-]+(?:\s[\u10d0-\u10ff-]+){0,2}\s(?:ქ\.|ქუჩა|გამზ\.|გამზირი|ჩიხი"
    r"|შესახვევი|მოედანი|ხეივანი)\s?\d{1,5}"
    # South Asian house / building / plot numbers and what follows to the end of the clause.
    r"|(?:(?i:h\.?\s?no\.?|house\s+no\.?|plot\s+no\.?|door\s+no\.?)|বাসা\s+নং|বিল্ডিং\s+নং"
    r"|হোল্ডিং\s+নং|ফ্ল্যাট|মকান\s+নং|मकान\s+नं\.?|भवन\s+सं\.?)\s*[\d/-]+(?:,\s*[^,;\n]{1,40}){0,2}"
    # Cyrillic: street words, a name, a house number (ул. Ленина, д. 5; вулиця Шевченка 12).
    r"|(?i:\b(?:ул\.|улица|пр\.|пр-т|просп\.|проспект|пер\.|переулок|бул\.|бульв\.|бульвар"
    r"|ш\.|шоссе|пл\.|площадь|наб\.|набережная|туп\.|тупик|вул\.|вулиця|пров\.|провулок"
    r"|мкр\.|микрорайон|алея|ал\.|булевард|бул|ulitsa|набережна|узвіз|площа|шосе|проїзд"
    r"|проезд|парк|майдан|тракт|линия|лінія|просп|вулица|улица|ulica))"
    r"\s*[\w\s.'’-]{1,40}?,?\s*(?:д\.|дом|буд\.|№)?\s*\d{1,5}[а-яА-Я]?"
    r"(?:[,\s]*(?:к\.|корп\.|стр\.|кв\.|к|/)\s*[\d/]+)*"
    # ... and on to the house number when the street name itself holds a number ("21-й км")
    r"(?:[^\n;]{0,50}?(?:д\.|дом|буд\.)\s*\d{1,5}[а-яА-Я]?"
    r"(?:[,\s]*(?:к\.|корп\.|стр\.|кв\.|к|/)\s*[\d/]+)*)?"
    # Greek: street / avenue / square words, a name, a number.
    r"|(?:Οδός|οδός|Οδ\.|οδ\.|Λεωφόρος|λεωφόρος|Λεωφ\.|λεωφ\.|Πλατεία|πλατεία|Πλ\.|Πάροδος)"
    r"\s+[\w\s.'’-]{1,40}?\s\d{1,5}[Α-Ωα-ω]?"
    # Arabic and Persian: street / road / alley / district words and what follows, to a number.
    r"|(?:شارع|طريق|جادة|زقاق|حي|ميدان|خیابان|کوچه|بلوار)\s+[\u0600-\u06ff\s]{1,40}?"
    r"\s?[\d\u0660-\u0669\u06f0-\u06f9]{1,5}"
    r"|[\d\u0660-\u0669\u06f0-\u06f9]{1,5}\s+(?:شارع|طريق|جادة|زقاق|خیابان|کوچه)\s+[\u0600-\u06ff]+"
    r"(?:\s+[\u0600-\u06ff]+){0,3}"
    # Hebrew: street / boulevard words, a name, a number.
    r"|(?:רחוב|רח'|שדרות|שד'|סמטת)\s+[\u0590-\u05ff\s'\"-]{1,30}?\s?\d{1,5}"
    # Thai: road / lane / village words and what follows.
    r"|(?:ถนน|ถ\.|ซอย|ซ\.|หมู่ที่|หมู่)\s?[\u0e00-\u0e7f\d\s/.]{1,40}"
    # Devanagari and other Indic scripts: road / colony words after a number or name.
    r"|\d{1,5}[,\s]+[\u0900-\u0dff\s]{1,30}(?:मार्ग|रोड|नगर|गली|सड़क|चौक|சாலை|தெரு|রোড|সড়ক)"
)

_DIGIT = re.compile(r"\d")
_WORDS = re.compile(r"\w+")
# Combining marks are no word characters to ``re``: without them a Hindi or Thai word would
# split at every vowel sign.
_MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0dff\u0e00-\u0eff\u1000-\u109f\u17b4-\u17d3\u200c\u200d"
)
_NAME_WORD = re.compile(rf"[^\W\d_][\w{_MARKS}'’-]*\.?")
_TITLES = re.compile(
    r"(?i)\b(?=\S+\s+(?:\S+\s+)?$)"
    r"(?:mr|mrs|ms|miss|mx|dr|prof|herr|frau|mme|mlle|sr|sra|srta|srita|sig|sig\.ra|dott"
    r"|dott\.ssa|ing|arq|lic|mgr|bc|rndr|mudr|judr|pan|pani|bay|bayan|sayın|okt|uz|hr|fru|dhr"
    r"|mevr|shri|smt|don|doña|dña|univ\.prof|sir|dame|lord|lady|rev|revd|fr|sheikh|shaikh|haji"
    r"|hajji|datuk|dato'?|tan\s+sri|tun|pak|bu|ibu|bapak|mevrouw|meneer|mnr|signor|signora"
    r"|signorina|madame|monsieur|mademoiselle|señor|señora|señorita|senhor|senhora|capt|col"
    r"|maj|lt|sgt|cllr|hon|frk|fröken|rouva|herra|neiti|ks|mag|dipl\.-ing|sra\.|d|dª)\.?\s+$"
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
    "da", "de", "di", "do", "dos", "das", "del", "della", "dei", "degli", "van", "von", "der",
    "den", "ten", "ter", "het", "op", "zu", "zum", "vom", "la", "le", "lo", "du", "bin", "binti",
    "binte", "bint", "ibn", "ben", "bat", "ap", "ab", "al", "el", "ul", "y", "i", "e", "ní",
    "nic", "ó", "mac", "af", "av", "t", "s", "mc", "ni", "nig", "ui", "ua", "bte", "bt", "bn",
    "st", "vd", "dit", "zur", "und",
})  # fmt: skip
# "al-Farouq", "el-Sayed", "d'Almeida", "O'Neill", "bin-Laden": a particle glued to a name.
_GLUED_PARTICLE = re.compile(
    r"^(?:al|el|ul|ad|as|at|az|ar|an|ash|ibn|bin|abu|ben|bou|ait|d|l|o|mc|mac|di|de|da)[-'’]"
    r"(?=\w)",
    re.IGNORECASE,
)
# After these, one to three words of a script without capitals (CJK, Arabic, Hebrew, Thai,
# Indic) are a person; in cased scripts a single capitalised word is.
_PERSON_CUE = re.compile(
    r"(?i)(?:\bname(?:\s+is)?|\bnamed|\bI\s+am|\bI'm|\bit's|\bthis\s+is|\bdear|\bhi|\bhello"
    r"|\bhey|\bsigned|\bregards|\bthanks|\bthank\s+you|\bcheers|\battendees?|\bguests?"
    r"|\bcontact|\bcc|\bapproved\s+by|\bsubmitted\s+by|\bbooked\s+by|\bpaid\s+by|\bwith"
    r"|\bcolleague|\bmanager|\bwife|\bhusband|\bpartner|\bfriend|\bdriver|\bmet"
    r"|\binvited|\bvisitor|\bhost(?:ed\s+by)?)\W{0,3}$"
)
_LATIN_WORD = re.compile(r"[A-Za-z]{3}")
_SENTENCE_START = re.compile(r"(?:^|[.!?:;\n(\[\"“|]\s*)$|^\s*$")
_POSSESSIVE = re.compile(r"['’]s$")
# Honorifics that follow the name in Japanese, Chinese and Korean.
_CJK_NAME = re.compile(
    r"[\u4e00-\u9fff\u3040-\u30ff]{1,4}\s?[\u4e00-\u9fff\u3040-\u30ff]{0,4}"
    r"(?=\s?(?:さん|様|さま|氏|先生|君|くん|ちゃん|殿|女士|小姐|老师|老師|经理|經理|同志))"
    r"|[가-힣]{2,4}(?=\s?(?:님|씨|선생님|고객님))"
    r"|(?<=我叫|我是)[\u4e00-\u9fff]{2,4}|(?<=名前は)[\u4e00-\u9fff\u3040-\u30ff]{2,6}"
    r"|(?<=이름은 )[가-힣]{2,4}|(?<=저는 )[가-힣]{2,4}(?=입니다)"
)
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
    """IBAN-shaped strings whose mod-97 check holds, whatever their length or country: a
    mistyped or truncated IBAN is still somebody's bank account."""
    from stdnum.iso7064 import mod_97_10

    found = []
    for match in _IBAN.finditer(text):
        candidate = match.group()
        # The pattern may run into a following upper-case word; drop trailing groups until valid.
        while len(compact := candidate.replace(" ", "")) >= 12:
            if mod_97_10.is_valid(compact[4:] + compact[:4]):
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


# National identity, social security, tax and personal numbers that python-stdnum validates
# (checksums, birth dates, structure): EU/EEA, UK, CH, US, CA, AU, IN, BR, JP and more. Company
# numbers are left out unless sole traders use them too (CNPJ, Greek AFM, Polish NIP).
_ID_VALIDATORS = {
    "at.vnr": (10,), "at.tin": (9,), "be.nn": (11,), "be.ssn": (11,), "be.bis": (11,),
    "bg.egn": (10,), "bg.pnf": (10,), "hr.oib": (11,), "cz.rc": (9, 10), "dk.cpr": (10,),
    "ee.ik": (11,), "fi.hetu": (10, 11), "fr.nir": (15,), "de.idnr": (11,), "gr.amka": (11,),
    "gr.vat": (9,), "ie.pps": (8, 9), "it.codicefiscale": (11, 16), "lv.pvn": (11,),
    "lt.asmens": (11,), "nl.bsn": (8, 9), "pl.pesel": (11,), "pl.nip": (10,), "pt.cc": (12,),
    "pt.nif": (9,), "ro.cnp": (13,), "sk.rc": (9, 10), "si.emso": (13,), "es.dni": (9,),
    "es.nie": (9,), "es.nif": (9,), "se.personnummer": (10, 11, 12), "is_.kennitala": (10,),
    "no.fodselsnummer": (11,), "ch.ssn": (13,), "gb.nhs": (10,), "gb.utr": (10, 13),
    "us.ssn": (9,), "us.itin": (9,), "us.ein": (9,), "us.ptin": (9,), "ca.sin": (9,),
    "au.tfn": (8, 9), "in_.aadhaar": (12,), "in_.pan": (10,), "in_.epic": (10,),
    "br.cpf": (11,), "br.cnpj": (14,), "jp.in_": (12,), "cn.ric": (18,), "kr.rrn": (13,),
    "mx.curp": (18,), "mx.rfc": (10, 12, 13), "cl.rut": (8, 9), "ar.cuit": (11,),
    "za.idnr": (13,), "tr.tckimlik": (11,), "il.idnr": (9,), "th.pin": (13,),
    "ua.rntrc": (10,),
}  # fmt: skip
# An id-shaped run: groups of digits (and letters) joined by single separators; it may start
# with up to six letters ("AB 12 34 56 C", "X-1234567-L", "RSSMRA85T10A562S", "ABCDE1234F").
_ID_RUN = re.compile(
    r"(?<![\w@+.\-/])(?:[A-Za-z]{1,6}[ -]?)?\d[A-Za-z0-9]*"
    r"(?:[ .\-/](?:\d[A-Za-z0-9]*|[A-Za-z]{1,2}(?![\w'’])))*"
)
_IN_PHONE = re.compile(r"(?:\+|\b00)\d{1,4}[ .\-]?$|[()]\s?$")
_ID_PART = re.compile(r"[A-Za-z0-9]+")
_FOUR_DIGITS = re.compile(r"(?:\d\D*){4}")
_SEPARATORS = re.compile(r"[ .\-/]")
# UK National Insurance number: no checksum, but a layout of its own (HMRC's prefix rules).
_NINO = re.compile(
    r"(?<!\w)(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"(?:\d{6}|[ -]\d{2}[ -]\d{2}[ -]\d{2}[ -]?)[A-D](?!\w)"
)
# Words after which any id-shaped run is a personal number, checksum or not: passports, ids,
# social security and tax numbers, driving licences, employee numbers, in many languages.
_ID_CUES = (
    # passport, pasaporte, passaporto, paszport, pasaportë, Reisepass, password, ...
    r"\w*pa(?:s|ss|sz|ş)\w{0,3}port\w*|\w*pass\w*|pas|útlevél|cestovní\s+pas|pasoš"
    r"|putovnica|pasas|pase"
    r"|visa|id|ids|i\.d\.|identity|identification|identifier|national\s+id|citizen\s+id"
    r"|id\s*card|id\s*no|id\s*number|ssn|social\s+security|social\s+insurance|sin|tfn"
    r"|tax\s+file|tax\s+id|tax\s+number|tax\s+code|tin|itin|ein|nino|national\s+insurance"
    r"|ni\s+number|nhs|utr|pps|ppsn|bsn|burgerservicenummer|sofinummer|nie|nif|dni|nss|cif"
    r"|cpf|cnpj|rg|curp|rfc|rut|cuit|cuil|cédula|cedula|dui|aadhaar|aadhar|pan|epic"
    r"|voter\s+id|my\s*number|personnummer|personnr|person\s*nr|fødselsnummer|fodselsnummer"
    r"|cpr|kennitala|henkilötunnus|hetu|sotu|pesel|nip|regon|dowód|dowodu|rodné\s+číslo"
    r"|rodne\s+cislo|rč|isikukood|asmens\s+kodas|personas\s+kods|egn|oib|emšo|emso|jmbg"
    r"|cnp|amka|afm|codice\s+fiscale|tessera\s+sanitaria|carta\s+d'identità|steuer-?id"
    r"|steuer-?nummer|steueridentifikationsnummer|sozialversicherungsnummer|svnr|ahv|avs"
    r"|nir|sécurité\s+sociale|numéro\s+fiscal|insee|carte\s+d'identité|personalausweis"
    r"|ausweis|licen[cs]e|driver'?s\s+licen[cs]e|driving\s+licen[cs]e|führerschein|rijbewijs"
    r"|permis|employee\s+(?:id|no|number)|staff\s+(?:id|no|number)|personnel\s+number"
    r"|personalnummer|badge|member(?:ship)?\s+(?:id|no|number)|tc\s+kimlik|kimlik|tckn"
    r"|inn|snils|nric|fin|hkid|mykad|ktp|nik|tzn|teudat\s+zehut|national\s+number"
    r"|numéro\s+national|rijksregisternummer|identiteitskaart|residence\s+permit"
    r"|aufenthaltstitel|permesso|tarjeta|documento|documento\s+de\s+identidad|bi|cc"
)
_ID_CUES_NON_LATIN = (
    r"паспорт|инн|снилс|егн|ЕГН|ИНН|СНИЛС|διαβατήριο|ΑΜΚΑ|ΑΦΜ|αμκα|αφμ|ταυτότητα|パスポート"
    r"|旅券|マイナンバー|個人番号|身份证|身分證|护照|護照|居民身份|여권|주민등록번호|주민번호"
    r"|외국인등록번호|جواز|هوية|رقم\s+قومي|الرقم\s+القومي|תעודת\s+זהות|ת\.ז|דרכון"
)
# "Reisepassnummer", "kontonr", "passinumero": the cue and "number" written as one word.
_GLUED_NUMBER = r"-?(?:nummer|numer|numero|número|numéro|number|nr|no|num|nro|n°|numbers)"
_AFTER_CUE = r"\W{0,3}(?:(?i:no|nr|num|number|numero|número|numéro|nummer|n[º°o])\b\.?)?\W{0,4}"
# Both cue patterns are searched in the few characters before a candidate run: "$" is its start.
_ID_CUE = re.compile(
    rf"(?:(?<!\w)(?i:{_ID_CUES})(?i:{_GLUED_NUMBER})?(?!\w)|(?:{_ID_CUES_NON_LATIN})){_AFTER_CUE}$"
)
_ACCOUNT_CUES = (
    r"account|acct|acc|a/c|bank|banking|sort\s+code|routing|aba|bsb|transit|clabe|bban|iban"
    r"|swift|kontonummer|konto|kontonr|bankkonto|compte|rib|cuenta|cta|conta|conto|rekening"
    r"|rekeningnummer|tilinumero|tili|számlaszám|számla|účet|číslo\s+účtu|ucet|rachunek"
    r"|rachunku|nr\s+konta|cont|bankgiro|plusgiro|giro|reg\.?\s*nr|registreringsnummer"
    r"|agência|agencia|ifsc|beneficiary|payee|wire|transfer|überweisung|virement"
    r"|transferencia|bonifico|overboeking|przelew"
)
_ACCOUNT_CUES_NON_LATIN = (
    r"счёт|счет|р/с|л/с|рахунок|λογαριασμός|λογαριασμού|口座|账户|賬戶|账号|帳號|계좌"
    r"|حساب|חשבון|บัญชี"
)
_ACCOUNT_CUE = re.compile(
    rf"(?:(?<!\w)(?i:{_ACCOUNT_CUES})(?i:{_GLUED_NUMBER})?(?!\w)"
    rf"|(?:{_ACCOUNT_CUES_NON_LATIN})){_AFTER_CUE}$"
)
# An account-like run: six or more digits, maybe in groups, maybe with letters (bank codes).
_ACCOUNT_RUN = re.compile(r"(?<![\w@+])[A-Za-z]{0,6}\d[\dA-Za-z]*(?:[ .\-/]\d[\dA-Za-z]*)*")


@cache
def _id_validators() -> dict[int, tuple]:
    """The validator modules by the length of the number they accept (separators removed)."""
    import importlib

    by_length: dict[int, list] = {}
    for name, lengths in _ID_VALIDATORS.items():
        module = importlib.import_module(f"stdnum.{name}")
        for length in lengths:
            by_length.setdefault(length, []).append(module)
    return {length: tuple(modules) for length, modules in by_length.items()}


@lru_cache(maxsize=65536)
def _is_national_id(candidate: str) -> bool:
    compact = _SEPARATORS.sub("", candidate)
    digits = sum(ch.isdigit() for ch in compact)
    # Bare digit runs shorter than nine are too often order numbers or dates: they need a cue,
    # or the grouping of an id ("9.317.380-5").
    grouped = len(_SEPARATORS.findall(candidate)) >= 2 and not _DATE.match(candidate)
    if not 7 <= len(compact) <= 20 or digits < 4:
        return False
    if digits == len(compact) and digits < 9 and not (grouped and digits >= 8):
        return False
    for module in _id_validators().get(len(compact), ()):
        try:
            if module.is_valid(candidate):
                return True
        except Exception:
            continue
    return False


def _id_spans(match: re.Match) -> list[tuple[int, int]]:
    """The sub-runs of an id-shaped run worth validating: the whole, and without a leading or
    trailing word of letters only ("ID 12345678Z", "46 8 123 T"). Digit groups are never
    dropped: half a number validated as an id would leave the other half in clear."""
    parts = list(_ID_PART.finditer(match.group()))
    starts = [0] + ([1] if len(parts) > 1 and parts[0].group().isalpha() else [])
    ends = [len(parts)] + (
        [len(parts) - 1] if len(parts) > 1 and parts[-1].group().isalpha() else []
    )
    return [
        (match.start() + parts[i].start(), match.start() + parts[j - 1].end())
        for i in starts
        for j in ends
        if j > i
    ]


def _id_findings(text: str) -> list[Finding]:
    found = []
    for match in _NINO.finditer(text):
        found.append(Finding(match.start(), match.end(), "ID", match.group()))
    for match in _ID_RUN.finditer(text):
        # Every span checked is part of the run, and _is_national_id wants seven characters
        # and four digits: most runs ("12", "2026") have neither and are done here.
        if match.end() - match.start() < 7 or _FOUR_DIGITS.search(match.group()) is None:
            continue
        if _IN_PHONE.search(text, max(0, match.start() - 8), match.start()) or _PHONE_CUE.search(
            text, max(0, match.start() - 30), match.start()
        ):
            continue  # "+44 20 7946 0958", "puhelin 040 123 4567": the phone detector's
        for start, end in _id_spans(match):
            if _is_national_id(text[start:end]):
                found.append(Finding(start, end, "ID", text[start:end]))
                break
    return found + _cued_runs(text, _ID_CUE, "ID", min_digits=4, min_length=5)


def _cued_runs(
    text: str, cue: re.Pattern, kind: str, *, min_digits: int, min_length: int
) -> list[Finding]:
    """Id- or account-shaped runs right after a cue word, whatever their checksum."""
    found = []
    for match in _ACCOUNT_RUN.finditer(text):
        if match.end() - match.start() < min_length:
            continue  # the compact value is no longer than the run
        value = match.group().rstrip(" .-/")
        compact = _SEPARATORS.sub("", value)
        if len(compact) < min_length or sum(ch.isdigit() for ch in compact) < min_digits:
            continue
        if _DATE.match(value) or _AMOUNT.match(value):
            continue
        if cue.search(text, max(0, match.start() - 45), match.start()):
            found.append(Finding(match.start(), match.start() + len(value), kind, value))
    return found


def _account_findings(text: str) -> list[Finding]:
    return _cued_runs(text, _ACCOUNT_CUE, "ACCOUNT", min_digits=7, min_length=7)


def _ip_findings(text: str) -> list[Finding]:
    found = []
    # _IPV4 has three literal dots and _IPV6 at least two colons: a text short of them is
    # spared the scan (both patterns are tried at every character).
    patterns = [p for p, sep, n in ((_IPV4, ".", 3), (_IPV6, ":", 2)) if text.count(sep) >= n]
    for pattern in patterns:
        for match in pattern.finditer(text):
            value = match.group()
            if pattern is _IPV6 and sum(c.isalnum() for c in value) < 3:
                continue  # "a::b" shapes too short to be an address worth a pseudonym
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


# Both layouts of _ADDRESS_SUFFIX end in whitespace and a house number; _NAME_THEN_NUMBER's house
# number follows whitespace or a "No", "Nº" or "#" (then maybe no space). A text without such a
# digit is spared the two patterns, which start a try at every capitalised or any word.
_SPACE_DIGIT = re.compile(r"\s\d")
_MARKED_DIGIT = re.compile(r"(?:\s|No\.?|N[º°o]\.?|#)\d")


def _address_findings(text: str) -> list[Finding]:
    words = set(_WORDS.findall(text.lower()))
    patterns = []
    if _DIGIT.search(text):
        patterns.append(_ADDRESS_NUMBER_FIRST)
        if _SPACE_DIGIT.search(text):
            patterns.append(_ADDRESS_SUFFIX)
    if not words.isdisjoint(_PREFIX_WORDS):
        patterns += [_ADDRESS_PREFIX, _ADDRESS_NUMBERED_STREET]
    if not words.isdisjoint(_VIETNAMESE_WORDS):
        patterns.append(_ADDRESS_VIETNAMESE)
    if not text.isascii():
        patterns.append(_ADDRESS_SCRIPTS)
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
    if _DIGIT.search(text):
        numbered = (_NAME_THEN_NUMBER,) if _MARKED_DIGIT.search(text) else ()
        for pattern in (*numbered, _NUMBER_THEN_NAME):
            for match in pattern.finditer(text):
                street = _street_words(match.group("street"))
                if not street:
                    continue
                start = match.start("street") + match.group("street").rindex(street[0])
                if pattern is _NUMBER_THEN_NAME:
                    start = match.start()
                value = text[start : match.end()].rstrip(" ,.")
                found.append(Finding(start, start + len(value), "ADDRESS", value))
    return [_with_unit(text, f) for f in found]


@lru_cache(maxsize=65536)
def _street_words(phrase: str) -> tuple[str, ...]:
    """The trailing words of ``phrase`` that can name a street (capitalised or of a script
    without capitals), if one of them is no ordinary word; else (). Cached: the same phrases
    ("Air travel", "Hotel") come before numbers in text after text."""
    words = phrase.split()
    kept: list[str] = []
    for word in reversed(words):
        bare = word.strip(".,'’")
        if _DIGIT.search(bare):
            break
        shouting = bare.isupper() and len(bare) >= 3  # "2 Ə.ORUCƏLİYEV", "7 TƏBRİZ"
        connector = bare.islower() and len(bare) <= 3 and bool(kept)  # "Štradon čez Prošco"
        if not bare or not (
            _is_capitalised(bare)
            or _is_uncased(bare)
            or shouting
            or connector
            or bare.lower() in _NAME_PARTICLES
        ):
            break
        kept.insert(0, word)
    while kept and (kept[0].strip(".,").islower() or kept[0].lower() in _NAME_PARTICLES):
        kept.pop(0)
    if any(w.strip(".,'’") in _NOT_NAMES for w in kept):
        return ()
    plausible = any(
        _is_uncased(w.strip(".,'’")) or _is_uncommon(w) or _is_uncommon(w.title()) for w in kept
    )
    return tuple(kept) if plausible else ()


def _with_unit(text: str, finding: Finding) -> Finding:
    """``finding`` grown to the left over a flat / apartment / unit in front of it."""
    unit = _UNIT_BEFORE.search(text[max(0, finding.start - 30) : finding.start])
    if unit is None:
        return finding
    start = finding.start - (len(unit.group()))
    return Finding(start, finding.end, "ADDRESS", text[start : finding.end])


@lru_cache(maxsize=65536)
def _is_capitalised(word: str) -> bool:
    word = word.rstrip(".")
    unglued = _GLUED_PARTICLE.sub("", word)
    word = unglued if unglued[:1].isupper() else word
    return word[:1].isupper() and any(ch.islower() for ch in word) and word not in _NOT_NAMES


@lru_cache(maxsize=65536)
def _is_uncommon(word: str) -> bool:
    """A capitalised word that is neither an ordinary word, a place nor a business word."""
    word = word.rstrip(".")
    if word in _PLACES or word in _NOT_NAMES:
        return False
    parts = [part for part in re.split(r"[-'’]", word) if len(part) > 1]
    common = common_words()
    return any(part.lower() not in common and part not in common for part in parts)


def _is_ordinary(word: str) -> bool:
    """An ordinary lower-case word written with a capital ("Accommodation", "Train")."""
    lower = word.rstrip(".").lower()
    return lower in common_words() and lower not in first_names()


@lru_cache(maxsize=65536)
def _is_uncased(word: str) -> bool:
    """A word of a script without capital letters (CJK, Arabic, Hebrew, Thai, Indic, and
    Georgian, whose Mkhedruli letters Unicode files as lower case)."""
    if word[:1].isascii():
        return False
    letters = [ch for ch in word if ch.isalpha()]
    return (
        bool(letters)
        and all(
            (not ch.isupper() and not ch.islower()) or "\u10d0" <= ch <= "\u10ff" for ch in letters
        )
        and all(ch.isalpha() or ch in "'’-" or _is_mark(ch) for ch in word)
    )


def _is_mark(ch: str) -> bool:
    import unicodedata

    return unicodedata.category(ch).startswith("M") or ch in "\u200c\u200d"


def _is_bold_name(run: list[str], *, sentence_start: bool) -> bool:
    """Two or more capitalised words, one of which is no common word or well-known place, and
    none a business word or a place that is also a first name. At the start of a sentence a
    capital says nothing, so leading ordinary words are set aside there ("Accommodation
    Gothenburg", "Train Munich-Berlin"); mid-sentence they count ("for Anom Rahayu")."""
    core = list(run)
    while sentence_start and core and _is_ordinary(core[0]):
        core.pop(0)
    return (
        len(core) >= 2
        and any(_is_uncommon(w) for w in core if _is_capitalised(w))
        and not any(w in _PLACES or w in _NOT_NAMES for w in core)
    )


def _ends_sentence(word: str) -> bool:
    """A full stop after a word longer than an initial or a title ends the run of names."""
    return word.endswith(".") and len(word) > 4


def _name_findings(text: str) -> list[Finding]:
    """Person names:

    - runs of two to five capitalised words (with particles such as "van der", "bin", "al-")
      that hold a gazetteer first name, follow a title or a person cue, end like a surname, or
      hold a word that is not an ordinary word (the common-word lexicon) while none of them is
      a business word or a place - whatever the alphabet, so Cyrillic and Greek names count;
    - a single capitalised word right after a title, or after a person cue when it is not an
      ordinary word ("Hi Wanjiru", "with Katarzyna");
    - one to three words of a script without capitals after a person cue, or inside a sentence
      written in Latin letters ("Booked for 王秀英 and me"), and
      Japanese, Chinese and Korean names before an honorific ("佐藤さん", "김민준님").
    """
    names = first_names()
    words = list(_NAME_WORD.finditer(text))
    # A sentence that switches from Latin letters to another script for a word or three does so
    # for a proper noun: a person (or a place, which an address detector has taken first).
    latin = _LATIN_WORD.search(text) is not None
    found = []
    i = 0
    while i < len(words):
        first = words[i].group()
        # (A word starting with an ASCII letter is of a cased script: no need to look further.)
        uncased = not first.isascii() and _is_uncased(_POSSESSIVE.sub("", first.rstrip(".")))
        if not uncased and not _is_capitalised(first):
            i += 1
            continue
        before = text[max(0, words[i].start() - 30) : words[i].start()]
        if uncased:
            if latin or _ends_with(_PERSON_CUE, before) or _ends_with(_TITLES, before):
                j = i
                while (
                    j + 1 < len(words)
                    and j - i < 2
                    and _is_uncased(_POSSESSIVE.sub("", words[j + 1].group()))
                ):
                    if text[words[j].end() : words[j + 1].start()] != " ":
                        break
                    j += 1
                found.append(Finding(words[i].start(), words[j].end(), "NAME", ""))
                i = j + 1
                continue
            i += 1
            continue
        j, last = i + 1, i
        while j < len(words) and j - i < 8:
            gap = text[words[j - 1].end() : words[j].start()]
            word = words[j].group()
            if (
                _ends_sentence(words[j - 1].group())
                or not (gap in (" ", "\u00a0") or (gap in (" '", " ’") and word in ("t", "s")))
                or not (_is_capitalised(word) or word.lower() in _NAME_PARTICLES or len(word) == 2)
            ):
                break
            if _is_capitalised(word):
                last = j
            j += 1
        run = [w.group().rstrip(".") for w in words[i : last + 1]]
        if len(run) >= 2 and (
            any(w.lower() in names and w not in _PLACES for w in run)
            or run[-1].lower().endswith(_SURNAME_ENDINGS)
            or _ends_with(_TITLES, before)
            or _ends_with(_INTRO, before)
            or _is_bold_name(run, sentence_start=_SENTENCE_START.search(before) is not None)
        ):
            found.append(Finding(words[i].start(), words[last].end(), "NAME", ""))
            i = last + 1
            continue
        if len(run) == 1 and (
            _ends_with(_TITLES, before)
            or (_is_uncommon(run[0]) and _ends_with(_PERSON_CUE, before))
        ):
            found.append(Finding(words[i].start(), words[i].end(), "NAME", ""))
        i += 1
    if not text.isascii():
        found += [Finding(m.start(), m.end(), "NAME", "") for m in _CJK_NAME.finditer(text)]
    found += _names_in_any_case(text, words)
    return [
        Finding(f.start, end, "NAME", text[f.start : end])
        for f in found
        for end in [f.end - text[f.start : f.end].endswith(".")]
    ]


# --- dates of birth ---------------------------------------------------------------------------

_MONTHS = (
    # English, German, French, Spanish, Italian, Portuguese, Dutch, Swedish, Danish / Norwegian,
    # Polish (genitive), Finnish (partitive), Czech (genitive); full names and abbreviations.
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
    "|januar|jänner|februar|märz|maerz|mai|juni|juli|oktober|dezember|jän|mär|okt|dez"
    "|janvier|février|fevrier|mars|avril|juin|juillet|août|aout|septembre|octobre|novembre"
    "|décembre|decembre|janv|févr|fevr|avr|juil|déc"
    "|enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre"
    "|noviembre|diciembre|ene|abr|ago|dic"
    "|gennaio|febbraio|aprile|maggio|giugno|luglio|settembre|ottobre|dicembre|gen|mag|giu|lug"
    "|set|ott"
    "|janeiro|fevereiro|março|marco|maio|junho|julho|setembro|outubro|novembro|dezembro|fev|out"
    "|januari|februari|maart|mei|augustus|oktober|mrt"
    "|januari|februari|mars|april|maj|augusti|okt"
    "|marts|august"
    "|stycznia|lutego|marca|kwietnia|maja|czerwca|lipca|sierpnia|września|wrzesnia"
    "|października|pazdziernika|listopada|grudnia|sty|lut|kwi|cze|lip|sie|wrz|paź|lis|gru"
    "|tammikuuta|helmikuuta|maaliskuuta|huhtikuuta|toukokuuta|kesäkuuta|heinäkuuta|elokuuta"
    "|syyskuuta|lokakuuta|marraskuuta|joulukuuta"
    "|ledna|února|března|dubna|května|června|července|srpna|září|října|listopadu|prosince"
)
_MONTH = rf"(?i:{_MONTHS})\.?"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th|er|\.|º|°)?"
_DATE_CANDIDATE = re.compile(
    # 14/03/1987, 1987-03-14, 14.3.87, 03-14-1987
    r"(?<![\d./-])(?:\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})|\d{4}[./-]\d{1,2}[./-]\d{1,2})"
    r"(?![\d]|[./-]\d)"
    # 14 March 1987, 14. März 1987, 14 de marzo de 1987, 1er avril 1987, 14-Mar-1987
    rf"|(?<!\w){_DAY}\s?(?:de\s+|of\s+|[-/]\s?)?{_MONTH}(?:\s+de|\s+del|,)?[\s/-]?\s?(?:\d{{4}}|'\d{{2}})(?!\d)"
    # March 14, 1987; March 14th 1987 (the look-ahead spares the month names at every other word)
    rf"|(?<!\w)(?=[^\W\d_]{{3,12}}\.?\s+\d){_MONTH}\s+{_DAY},?\s+\d{{4}}(?!\d)"
    # 1987年3月14日, 1987년 3월 14일
    r"|\d{4}\s?[年년]\s?\d{1,2}\s?[月월]\s?\d{1,2}\s?[日일]?"
    # 19870314 (only after a cue, see _dob_findings)
    r"|(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"
)
# What every date candidate and a year alone hold: most texts with digits hold none of these.
_DATE_HINT = re.compile(r"\d{4}|'\d\d|\d[./-]\d{1,2}[./-]\d")
_BIRTH_CUE = re.compile(
    r"(?i:\b(?:d\.?o\.?b|date\s+of\s+birth|birth\s*date|birthdate|birthday|born(?:\s+on)?"
    r"|b\.|geb\.?|geboren(?:\s+(?:am|op|den))?|geburtsdatum|geburtstag|geb\.-?datum"
    r"|n[ée]e?(?:\s+le)?|date\s+de\s+naissance|naissance|anniversaire"
    r"|fecha\s+de\s+nacimiento|f\.\s?(?:de\s+)?nac\.?|nacimiento|nacid[oa](?:\s+el)?|cumpleaños"
    r"|data\s+di\s+nascita|nat[oa](?:\s+il)?|nascita|compleanno"
    r"|data\s+de\s+nascimento|nascid[oa](?:\s+(?:em|a))?|nascimento|aniversário"
    r"|geboortedatum|verjaardag|född(?:\s+den)?|födelsedatum|födelsedag|født(?:\s+den)?"
    r"|fødselsdato|fødselsdag|syntynyt|syntymäaika|syntymäpäivä|s\."
    r"|data\s+urodzenia|ur\.|urodzon[ay](?:\s+dnia)?|urodziny|datum\s+narození|narozen[a]?"
    r"|nar\.|születési\s+(?:dátum|idő)|született|szül\.|doğum\s+tarihi|doğum|d\.t\."
    r"|age\s+and\s+dob|dob/age)(?!\w))"
    r"|дата\s+рождения|родил(?:ся|ась)|род\.|дата\s+народження|народився|народилася"
    r"|ημερομηνία\s+γέννησης|γεννήθηκε|生年月日|出生日期|出生于|出生於|生日|誕生日|생년월일|생일"
    r"|تاريخ\s+الميلاد|תאריך\s+לידה"
    r"|(?<![\w*])\*"
)
_CUE_BEFORE = re.compile(
    rf"(?:{_BIRTH_CUE.pattern})[\s:=\-–—(),]*(?:(?i:on|am|le|el|il|em|op|den|the|dnia|a)\s+)?$"
)
_CUE_AFTER = re.compile(rf"^[\s,;:(\[\-–—]*(?:{_BIRTH_CUE.pattern})")
# A person right before the date: a name, a pseudonym, a title, a pronoun or a relation.
_PERSON_BEFORE = re.compile(r"(?:<NAME_[0-9a-f]{8}>|\x00NAME\x00)[\s,;:()\[\]/\-–—*]{0,6}$")
# Without a cue, only a date old enough to be nobody's receipt or trip counts as a birth date.
_LATEST_BIRTH_YEAR_WITHOUT_CUE = 2012
_YEAR = re.compile(r"(?<!\d)(\d{4}|'?\d{2})(?!\d)")


def _year_of(value: str) -> int | None:
    four = re.search(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)", value)
    if four:
        return int(four.group(1))
    two = re.search(r"(?<!\d)'?(\d{2})\W*$", value)
    if two:
        year = int(two.group(1))
        return 1900 + year if year > 25 else 2000 + year
    return None


def _dob_findings(text: str, names: list[tuple[int, int]]) -> list[Finding]:
    """Dates next to a birth cue (before or after, in the product's languages) or right after a
    person; the latter only when the date is old enough to be no receipt or travel date."""
    if _DATE_HINT.search(text) is None:
        return []
    found = []
    for match in _DATE_CANDIDATE.finditer(text):
        value = match.group().rstrip(".,")
        start, end = match.start(), match.start() + len(value)
        before = text[max(0, start - 48) : start]
        cued = _CUE_BEFORE.search(before) is not None or (
            _CUE_AFTER.search(text[end : end + 24]) is not None
        )
        if not cued and value.isdigit():
            continue  # 19870314 needs a cue
        if not cued:
            year = _year_of(value)
            if year is None or year > _LATEST_BIRTH_YEAR_WITHOUT_CUE or year < 1900:
                continue
            gap = text[max(0, start - 8) : start]
            near = (
                any(
                    n_end <= start and re.fullmatch(r"[\s,;:()\[\]/\-–—*]{0,6}", text[n_end:start])
                    for _, n_end in names
                )
                or _PERSON_BEFORE.search(before) is not None
            )
            if not near or "\n" in gap:
                continue
        found.append(Finding(start, end, "DOB", value))
    # Year of birth alone after a cue: "born 1987", "geb. 1987", "DOB: 1987".
    for match in re.finditer(r"(?<!\d)(?:19|20)\d{2}(?!\d)", text):
        if _CUE_BEFORE.search(text[max(0, match.start() - 32) : match.start()]):
            found.append(Finding(match.start(), match.end(), "DOB", match.group()))
    return found


# --- vehicle plates ---------------------------------------------------------------------------

_PLATE_CUE = re.compile(
    r"(?i:\b(?=[^\W\d_])(?:licen[cs]e\s+plates?|license|licence|number\s+plates?|plates?(?:\s+(?:no|number|nr))?"
    r"|reg(?:istration)?(?:\s+(?:no|number|nr|mark|plate))?|car\s+reg|vrn|vrm|tags?|parking|parked"
    r"|park(?:ing)?\s+(?:permit|ticket|fine)|toll|congestion\s+charge|ulez|pcn|pay\s+by\s+plate"
    r"|vehicles?|car|van|truck|motorbike|motorcycle|rental|hire\s+car|rental\s+car|cab|taxi"
    r"|kennzeichen|nummernschild|kfz(?:-kennzeichen)?|autokennzeichen|parkschein|maut|fahrzeug"
    r"|immatriculation|immat\.?|plaque|véhicule|voiture|péage|stationnement"
    r"|matr[ií]cula|placa|patente|peaje|aparcamiento|estacionamiento|coche|veh[ií]culo"
    r"|targa|parcheggio|pedaggio|auto|veicolo"
    r"|kenteken|parkeren|tol|nummerplaat"
    r"|registreringsnummer|regnr|reg\.?\s*nr|bilnummer|nummerplade|nummerskilt|parkering|bil"
    r"|rekisterinumero|rekisteritunnus|rekkari|pysäköinti|auton"
    r"|tablica(?:\s+rejestracyjna)?|numer\s+rejestracyjny|nr\s+rej\.?|rejestracja|parking"
    r"|spz|ečv|rz|rendszám|rendszáma|înmatriculare|număr(?:ul)?\s+de\s+înmatriculare"
    r"|registarska\s+oznaka|tablice|reg\.\s*oznaka|evidenčna\s+številka"
    r"|госномер|гос\.?\s*номер|номерной\s+знак|номер\s+(?:машины|авто)|πινακίδα|αριθμός\s+κυκλοφορίας"
    r")\b)"
)
# A plate: two to four groups of letters and digits (1-7 each, 4-10 in all) joined by a
# space, dash or middle dot; it has a letter and a digit, and upper-case letters.
_PLATE_RUN = re.compile(
    r"(?<![\w-])(?=[^\s]*\d|[^\s]*\s\S*\d)"
    r"[A-ZÄÖÜÅÆØ0-9]{1,7}(?:[ \-·•.][A-ZÄÖÜÅÆØ0-9]{1,7}){0,3}(?![\w-])"
)
# Layouts distinctive enough without a cue: France (AB-123-CD), the UK (AB12 CDE), Germany
# (M-AB 1234), the Netherlands (12-ABC-3, AB-123-C, 1-ABC-23).
_PLATE_LAYOUT = re.compile(
    r"(?<![\w-])(?:[A-Z]{2}-\d{3}-[A-Z]{2}|[A-Z]{2}\d{2}\s[A-Z]{3}"
    r"|[A-ZÄÖÜ]{1,3}-[A-Z]{1,2}\s\d{1,4}[EH]?|\d{1,2}-[A-Z]{2,3}-\d{1,2}|[A-Z]{1,2}-\d{2,3}-[A-Z]{1,2}"
    r"|\d-[A-Z]{3}-\d{2,3})(?![\w-])"
)
_NOT_PLATE = re.compile(
    r"(?i)^(?:(?:EUR|USD|GBP|SEK|NOK|DKK|CHF|PLN|CZK|HUF|RON|CAD|AUD|JPY|CNY|INR|BRL|MXN)\b"
    r"|.*\b(?:h|hr|hrs|min|km|kr|nights?|days?|x|kg|am|pm)$|(?:19|20)\d\d$|[A-Z]\d{1,4}$)"
)


def _plate_findings(text: str) -> list[Finding]:
    found = [Finding(m.start(), m.end(), "PLATE", m.group()) for m in _PLATE_LAYOUT.finditer(text)]
    cues = list(_PLATE_CUE.finditer(text))
    if not cues:
        return found
    for cue in cues:
        window_end = min(len(text), cue.end() + 40)
        for match in _PLATE_RUN.finditer(text, cue.end(), window_end):
            value = match.group().strip(" -·•.")
            compact = re.sub(r"[ \-·•.]", "", value)
            letters = sum(ch.isalpha() for ch in compact)
            if not 4 <= len(compact) <= 10 or letters == 0 or letters == len(compact):
                continue
            groups = re.split(r"[ \-·•.]", value)
            if any(re.fullmatch(r"(?:19|20)\d\d", g) for g in groups) and len(groups) > 1:
                continue  # a year beside a road number: "E45 2026"
            if _NOT_PLATE.match(value) or _DATE.match(value):
                continue
            found.append(Finding(match.start(), match.start() + len(value), "PLATE", value))
            break
    return found


def _secret_findings(text: str) -> list[Finding]:
    return [
        Finding(start, end, "SECRET", text[start:end])
        for start, end in secrets.secret_spans(text, is_text_base64=_is_text_base64)
    ]


def _is_text_base64(token: str) -> bool:
    return textview.base64_text(token) is not None


# Receipt and chat cues after which the next words are a person, whatever their case:
# "SERVED BY: MARIA GONZALEZ", "Cardholder JOHN A SMITH", "guest: priya sharma".
_OCR_CUE = re.compile(
    r"(?i:\b(?=\S+(?:\s+\S+){0,4}\s*$)"
    r"(?:served\s+by|you\s+were\s+served\s+by|your\s+server(?:\s+today)?(?:\s+was)?|server"
    r"|cashier|cardholder|card\s*holder|card\s+member|guest(?:\s+name)?|passenger(?:\s+name)?|pax"
    r"|travell?er(?:\s+name)?|customer(?:\s+name)?|client\s+name|attendant|host|waiter|waitress"
    r"|operator|clerk|driver(?:\s+name)?|bill\s+to|sold\s+to|member|employee(?:\s+name)?"
    r"|name|kassierer(?:in)?|bedienung|bediener(?:in)?|es\s+bediente\s+(?:sie|dich)|serveur"
    r"|serveuse|caissi[eè]re?|vendeu(?:r|se)|titulaire(?:\s+de\s+la\s+carte)?|cajer[oa]"
    r"|atendid[oa]\s+por|le\s+atendi[oó]|meser[oa]|camarer[oa]|titular|tarjetahabiente"
    r"|kassa|kassör|kassörska|betjent\s+af|expedient|operatore|cameriere|cassiere"
    r"|karteninhaber(?:in)?|reisende[rn]?|gast|fahrgast|passagier|voyageur|viajero|ospite)"
    r"\s*[:#\-–]?\s*)$"
)


# Words that are months or days and also first names ("June", "April"): after a receipt cue
# ("GUEST: JUNE BRADY") they are the person.
_CALENDAR = frozenset({"January", "April", "May", "June", "July", "August", "Monday"})
# In lower-case chat a preposition is enough of a cue when the words after it are no words.
_LOWER_CUE = re.compile(r"(?i:\b(?:with|for|and|by|from|to|met|cc|guest|colleague)\s+)$")

# How many of the last whitespace-separated tokens of a text a match of these cue patterns (each
# ends at "$") can reach into: _TITLES and _OCR_CUE say so in their look-aheads (two and five
# tokens); a _PERSON_CUE or _INTRO cue is one or two words and "\W{0,3}" adds at most one
# token; a _LOWER_CUE cue is one word and spaces. None looks further back than the "\b"
# before its first word, which sees a space there or the start of the text alike.
_CUE_TOKENS = {_TITLES: 2, _OCR_CUE: 5, _PERSON_CUE: 3, _INTRO: 3, _LOWER_CUE: 1}


def _ends_with(cue: re.Pattern, before: str) -> bool:
    """``cue.search(before) is not None``, decided on the last tokens of ``before`` that a match
    can reach into (_CUE_TOKENS), once per distinct tail: "Dear ", "lunch with ", "; 2 " come
    back text after text, and each search tries a long list of cue words at every word."""
    tokens = _CUE_TOKENS[cue]
    parts = before.rsplit(None, tokens)
    tail = before[len(parts[0]) :] if len(parts) > tokens else before
    return _cue_at_end(cue, tail.lstrip())


@lru_cache(maxsize=65536)
def _cue_at_end(cue: re.Pattern, tail: str) -> bool:
    return cue.search(tail) is not None


def _name_like(word: str) -> bool:
    """A first name that is rare as a lower-case word ("john", "priya"; not "mark", "rose")."""
    lower = word.lower()
    return lower in first_names() and lower_ranks().get(lower, 10**6) > 30_000


def _surname_like(word: str) -> bool:
    """A word rare in lower case: no frequent word ("smith", "gonzalez"; not "dinner")."""
    lower = word.lower().strip("'’")
    return len(lower) >= 2 and lower_ranks().get(lower, 10**6) > 40_000


def _names_in_any_case(text: str, words: list[re.Match]) -> list[Finding]:
    """Names the capitalised-run rules cannot see: lower-case chat ("lunch with priya sharma"),
    ALL-CAPS receipt lines ("SERVED BY: MARIA GONZALEZ"), and a family name in capitals or
    before a comma followed by a first name ("KOWALSKI Jan", "Nakamura, Hiroshi")."""
    found = []
    comma = ", " in text
    i = 0
    while i < len(words):
        # Most words can open nothing here: skipped on their own text (cached) and the ", " after
        # them, which is all _family_name_first and the checks below look at before the cues.
        if not (
            _may_open_any_case(words[i].group())
            or (comma and text.startswith(", ", words[i].end()))
        ):
            i += 1
            continue
        word = words[i].group().rstrip(".")
        family_first = _family_name_first(text, words, i)
        if family_first:
            found.append(Finding(words[i].start(), words[i + 1].end(), "NAME", ""))
            i += 2
            continue
        caps = word.isupper() and sum(ch.isalpha() for ch in word) >= 2
        if not (caps or word.islower()):
            i += 1
            continue
        bare = word.lower()
        if not (_name_like(word) or (len(bare) >= 3 and bare not in lower_ranks()) or caps):
            i += 1  # no run of ordinary lower-case words can start a name here
            continue
        last = _same_case_run(text, words, i, caps)
        runs = [
            tuple(w.group().rstrip(".") for w in words[i : end + 1])
            for end in range(last, i - 1, -1)
        ]
        # A cue only ever makes a run a name (``_reads_as_name`` is monotone in them), so the
        # cue patterns are searched only when some prefix would read as a name with every cue.
        if not any(_reads_as_name(r, caps=caps, cued=True, chat=True, weak=True) for r in runs):
            i += 1
            continue
        before = text[max(0, words[i].start() - 40) : words[i].start()]
        cued = _ends_with(_OCR_CUE, before)
        chat = _ends_with(_PERSON_CUE, before) or _ends_with(_TITLES, before)
        weak = not caps and _ends_with(_LOWER_CUE, before)
        # The longest prefix of the run that reads as a name.
        for end, run in zip(range(last, i - 1, -1), runs, strict=True):
            if _reads_as_name(run, caps=caps, cued=cued, chat=chat, weak=weak):
                found.append(Finding(words[i].start(), words[end].end(), "NAME", ""))
                i = end
                break
        i += 1
    return found


@lru_cache(maxsize=65536)
def _may_open_any_case(word: str) -> bool:
    """Whether ``_names_in_any_case`` could take word ``word`` further than its first checks,
    whatever follows it: as a family name in capitals before a first name (``_family_name_first``
    wants that or a ", " after the word), or as the start of a same-case run (an ALL-CAPS word,
    or a lower-case one that is a first name or no frequent word)."""
    if word.isupper() and len(word) >= 2:
        return True
    word = word.rstrip(".")
    caps = word.isupper() and sum(ch.isalpha() for ch in word) >= 2
    if not (caps or word.islower()):
        return False
    bare = word.lower()
    return _name_like(word) or (len(bare) >= 3 and bare not in lower_ranks()) or caps


def _same_case_run(text: str, words: list[re.Match], i: int, caps: bool) -> int:
    """The index of the last word of the run of up to five same-case words from ``i``."""
    last, j = i, i + 1
    while j < len(words) and j - i < 5:
        gap = text[words[j - 1].end() : words[j].start()]
        nxt = words[j].group().rstrip(".")
        if not (gap in (" ", "\u00a0") or (gap in (" '", " ’") and nxt.lower() in ("t", "s"))):
            break
        if not (nxt.isupper() if caps else nxt.islower()) and nxt.lower() not in _NAME_PARTICLES:
            break
        last = j
        j += 1
    return last


@lru_cache(maxsize=65536)
def _reads_as_name(run: tuple[str, ...], *, caps: bool, cued: bool, chat: bool, weak: bool) -> bool:
    if run[-1].lower() in _NAME_PARTICLES or run[0].lower() in _NAME_PARTICLES:
        return False
    core = [w for w in run if w.lower() not in _NAME_PARTICLES]
    calendar = _CALENDAR if cued else frozenset()
    if any(
        (w.title() in _NOT_NAMES and w.title() not in calendar) or w.title() in _PLACES
        for w in core
    ):
        return False
    unknown = core[0].lower() not in lower_ranks()
    given = _name_like(core[0]) or ((cued or chat or (weak and len(core) >= 2)) and unknown)
    family = len(core) >= 2 and all(_surname_like(w) for w in core[1:])
    if caps:
        return (
            (cued and (len(core) >= 2 or given or _surname_like(core[0])))
            or (chat and given and (family or len(core) == 1))
            or (given and family)
        )
    return (given and family) or (len(core) == 1 and (cued or chat) and unknown)


def _family_name_first(text: str, words: list[re.Match], i: int) -> bool:
    """ "KOWALSKI Jan", "SMITH, John", "Nakamura, Hiroshi": a family name in capitals (or before
    a comma) and then a first name from the gazetteer."""
    if i + 1 >= len(words):
        return False
    word = words[i].group()
    gap = text[words[i].end() : words[i + 1].start()]
    caps = word.isupper() and len(word) >= 2
    if not (gap == ", " or (caps and gap == " ")):
        return False  # most words: neither in capitals nor before a comma
    given = words[i + 1].group().rstrip(".")
    surname = caps or (_is_capitalised(word) and not _is_ordinary(word))
    return (
        surname
        and word.title() not in _NOT_NAMES
        and word.title() not in _PLACES
        and _is_capitalised(given)
        and given.lower() in first_names()
        and given not in _PLACES
        and given not in _NOT_NAMES
    )


_DETECTORS = {
    "SECRET": _secret_findings,
    "EMAIL": lambda text: [
        Finding(m.start(), m.end(), "EMAIL", m.group()) for m in _EMAIL.finditer(text)
    ],
    "IBAN": _iban_findings,
    "CARD": _card_findings,
    "IP": _ip_findings,
    "ID": _id_findings,
    "ACCOUNT": _account_findings,
    "PLATE": _plate_findings,
    "PHONE": _phone_findings,
    "ADDRESS": _address_findings,
    "NAME": _name_findings,
}
_NEEDS_DIGIT = frozenset({"IBAN", "CARD", "IP", "ID", "ACCOUNT", "DOB", "PLATE", "PHONE"})
# The fewest digits a finding of these kinds holds, as their detectors count them: a card
# number 12 (_CARD), a phone number and a cued account number 7, an id 4 (a national id and a
# cued id 4, a NINO 6). A text with fewer digits is not searched for them.
_MIN_DIGITS = {"CARD": 12, "PHONE": 7, "ACCOUNT": 7, "ID": 4}


_PSEUDONYM = re.compile(r"<[A-Z_]+_[0-9a-f]{8}>")
_NAME_PSEUDONYM = re.compile(r"<NAME_[0-9a-f]{8}>|\[NAME\]")


def _mask(match: re.Match) -> str:
    return "\x00" * len(match.group())


# Detectors that guess from words, not from checksums: they never see protected names.
_HEURISTIC = frozenset({"ADDRESS", "NAME"})


@lru_cache(maxsize=64)
def _protected_pattern(protected: frozenset[str]) -> re.Pattern | None:
    if not protected:
        return None
    alternatives = "|".join(re.escape(name) for name in sorted(protected, key=len, reverse=True))
    # Any case: receipts print merchants in capitals ("DEUTSCHE BAHN").
    return re.compile(rf"(?<!\w)(?i:{alternatives})(?!\w)")


@lru_cache(maxsize=8192)
def find_pii(text: str, protected: frozenset[str] = frozenset()) -> tuple[Finding, ...]:
    """Non-overlapping PII findings in ``text``, in order; higher-priority kinds win overlaps.
    ``protected`` names (the known merchants) are hidden from the name and address detectors,
    so they come out untouched; checksummed kinds inside them are still found.

    The detectors read the normalised view of ``text`` (``textview.view``: obfuscated at / dot,
    fullwidth forms, HTML entities, spelled digits, odd spaces and dashes); each finding is
    mapped back to the whole original span. Percent-encoded and base64 runs are decoded and
    searched too: a run holding PII is one finding with its ``encoding`` set.

    Cached: prompts repeat (the system prompt, stock phrases, merchant names)."""
    return _find(textview.clean(text), protected, 0)


def _find(text: str, protected: frozenset[str], depth: int) -> tuple[Finding, ...]:
    seen = textview.view(text)
    found = _detect(seen.text, protected)
    if seen.starts is not None:
        found = [
            Finding(start, end, f.kind, text[start:end])
            for f in found
            for start, end in [seen.span(f.start, f.end)]
        ]
    if "%" in text or len(text) >= 16:
        found += _encoded_findings(text, protected, depth)
    return _resolved(found)


def _resolved(findings: list[Finding]) -> tuple[Finding, ...]:
    """The findings that survive overlaps: higher-priority kinds first, then earlier and longer."""
    taken: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (KINDS.index(f.kind), f.start, -f.end)):
        if all(finding.end <= t.start or finding.start >= t.end for t in taken):
            taken.append(finding)
    return tuple(sorted(taken, key=lambda f: f.start))


def _detect(text: str, protected: frozenset[str]) -> list[Finding]:
    # Pseudonyms already in the text are never found again; protected names are hidden from
    # the detectors that guess from words. Masked characters break every pattern.
    visible = _PSEUDONYM.sub(_mask, text) if "<" in text else text
    pattern = _protected_pattern(protected)
    masked = pattern.sub(_mask, visible) if pattern is not None else visible
    has_digit = _DIGIT.search(visible) is not None
    digits = len(_DIGIT.findall(visible)) if has_digit else 0
    taken: list[Finding] = []
    people: list[Finding] | None = None  # the name findings, computed once for DOB and NAME
    for kind in KINDS:
        if (kind in _NEEDS_DIGIT and not has_digit) or digits < _MIN_DIGITS.get(kind, 0):
            continue
        if kind == "EMAIL" and "@" not in text:
            continue
        if kind in ("DOB", "NAME") and people is None:
            people = _name_findings(masked)
        if kind == "NAME":
            found = people
        elif kind == "DOB":
            names = [(f.start, f.end) for f in people]
            names += [m.span() for m in _NAME_PSEUDONYM.finditer(text)]
            found = _dob_findings(visible, names)
        else:
            found = _DETECTORS[kind](masked if kind in _HEURISTIC else visible)
        # The kind comes from KINDS, not from the detector: no finding names a kind outside it.
        findings = [Finding(f.start, f.end, kind, text[f.start : f.end]) for f in found]
        for finding in sorted(findings, key=lambda f: (f.start, -f.end)):
            if all(finding.end <= t.start or finding.start >= t.end for t in taken):
                taken.append(finding)
    return taken


# Identifier fields inside a decoded JSON payload, by the kind their value is.
_FIELD_KINDS = (
    ("mail", "EMAIL"), ("phone", "PHONE"), ("mobile", "PHONE"), ("tel", "PHONE"),
    ("fax", "PHONE"), ("ip", "IP"), ("addr", "ADDRESS"), ("street", "ADDRESS"),
    ("iban", "IBAN"), ("card", "CARD"), ("pan", "CARD"), ("birth", "DOB"), ("dob", "DOB"),
    ("name", "NAME"), ("user", "NAME"), ("login", "NAME"),
)  # fmt: skip


def _encoded_findings(text: str, protected: frozenset[str], depth: int) -> list[Finding]:
    """Percent-encoded and base64 runs of ``text`` whose decoded text holds PII (or, for JSON,
    identifier fields), each as one finding of its most important kind."""
    found = []
    for run in textview.encoded_runs(text):
        value = text[run.start : run.end]
        if depth >= MAX_DECODE_DEPTH:
            found.append(Finding(run.start, run.end, "SECRET", value))
            continue
        kinds = {f.kind for f in _find(run.decoded, protected, depth + 1)}
        kinds |= _identifier_kinds(run.decoded)
        if kinds:
            kind = min(kinds, key=KINDS.index)
            found.append(Finding(run.start, run.end, kind, value, run.encoding))
    return found


def _identifier_kinds(decoded: str) -> set[str]:
    if decoded.lstrip()[:1] not in ("{", "["):
        return set()
    try:
        document = json.loads(decoded)
    except (ValueError, RecursionError):
        return set()
    kinds = set()
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if is_identifier_field(key):
                    normal = str(key).lower()
                    kinds.add(next((k for part, k in _FIELD_KINDS if part in normal), "ID"))
                else:
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return kinds


def json_depth(value: Any) -> int:
    """How deeply ``value`` (parsed JSON) nests objects and lists; counted without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _normalise(kind: str, value: str) -> str:
    if kind in ("CARD", "IBAN", "ID", "ACCOUNT"):
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    if kind == "PHONE":
        digits = re.sub(r"\D", "", value)
        return (
            "+" + digits[2:] if value.startswith("00") else ("+" if "+" in value else "") + digits
        )
    if kind == "IP":
        return str(ipaddress.ip_address(value))
    return " ".join(value.split()).casefold()


# --- pseudonymiser -----------------------------------------------------------------------------


class Pseudonymiser:
    """Replaces PII with keyed pseudonyms and strips identifier fields; counts what it did."""

    def __init__(self, key: bytes, *, protected: frozenset[str] = frozenset()) -> None:
        if not key:
            raise ConfigError("the PII key is empty: set PRIA_PII_KEY to a long random secret")
        self._key = key
        self.protected = frozenset(protected)
        self.pseudonyms: Counter[str] = Counter()
        self.fields_removed = 0

    @property
    def key(self) -> bytes:
        return self._key

    def protect(self, names: frozenset[str]) -> None:
        """Leave ``names`` (known merchants) untouched from now on."""
        self.protected = self.protected | frozenset(names)

    @property
    def fingerprint(self) -> str:
        """Names the key without revealing it: equal fingerprints, comparable pseudonyms."""
        return hmac.new(self._key, b"pria-ml key fingerprint", hashlib.sha256).hexdigest()[:12]

    def pseudonym(self, kind: str, value: str) -> str:
        message = f"{kind}:{_normalise(kind, value)}".encode()
        return f"<{kind}_{hmac.new(self._key, message, hashlib.sha256).hexdigest()[:8]}>"

    def pseudonymise(self, text: str) -> str:
        """``text`` with every PII finding replaced by its pseudonym; an encoded payload holding
        PII is scrubbed inside its encoding and written back in it (replaced whole when that
        cannot be done with confidence). Raises ``Unscrubbable`` for a text too long or binary
        to scrub (``textview.unfit``)."""
        text = textview.clean(text)
        reason = textview.unfit(text)
        if reason is not None:
            raise Unscrubbable(reason)
        parts, last = [], 0
        for finding in find_pii(text, self.protected):
            parts.append(text[last : finding.start])
            parts.append(self._replacement(finding))
            last = finding.end
        if not parts:
            return text
        parts.append(text[last:])
        return "".join(parts)

    def _replacement(self, finding: Finding) -> str:
        if finding.encoding is not None:
            decoded = textview.decode(finding.value, finding.encoding)
            if decoded is not None:
                scrubbed = self.scrub_text(decoded)
                if scrubbed != decoded and not find_pii(scrubbed, self.protected):
                    return textview.encode(scrubbed, finding.encoding)
        self.pseudonyms[finding.kind] += 1
        return self.pseudonym(finding.kind, finding.value)

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
        """JSON ``value`` without identifier fields at any depth, every string (keys included)
        pseudonymised, JSON inside strings scrubbed as JSON. ``Unscrubbable`` when it nests
        deeper than MAX_JSON_DEPTH."""
        if json_depth(value) > MAX_JSON_DEPTH:
            raise Unscrubbable("json_too_deep")
        value = self.strip_identifiers(value)
        return self._pseudonymise_strings(value)

    def _pseudonymise_strings(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                self.pseudonymise(str(key)): self._pseudonymise_strings(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self._pseudonymise_strings(item) for item in value]
        if isinstance(value, str):
            return self.scrub_text(value)
        return value

    def scrub_text(self, text: str) -> str:
        """Message content: JSON documents (tool results) are scrubbed, other text pseudonymised.
        ``Unscrubbable`` for JSON nested deeper than MAX_JSON_DEPTH, or text ``pseudonymise``
        refuses."""
        text = textview.clean(text)
        stripped = text.lstrip()
        if stripped[:1] in ("{", "[") and len(text) <= textview.MAX_TEXT_CHARS:
            try:
                document = json.loads(text)
            except RecursionError:
                raise Unscrubbable("json_too_deep") from None
            except ValueError:
                pass
            else:
                if isinstance(document, dict | list):
                    return json.dumps(self.scrub(document), ensure_ascii=False)
        return self.pseudonymise(text)


@lru_cache(maxsize=4096)
def is_identifier_field(key: str) -> bool:
    normal = re.sub(r"[\s-]+", "_", str(key).strip()).lower()
    return normal in IDENTIFIER_FIELDS or normal.endswith(IDENTIFIER_SUFFIXES)


def pseudonymiser(settings: Settings) -> Pseudonymiser:
    """The pseudonymiser keyed by ``settings.pii_key``; ConfigError naming PRIA_PII_KEY if unset."""
    if settings.pii_key is None or not settings.pii_key.get_secret_value():
        raise ConfigError(
            "PRIA_PII_KEY is not set: extraction replaces PII with keyed HMAC pseudonyms and will "
            "not run without the secret; set PRIA_PII_KEY (environment or .env)"
        )
    return Pseudonymiser(settings.pii_key.get_secret_value().encode())
