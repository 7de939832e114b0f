# ruff: noqa: RUF001 - obfuscations use the fullwidth at on purpose
"""Held-out PII of the kinds people and tools hide (issue 23): secrets, dates of birth, vehicle
plates, PII inside encoded payloads, obfuscated emails, phones in unusual notation, and names in
any case. Like held_out.py, a measurement and never a tuning set: every value is drawn (Faker,
random keys in each vendor's documented shape), and a miss is fixed for its class.

To grow it, add a shape to ``_SECRETS``, a format to ``DOB_FORMATS``, a country to ``PLATES``,
an encoding to ``_encoded``, a notation to ``_odd_phone`` or a phrasing to ``CONTEXTS``.
"""

from __future__ import annotations

import base64
import html
import json
import random
import re
import string
from urllib.parse import quote, quote_plus, unquote, unquote_plus

from held_out import Plant

ALNUM = string.ascii_letters + string.digits
UPPER = string.ascii_uppercase


def _draw(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _jwt(rng: random.Random, email: str) -> str:
    header = _b64({"alg": "HS256", "typ": "JWT"})
    payload = _b64({"sub": str(rng.randint(10**6, 10**7)), "email": email, "iat": 1767225600})
    return f"{header}.{payload}.{_draw(rng, ALNUM + '-_', 43)}"


# Key shapes from the vendors' documentation; values drawn.
_SECRETS = {
    "aws access key": lambda r: "AKIA" + _draw(r, UPPER + "234567", 16),
    "aws secret key": lambda r: _draw(r, ALNUM + "/+", 40),
    "stripe": lambda r: "sk_live_" + _draw(r, ALNUM, 24),
    "openai": lambda r: "sk-proj-" + _draw(r, ALNUM + "-_", 48),
    "anthropic": lambda r: "sk-ant-api03-" + _draw(r, ALNUM + "-_", 93) + "AA",
    "github": lambda r: "ghp_" + _draw(r, ALNUM, 36),
    "github fine-grained": lambda r: (
        "github_pat_" + _draw(r, ALNUM, 22) + "_" + _draw(r, ALNUM, 59)
    ),
    "gitlab": lambda r: "glpat-" + _draw(r, ALNUM + "-_", 20),
    "slack": lambda r: (
        f"xoxb-{r.randint(10**10, 10**11)}-{r.randint(10**10, 10**11)}-" + _draw(r, ALNUM, 24)
    ),
    "google": lambda r: "AIza" + _draw(r, ALNUM + "-_", 35),
    "hugging face": lambda r: "hf_" + _draw(r, ALNUM, 34),
}
SECRET_CONTEXTS = (
    "here is the key {} for the expense export",
    "API_KEY={}",
    "use this: {}",
    "the integration needs `{}` to sync receipts",
)
PASSWORD_CONTEXTS = (
    "my password is {}", "Passwort: {}", "contraseña: {}", "mot de passe : {}", "wachtwoord = {}",
    "lösenord: {}", "hasło: {}", "pwd={}", "senha: {}",
)  # fmt: skip

DOB_FORMATS = (
    "%d/%m/%Y", "%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d %B %Y", "%B %d, %Y", "%d-%b-%Y",
    "%d.%m.%y", "%Y年%m月%d日", "%Y%m%d",
)  # fmt: skip
MONTHS = {
    "de": "Januar Februar März April Mai Juni Juli August September Oktober November Dezember",
    "fr": "janvier février mars avril mai juin juillet août septembre octobre novembre décembre",
    "es": "enero febrero marzo abril mayo junio julio agosto septiembre octubre noviembre "
    "diciembre",
}
DOB_CONTEXTS = {
    "en": ("DOB: {}", "born on {}", "Date of birth {} (passenger)"),
    "de": ("geb. {}", "Geburtsdatum: {}"),
    "fr": ("née le {}", "date de naissance : {}"),
    "es": ("fecha de nacimiento: {}", "nacido el {}"),
    "sv": ("född {}",),
    "it": ("data di nascita {}", "nato il {}"),
}
# Plate layouts: a letter stands for an upper-case letter, a 9 for a digit.
PLATES = {
    "Germany": "L-LL 9999", "France": "LL-999-LL", "UK": "LL99 LLL", "Italy": "LL 999LL",
    "Spain": "9999 LLL", "Netherlands": "99-LLL-9", "Poland": "LL 99999", "Sweden": "LLL 99L",
    "Belgium": "9-LLL-999", "Austria": "W-99999L", "US": "9LLL999", "Canada": "LLLL 999",
}  # fmt: skip
PLATE_CONTEXTS = (
    "Parking at the airport, car reg {}", "Toll receipt for {}", "Kennzeichen: {}",
    "immatriculation {}", "matrícula {}", "targa {}", "kenteken {}", "rental car plate {}",
)  # fmt: skip
OBFUSCATIONS = (
    "{l} (at) {d} (dot) {t}", "{l} [at] {d} [dot] {t}", "{l} at {d} dot {t}", "{l}＠{d}.{t}",
    "{l}{{at}}{d}{{dot}}{t}", "{l} -at- {d} -dot- {t}", "{l} arroba {d} punto {t}",
    "{l} AT {d} DOT {t}",
)  # fmt: skip
SPELLED = {
    "en": "zero one two three four five six seven eight nine",
    "de": "null eins zwei drei vier fünf sechs sieben acht neun",
    "fr": "zéro un deux trois quatre cinq six sept huit neuf",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve",
}
NAME_LOCALES = ("en_GB", "de_DE", "es_ES", "nl_NL", "fr_FR", "pl_PL", "it_IT", "sv_SE")
NAME_CONTEXTS = {
    "lower": ("lunch with {} today", "booked it for {} and me", "thanks {} for paying"),
    "caps": ("SERVED BY: {}", "CARDHOLDER {}", "GUEST: {}", "CASHIER: {}"),
    "particle": ("Receipt signed by {}", "Meeting with {} tomorrow"),
    "family first": ("Paid by {}", "{} joined the dinner"),
}


def _dob_text(rng: random.Random, fake, lang: str) -> str:
    born = fake.date_of_birth(minimum_age=18, maximum_age=80)
    fmt = rng.choice(DOB_FORMATS)
    if "%B" in fmt and lang in MONTHS:
        return born.strftime(fmt.replace("%B", MONTHS[lang].split()[born.month - 1]))
    return born.strftime(fmt)


def _odd_phone(rng: random.Random, fake) -> tuple[str, str]:
    """(digits, how it is written): a drawn number in an unusual notation."""
    digits = re.sub(r"\D", "", fake.msisdn())[-10:]
    groups = [digits[i : i + 2] for i in range(0, len(digits), 2)]
    style = rng.randrange(6)
    if style == 0:
        return digits, "\u202f".join(groups)
    if style == 1:
        return digits, "\u2013".join(groups)
    if style == 2:
        return digits, ".".join(groups)
    if style == 3:
        return "44" + digits[1:], f"+44 (0){digits[1:4]} {digits[4:7]} {digits[7:]}"
    if style == 4:
        return digits, f"{digits[:4]}/{digits[4:]}"
    words = SPELLED[rng.choice(tuple(SPELLED))].split()
    return digits, " ".join(words[int(d)] for d in digits)


def _encoded(rng: random.Random, fake) -> tuple[str, str, str]:
    """(kind of payload, the plain value, the text holding it encoded)."""
    email, name = fake.email(), fake.name()
    style = rng.randrange(5)
    if style == 0:
        return "percent", email, f"GET /export?contact={quote(email, safe='')}&page=2"
    if style == 1:
        query = quote_plus(f"{name} <{email}>")
        return "percent+", name, f"redirect=/share?to={query}&lang=en"
    if style == 2:
        blob = base64.b64encode(json.dumps({"customer": {"contact": email}}).encode()).decode()
        return "base64 JSON", email, f'{{"payload": "{blob}"}}'
    if style == 3:
        blob = base64.b64encode(f"note: call {name} back".encode()).decode()
        return "base64 text", name, f"attachment data {blob}"
    escaped = "".join(f"&#{ord(c)};" if c in "@." else c for c in email)
    return "html", email, f"&lt;p&gt;Contact: {escaped}&lt;/p&gt;"


def hidden_plants(per_class: int = 6, seed: int = 29) -> list[Plant]:
    """Every class of issue 23, ``per_class`` values per origin."""
    from faker import Faker

    rng = random.Random(seed)
    fake = Faker("en_US")
    fake.seed_instance(seed)
    plants = []
    for shape, make in _SECRETS.items():
        for _ in range(per_class):
            value = make(rng)
            plants.append(Plant("secret", shape, value, rng.choice(SECRET_CONTEXTS).format(value)))
    for _ in range(per_class * 2):
        value = fake.password(length=rng.randint(10, 16))
        plants.append(
            Plant("secret", "password", value, rng.choice(PASSWORD_CONTEXTS).format(value))
        )
        email = fake.email()
        token = _jwt(rng, email)
        plants.append(Plant("secret", "jwt", f"{token} {email}", f"Authorization: Bearer {token}"))
        url_token = _draw(rng, ALNUM, 32)
        url = f"https://api.{fake.domain_name()}/v2/export?access_token={url_token}&user={email}"
        plants.append(Plant("secret", "url token", f"{url_token} {email}", f"export link {url}"))
    for lang, contexts in DOB_CONTEXTS.items():
        for _ in range(per_class):
            value = _dob_text(rng, fake, lang)
            plants.append(Plant("dob", lang, value, rng.choice(contexts).format(value)))
    for _ in range(per_class):
        value = _dob_text(rng, fake, "en")
        plants.append(Plant("dob", "no cue", value, f"{fake.name()}, {value}"))
    for country, layout in PLATES.items():
        for _ in range(per_class):
            value = "".join(
                rng.choice(UPPER) if c == "L" else str(rng.randint(0, 9)) if c == "9" else c
                for c in layout
            )
            plants.append(Plant("plate", country, value, rng.choice(PLATE_CONTEXTS).format(value)))
    for _ in range(per_class * 2):
        kind, value, text = _encoded(rng, fake)
        plants.append(Plant("encoded", kind, value, text))
    for pattern in OBFUSCATIONS:
        for _ in range(per_class):
            local = fake.user_name()
            domain, tld = fake.domain_word(), rng.choice(("com", "org", "net", "de", "io"))
            value = f"{local}@{domain}.{tld}"
            text = "reach me at " + pattern.format(l=local, d=domain, t=tld)
            plants.append(Plant("obfuscated_email", pattern, value, text))
    for _ in range(per_class * 4):
        digits, written = _odd_phone(rng, fake)
        plants.append(Plant("odd_phone", "notation", digits, f"call me on {written} tonight"))
    for locale in NAME_LOCALES:
        local = Faker(locale)
        local.seed_instance(seed)
        for style, contexts in NAME_CONTEXTS.items():
            first, last = local.first_name(), local.last_name()
            if style == "lower":
                value = f"{first} {last}".lower()
            elif style == "caps":
                value = f"{first} {last}".upper()
            elif style == "particle":
                particle = rng.choice(
                    ("von der", "de la", "van 't", "Mac", "bin", "al-", "van den")
                )
                glue = "" if particle.endswith("-") else " "
                title = rng.choice(("Dr.", "Mevrouw", "Sr.", "Mrs", "Prof.", "Herr"))
                value = f"{title} {first} {particle}{glue}{last}"
            else:
                value = rng.choice((f"{last.upper()} {first}", f"{last}, {first}"))
            plants.append(Plant("name_any_case", f"{locale} {style}", value,
                                rng.choice(contexts).format(value)))  # fmt: skip
    return plants


# --- judging ----------------------------------------------------------------------------------

PSEUDONYM = re.compile(r"<[A-Z_]+_[0-9a-f]{8}>|%3C[A-Z_]+_[0-9a-f]{8}%3E")
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_TITLES = {"dr", "mevrouw", "sr", "mrs", "prof", "herr", "von", "der", "de", "la", "van", "den",
           "mac", "bin", "al"}  # fmt: skip
_WORD_DIGITS = {w: str(i) for words in SPELLED.values() for i, w in enumerate(words.split())}


def readings(output: str) -> list[str]:
    """``output`` as a reader could decode it: as is, percent- and HTML-decoded, and every
    base64 run decoded."""
    rest = PSEUDONYM.sub(" ", output)
    views = [rest, unquote(rest), unquote_plus(rest), html.unescape(rest)]
    for run in _B64_RUN.findall(rest):
        for altchars in (None, b"-_"):
            try:
                body = run.rstrip("=")
                data = base64.b64decode(body + "=" * (-len(body) % 4), altchars=altchars)
                views.append(data.decode("utf-8", "ignore"))
            except ValueError:
                continue
    return views


def hidden_leaks(plant: Plant, output: str) -> list[str]:
    """What identifies ``plant`` still readable in ``output``, through any encoding."""
    views = readings(output)
    if plant.kind == "odd_phone":
        spoken = " ".join(_WORD_DIGITS.get(w.lower(), w) for w in re.findall(r"\w+", views[0]))
        digits = re.sub(r"\D", "", " ".join([*views, spoken]))
        return [plant.value] if plant.value[-7:] in digits else []
    if plant.kind in ("secret", "dob", "plate"):
        fragments = plant.value.split(" ") if plant.kind == "secret" else [plant.value]
    else:
        fragments = [
            w
            for w in re.findall(r"\w+", plant.value)
            if len(w) >= 3 and w.lower() not in _TITLES and w.lower() not in ("com", "org", "net")
        ]
    return [f for f in fragments if any(f in view for view in views)]
