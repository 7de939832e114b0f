"""Credentials and secrets in free text: where they are, as spans. Pure; no network.

Yelp's ``detect-secrets`` is the maintained library for this: its regex plugins (cloud access
keys, payment, chat and code-host tokens, private keys, basic-auth URLs, ...) run as they ship,
on every text, and its Shannon-entropy measure decides whether an unquoted token is random
enough to be a key. What it misses in chat text, added here:

- keyword assignments the way people write them, not only the way code does
  (``password: hunter2``, ``my pwd is ...``, ``Passwort lautet ...``, ``contraseña = ...``,
  in the languages the product sees); detect-secrets' own keyword plugin wants quotes;
- ``Bearer`` / ``Basic`` / ``Authorization`` headers, and API-key shapes newer than its plugins
  (``sk-proj-``, ``sk-ant-``, ``github_pat_``, ``glpat-``, ``AIza``, ``hf_``, ``xapp-``, ...);
- whole JWTs: its pattern stops before the signature; the payload (an email claim) goes too;
- URLs that carry a credential (``user:pass@``, ``?token=``, ``&sig=``, ``X-Amz-Signature``):
  the whole URL, with whatever personal data its other parameters hold;
- PEM private-key blocks from BEGIN to END, not only the BEGIN line;
- unquoted random tokens: 20+ characters mixing letters and digits whose entropy (by
  detect-secrets' measure) is near the maximum for their length. UUIDs are not secrets, nor is
  an address's user part (``christopher.weber158@...``): the EMAIL detector takes the address.
"""

from __future__ import annotations

import math
import re
from functools import cache

from pria_ml.data.lexicon import common_words

# Where a secret could be at all: a long token with a digit, a URL, a PEM block, or a cue.
_TOKEN = re.compile(r"(?<![A-Za-z0-9_\-+/=.~])[A-Za-z0-9_\-+/=.~]{16,}")
_CUE_WORDS = (
    r"passwords?|passwd|pass(?:code|phrase|wor[dt])|pwd|pw|pin(?:\s*code)?|secret|client[\s_-]?secret"
    r"|api[\s_-]?keys?|apikey|access[\s_-]?keys?|secret[\s_-]?(?:access[\s_-]?)?keys?"
    r"|private[\s_-]?key|(?:access|auth|refresh|bearer|session|api|bot|personal\s+access|id)[\s_-]?tokens?"
    r"|tokens?|credentials?|login\s+code|otp|one[\s-]time\s+code|verification\s+code"
    r"|contraseña|clave(?:\s+de\s+acceso)?|senha|mot\s+de\s+passe|mdp|passwort|kennwort"
    r"|zugangsdaten|wachtwoord|lösenord|adgangskode|kodeord|passord|salasana|hasło|haslo"
    r"|heslo|jelszó|jelszo|parola(?:\s+d'ordine)?|palavra-passe|geslo|lozinka|parolă|пароль"
    r"|パスワード|暗証番号|密码|密碼|口令|비밀번호|암호|كلمة\s+المرور|סיסמה|รหัสผ่าน"
)
_ASSIGN = (
    r"\s*(?:[:=]|:=|=>|->|\bis\b|\bist\b|\best\b|\bes\b|\bär\b|\ber\b|\bon\b|\bjest\b|\bje\b"
    r"|\blautet\b|\bwas\b|\bsind\b|:\s*is)\s*[:=]?\s*"
)
_KEYWORD = re.compile(
    rf"(?i:(?<![\w])(?:{_CUE_WORDS})(?![\w]))(?:\s+(?i:is|was|for\s+\w+|of\s+\w+))?"
    rf"(?P<assign>{_ASSIGN})[\"'`«“]?(?P<value>[^\s\"'`»”]{{4,200}})"
)
_HEADER = re.compile(
    r"(?i:\b(?:bearer|basic|token|digest|apikey|api-key|x-api-key|authorization)\b)[:=]?\s+"
    r"(?P<value>[A-Za-z0-9._~+/=-]{8,})"
)
_URL = re.compile(
    r"(?i:\b(?:https?|ftps?|wss?|s?ftp|postgres(?:ql)?|mysql|mongodb(?:\+srv)?|redis|amqps?|smtps?|imaps?)://)[^\s<>\"'`]{1,4000}"
)
_URL_CREDENTIAL = re.compile(
    r"://[^/@\s:]+:[^/@\s]+@"
    r"|[?&;#](?i:[\w.-]*(?:token|secret|passw(?:or)?d|pwd|api[_-]?key|apikey|access[_-]?key"
    r"|auth|sig|signature|credential|session|sessionid|sid|jwt|code|key|otp|hash"
    r"|x-amz-[\w-]+))=[^&\s#]{4,}"
)
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
_PEM = re.compile(
    r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY( BLOCK)?-----.{0,20000}?(?:-----END[A-Z ]{0,40}-----|$)",
    re.DOTALL,
)
# Key shapes detect-secrets 1.5 has no plugin for (or only an older format of).
_KEY_SHAPES = re.compile(
    r"(?<![\w-])(?:"
    r"sk-(?:proj-|ant-(?:api|admin)\d{2}-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}"
    r"|(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}|whsec_[0-9A-Za-z]{24,}"
    r"|github_pat_[0-9A-Za-z_]{40,}|gh[pousr]_[0-9A-Za-z]{30,}"
    r"|glpat-[0-9A-Za-z_-]{20,}|gl(?:dt|ft|rt|soat|cbt|imt|ptt|agent|oas)-[0-9A-Za-z_-]{20,}"
    r"|AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}|GOCSPX-[0-9A-Za-z_-]{20,}"
    r"|hf_[0-9A-Za-z]{30,}|xox[abposr]-[0-9A-Za-z-]{10,}|xapp-[0-9A-Za-z-]{20,}"
    r"|(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}"
    r"|SG\.[0-9A-Za-z_-]{16,}\.[0-9A-Za-z_-]{16,}|key-[0-9a-f]{32}|SK[0-9a-f]{32}|AC[0-9a-f]{32}"
    r"|sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}|shp(?:at|ca|pa|ss)_[0-9a-fA-F]{32}"
    r"|dop_v1_[0-9a-f]{64}|npm_[0-9A-Za-z]{36}|pypi-[0-9A-Za-z_-]{50,}"
    r"|EAA[0-9A-Za-z]{30,}|AccountKey=[0-9A-Za-z+/=]{40,}|SharedAccessSignature=[^\s;]{20,}"
    r"|\d{8,10}:AA[0-9A-Za-z_-]{33}"
    r")"
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_DIGIT = re.compile(r"\d")
_EMAIL_AT = re.compile(r"@[A-Za-z0-9]")  # right after a token: the token is an address's user
_PLACEHOLDER = re.compile(r"<[A-Z_]+_[0-9a-f]{8}>|\[[A-Z_]+\]")
_HINT = re.compile(rf"(?i:(?<!\w)(?:{_CUE_WORDS}|bearer|basic|authorization)(?!\w))|://|-----BEGIN")
# A piece of every alternative of _HINT that an ASCII text can match, lower-cased ("pass" for
# passwd, passcode, mot de passe; "token" for every -token; "code" for one-time / verification /
# login code; "kode" for adgangskode, kodeord). The words with "ñ", "ö", "ł", "ó", "ă" and the
# other scripts match no ASCII text at all, and in ASCII (?i) is plain lower-casing. An ASCII text
# with none of these cannot match _HINT, which is tried at every word otherwise.
_HINT_ASCII = re.compile(
    r"pass|pw|pin|secret|api|access|private|token|credential|code|otp|clave|senha|mdp"
    r"|kennwort|zugangsdaten|wachtwoord|kode|salasana|haslo|heslo|jelszo|parol|geslo|lozinka"
    r"|bearer|basic|authorization|://|-----begin"
)


@cache
def _plugins() -> tuple:
    """detect-secrets' regex plugins (all but its public-IP plugin: IPs are a kind of their
    own here), and its entropy measures. Imported on first use: it pulls in ``requests``."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.high_entropy_strings import (
        Base64HighEntropyString,
        HexHighEntropyString,
    )
    from detect_secrets.plugins.ip_public import IPPublicDetector

    patterns = []
    for plugin in get_mapping_from_secret_type_to_class().values():
        if issubclass(plugin, RegexBasedDetector) and plugin is not IPPublicDetector:
            patterns.extend(plugin().denylist)
    return tuple(patterns), Base64HighEntropyString(), HexHighEntropyString()


def _vendor_spans(text: str) -> list[tuple[int, int]]:
    patterns, _, _ = _plugins()
    spans = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            group = 1 if pattern.groups and match.group(1) else 0
            start = match.start(group)
            value = match.group(group)
            stripped = value.strip(" \t\r\n\"':=")
            start += value.index(stripped) if stripped else 0
            if stripped:
                spans.append((start, start + len(stripped)))
    return spans


def _random_token(token: str) -> bool:
    """A token random enough to be a key, by detect-secrets' Shannon entropy."""
    if len(token) < 20 or _UUID.fullmatch(token.strip(".-")):
        return False
    letters = sum(ch.isalpha() for ch in token)
    digits = sum(ch.isdigit() for ch in token)
    if digits == 0 or letters < 4:
        return False
    _, base64_plugin, hex_plugin = _plugins()
    if _HEX.fullmatch(token):
        return len(token) >= 32 and hex_plugin.calculate_shannon_entropy(token) >= 3.0
    upper = sum(ch.isupper() for ch in token)
    if upper == 0 or upper == letters:
        # One case only: random keys of one case over 36 symbols reach ~4.5 bits at 32 chars.
        ceiling = math.log2(min(len(token), 36))
    else:
        ceiling = math.log2(min(len(token), 64))
    return base64_plugin.calculate_shannon_entropy(token) >= ceiling - 1.0


def secret_spans(text: str, *, is_text_base64=None) -> list[tuple[int, int]]:
    """Spans of ``text`` that are secrets or credentials, merged where they overlap.

    ``is_text_base64`` (a predicate) exempts random-looking tokens that decode to readable
    text: those are encoded payloads, scrubbed through their encoding instead."""
    # (A token is ASCII: its digits are what \d finds.)
    tokens = [m for m in _TOKEN.finditer(text) if _DIGIT.search(m.group())]
    if not tokens and not _hinted(text):
        return []
    spans = _vendor_spans(text)
    for pattern in (_KEY_SHAPES, _JWT, _PEM):
        spans += [m.span() for m in pattern.finditer(text)]
    for match in _KEYWORD.finditer(text):
        value = match.group("value").rstrip(".,;:!?)")
        if _plausible_password(
            value, assigned=":" in match.group("assign") or "=" in match.group("assign")
        ):
            spans.append((match.start("value"), match.start("value") + len(value)))
    for match in _HEADER.finditer(text):
        value = match.group("value")
        if any(ch.isdigit() for ch in value) or len(value) >= 16:
            spans.append(match.span("value"))
    if "://" in text:
        for match in _URL.finditer(text):
            url = match.group().rstrip(".,;:!?)]}")
            if _URL_CREDENTIAL.search(url):
                spans.append((match.start(), match.start() + len(url)))
    for match in tokens:
        if _EMAIL_AT.match(text, match.end()):
            continue  # an address's local part ("christopher.weber158@..."): the EMAIL kind's
        token = match.group().strip(".-=~")
        if _random_token(token) and not (is_text_base64 and is_text_base64(token)):
            start = match.start() + match.group().index(token)
            spans.append((start, start + len(token)))
    return _merged(spans)


def _hinted(text: str) -> bool:
    """Whether _HINT matches ``text`` (the same answer, faster on ASCII text)."""
    if text.isascii() and _HINT_ASCII.search(text.lower()) is None:
        return False
    return _HINT.search(text) is not None


def _plausible_password(value: str, *, assigned: bool) -> bool:
    """A value after a password cue: anything but an ordinary word when assigned with ``:`` or
    ``=``; after ``is`` it must look made up (a digit, a symbol or mixed case)."""
    if "\x00" in value or _PLACEHOLDER.fullmatch(value):
        return False  # a pseudonym (masked by the caller) or a reviewer's placeholder
    made_up = (
        any(ch.isdigit() for ch in value)
        or any(not ch.isalnum() for ch in value)
        or (value[1:] != value[1:].lower())
    )
    if assigned:
        return made_up or value.lower() not in common_words()
    return made_up


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(s, e) for s, e in merged]
