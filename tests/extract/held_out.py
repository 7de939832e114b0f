"""The held-out PII set: people, addresses and numbers from cultures and countries that neither
the seeder nor the detector tests (test_privacy_detectors.py) use, written the way users type
them. It is a measurement, never a tuning set: when it finds a miss, the detector is fixed for
the whole class (a script, a layout, a kind of number), not for the value.

To grow it, add a locale to a ``*_LOCALES`` tuple, a country to ``NATIONAL_IDS``, or a phrasing
to ``CONTEXTS``; every value is drawn from Faker or built with python-stdnum's check-digit
functions, so no value is written by hand.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

# Faker locales for names and street addresses. The old held-out set (extract_samples.py) and
# the detector tests use none of them.
NAME_LOCALES = (
    "ja_JP", "zh_CN", "zh_TW", "ko_KR", "ru_RU", "uk_UA", "el_GR", "bg_BG", "mk_MK", "ka_GE",
    "hy_AM", "he_IL", "fa_IR", "th_TH", "hi_IN", "bn_BD", "ta_IN", "ne_NP", "vi_VN", "id_ID",
    "fil_PH", "yo_NG", "ig_NG", "ha_NG", "tw_GH", "zu_ZA", "en_KE", "az_AZ", "uz_UZ", "sq_AL",
    "ga_IE", "is_IS", "et_EE", "lt_LT", "lv_LV", "sl_SI", "sk_SK", "hr_HR", "es_AR", "es_CO",
    "es_CL", "de_AT", "de_CH", "fr_CH", "nl_BE", "fr_CA", "en_NZ", "en_AU",
)  # fmt: skip
ADDRESS_LOCALES = (
    "ja_JP", "zh_CN", "zh_TW", "ko_KR", "ru_RU", "uk_UA", "el_GR", "mk_MK", "ka_GE", "hy_AM",
    "he_IL", "th_TH", "hi_IN", "bn_BD", "vi_VN", "id_ID", "en_PH", "en_AU", "en_NZ", "en_IE",
    "de_AT", "de_CH", "fr_CH", "nl_BE", "sk_SK", "sl_SI", "hr_HR", "es_AR", "es_CL", "es_CO",
    "az_AZ", "en_KE", "en_NG", "zu_ZA",
)  # fmt: skip
# Units written before the house number, in the held-out countries' own words.
UNITS = ("Flat", "Apartment", "Unit", "Apt.", "Suite", "Level", "Dpto.", "Appartement")
# Surname particles, with the locale whose (Latin-script) names carry them; Irish "Ó" / "Ní" /
# "Mac" come with ga_IE's own surnames.
PARTICLES = (("bin", "id_ID"), ("binti", "id_ID"), ("al-", "en_PK"), ("el-", "en_PK"),
             ("ibn", "en_PK"), ("van der", "nl_BE"), ("ter", "nl_BE"), ("de la", "es_CO"),
             ("von", "de_AT"), ("dos", "pt_PT"))  # fmt: skip


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _birth(rng: random.Random) -> tuple[int, int, int]:
    return rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28)


def _with_check(module: str, body: str) -> str:
    import importlib

    return body + importlib.import_module(f"stdnum.{module}").calc_check_digit(body)


def _no(rng: random.Random) -> str:
    from stdnum.no import fodselsnummer

    while True:
        y, m, d = _birth(rng)
        body = f"{d:02d}{m:02d}{y % 100:02d}" + rng.choice("01234") + _digits(rng, 2)
        try:
            first = fodselsnummer.calc_check_digit1(body)
            value = body + first + fodselsnummer.calc_check_digit2(body + first)
        except Exception:
            continue
        if fodselsnummer.is_valid(value):
            return value


def _dk(rng: random.Random) -> str:
    y, m, d = _birth(rng)
    return f"{d:02d}{m:02d}{y % 100:02d}-{_digits(rng, 4)}"


def _fi(rng: random.Random) -> str:
    from stdnum.fi import hetu

    y, m, d = _birth(rng)
    body = f"{d:02d}{m:02d}{y % 100:02d}" + ("-" if y < 2000 else "A") + _digits(rng, 3)
    return body + hetu._calc_checksum(body[:6] + body[7:])


def _cz(rng: random.Random) -> str:
    y, m, d = _birth(rng)
    while True:
        body = f"{y % 100:02d}{m + rng.choice((0, 50)):02d}{d:02d}{_digits(rng, 4)}"
        if int(body) % 11 == 0:
            return body[:6] + "/" + body[6:]


def _ro(rng: random.Random) -> str:
    from stdnum.ro import cnp

    y, m, d = _birth(rng)
    body = f"{rng.choice('12' if y < 2000 else '56')}{y % 100:02d}{m:02d}{d:02d}"
    body += f"{rng.randint(1, 46):02d}{_digits(rng, 3)}"
    return body + cnp.calc_check_digit(body)


def _bg(rng: random.Random) -> str:
    from stdnum.bg import egn

    y, m, d = _birth(rng)
    body = f"{y % 100:02d}{m + (40 if y >= 2000 else 0):02d}{d:02d}{_digits(rng, 3)}"
    return body + egn.calc_check_digit(body)


def _ee(rng: random.Random) -> str:
    from stdnum.ee import ik

    y, m, d = _birth(rng)
    body = f"{rng.choice('34' if y < 2000 else '56')}{y % 100:02d}{m:02d}{d:02d}{_digits(rng, 3)}"
    return body + ik.calc_check_digit(body + "0")  # it skips the last digit


def _be(rng: random.Random) -> str:
    y, m, d = _birth(rng)
    body = f"{y % 100:02d}{m:02d}{d:02d}{_digits(rng, 3)}"
    base = int(("2" if y >= 2000 else "") + body)
    return f"{body[:2]}.{body[2:4]}.{body[4:6]}-{body[6:]}.{97 - base % 97:02d}"


def _in_aadhaar(rng: random.Random) -> str:
    from stdnum import verhoeff

    body = rng.choice("23456789") + _digits(rng, 10)
    full = body + verhoeff.calc_check_digit(body)
    return f"{full[:4]} {full[4:8]} {full[8:]}"


def _in_pan(rng: random.Random) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return (
        "".join(rng.choice(letters) for _ in range(3))
        + rng.choice("PCHFATBLJG")
        + rng.choice(letters)
        + _digits(rng, 4)
        + rng.choice(letters)
    )


def _jp(rng: random.Random) -> str:
    full = _with_check("jp.in_", _digits(rng, 11))
    return f"{full[:4]} {full[4:8]} {full[8:]}"


def _br(rng: random.Random) -> str:
    from stdnum.br import cpf

    body = _digits(rng, 9)
    full = body + cpf._calc_check_digits(body)
    return f"{full[:3]}.{full[3:6]}.{full[6:9]}-{full[9:]}"


def _ca(rng: random.Random) -> str:
    from stdnum import luhn

    full = _with_check("luhn", rng.choice("1234567") + _digits(rng, 7))
    assert luhn.is_valid(full)
    return f"{full[:3]}-{full[3:6]}-{full[6:]}"


def _au(rng: random.Random) -> str:
    weights = (1, 4, 3, 7, 5, 8, 6, 9, 10)
    while True:
        body = _digits(rng, 9)
        if sum(w * int(c) for w, c in zip(weights, body, strict=True)) % 11 == 0:
            return f"{body[:3]} {body[3:6]} {body[6:]}"


def _us_ssn(rng: random.Random) -> str:
    return f"{rng.randint(100, 665)}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)}"


def _us_itin(rng: random.Random) -> str:
    return f"9{_digits(rng, 2)}-{rng.choice(['70', '78', '88', '92', '94'])}-{_digits(rng, 4)}"


def _ie(rng: random.Random) -> str:
    body = _digits(rng, 7)
    total = sum(int(c) * w for c, w in zip(body, range(8, 1, -1), strict=True))
    return body + "WABCDEFGHIJKLMNOPQRSTUV"[total % 23]


def _ch(rng: random.Random) -> str:
    from stdnum import ean

    body = "756" + _digits(rng, 9)
    full = body + ean.calc_check_digit(body)
    return f"{full[:3]}.{full[3:7]}.{full[7:11]}.{full[11:]}"


def _tr(rng: random.Random) -> str:
    from stdnum.tr import tckimlik

    body = rng.choice("123456789") + _digits(rng, 8)
    return body + tckimlik.calc_check_digits(body)


def _za(rng: random.Random) -> str:
    from stdnum import luhn

    y, m, d = _birth(rng)
    body = f"{y % 100:02d}{m:02d}{d:02d}{_digits(rng, 4)}{rng.choice('01')}8"
    return body + luhn.calc_check_digit(body)


def _kr(rng: random.Random) -> str:
    y, m, d = _birth(rng)
    body = f"{y % 100:02d}{m:02d}{d:02d}{rng.choice('1234' if y < 2000 else '34')}{_digits(rng, 5)}"
    total = sum(int(c) * w for c, w in zip(body, (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5), strict=True))
    return f"{body[:6]}-{body[6:]}{(11 - total % 11) % 10}"


def _cl(rng: random.Random) -> str:
    from stdnum.cl import rut

    body = str(rng.randint(5_000_000, 25_000_000))
    return f"{int(body):,}".replace(",", ".") + "-" + rut.calc_check_digit(body)


def _mx(rng: random.Random) -> str:
    from stdnum.mx import curp

    y, m, d = _birth(rng)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    body = (
        rng.choice("BCDGHLMPRS") + rng.choice("AEIOU") + rng.choice(letters) + rng.choice(letters)
    )
    body += f"{y % 100:02d}{m:02d}{d:02d}" + rng.choice("HM") + rng.choice(("DF", "JC", "NL"))
    body += "".join(rng.choice("BCDFGHJKLMNPRSTVZ") for _ in range(3)) + ("0" if y < 2000 else "A")
    return body + curp.calc_check_digit(body)


def _il(rng: random.Random) -> str:
    return _with_check("luhn", _digits(rng, 8))


def _gr(rng: random.Random) -> str:
    y, m, d = _birth(rng)
    return _with_check("luhn", f"{d:02d}{m:02d}{y % 100:02d}{_digits(rng, 4)}")


def _cn(rng: random.Random) -> str:
    from stdnum.cn import ric

    y, m, d = _birth(rng)
    body = rng.choice(("110101", "310104", "440305")) + f"{y}{m:02d}{d:02d}" + _digits(rng, 3)
    return body + ric.calc_check_digit(body)


# country -> (stdnum module that must accept the value, generator). Grow freely.
NATIONAL_IDS: dict[str, tuple[str, Callable[[random.Random], str]]] = {
    "Norway": ("no.fodselsnummer", _no),
    "Denmark": ("dk.cpr", _dk),
    "Finland": ("fi.hetu", _fi),
    "Czechia": ("cz.rc", _cz),
    "Romania": ("ro.cnp", _ro),
    "Bulgaria": ("bg.egn", _bg),
    "Estonia": ("ee.ik", _ee),
    "Belgium": ("be.nn", _be),
    "Ireland": ("ie.pps", _ie),
    "Switzerland": ("ch.ssn", _ch),
    "India (Aadhaar)": ("in_.aadhaar", _in_aadhaar),
    "India (PAN)": ("in_.pan", _in_pan),
    "Japan": ("jp.in_", _jp),
    "Brazil": ("br.cpf", _br),
    "Canada": ("ca.sin", _ca),
    "Australia": ("au.tfn", _au),
    "US (SSN)": ("us.ssn", _us_ssn),
    "US (ITIN)": ("us.itin", _us_itin),
    "Turkey": ("tr.tckimlik", _tr),
    "South Africa": ("za.idnr", _za),
    "South Korea": ("kr.rrn", _kr),
    "Chile": ("cl.rut", _cl),
    "Mexico": ("mx.curp", _mx),
    "Israel": ("il.idnr", _il),
    "Greece": ("gr.amka", _gr),
    "China": ("cn.ric", _cn),
}

# How users write each kind. ``{}`` is the value. Phrasings, not cue lists: several carry no
# cue at all, and those that do use words in the held-out countries' languages.
CONTEXTS: dict[str, tuple[str, ...]] = {
    "name": (
        "{} paid for the taxi to the station",
        "Booked the hotel for {} and two colleagues",
        "{}'s train ticket, refund please",
        "Receipt signed by {}",
        "The driver dropped {} at the airport",
        "Per diem for {} (3 days)",
        "Meeting notes: {} will send the invoice",
    ),
    "address": (
        "Please send the card to {}",
        "Ship the monitor to {}, thanks",
        "Hotel was at {}",
        "Pick-up: {}",
        "New home address {}",
    ),
    "national_id": (
        "{}",  # bare: a checksum alone must catch it
        "Employee record {} attached",
        "my ID is {}",
        "For the visa letter: {}",
        "Reimbursement form, tax number {}",
    ),
    "passport": (
        "Passport No. {} for the visa",
        "passport number: {}",
        "N° de passeport {}",
        "Reisepassnummer {}",
        "pasaporte {}",
        "паспорт {}",
        "Pasaportë {}",
    ),
    "iban_near_miss": ("Refund to {} please", "IBAN {}", "{}", "transfer to {}"),
    "account": (
        "account number {}",
        "Kontonummer: {}",
        "n° de compte {}",
        "número de cuenta {}",
        "rekeningnummer {}",
        "tilinumero {}",
        "számlaszám {}",
        "acct {}",
        "bank account no. {}",
        "счёт № {}",
    ),
}


@dataclass(frozen=True)
class Plant:
    kind: str
    origin: str  # locale or country
    value: str
    text: str  # the value in a sentence


def _name(fake, locale: str, rng: random.Random) -> str:
    first, last = fake.first_name(), fake.last_name()
    if locale in ("zh_CN", "zh_TW", "ko_KR"):
        return last + first
    if locale in ("ja_JP", "hu_HU", "vi_VN"):
        return f"{last} {first}"
    return f"{first} {last}"


def _near_miss_iban(fake, rng: random.Random) -> str:
    """A real-looking IBAN with a group added or cut, check digits recomputed: mod-97 holds,
    the length for its country does not."""
    from stdnum import iban

    compact = iban.compact(fake.iban())
    bban = compact[4:]
    bban = bban[: -rng.randint(1, 4)] if rng.random() < 0.5 else bban + _digits(rng, 2)
    value = compact[:2] + iban.calc_check_digits(compact[:2] + "00" + bban) + bban
    assert not iban.is_valid(value)
    return (
        " ".join(value[i : i + 4] for i in range(0, len(value), 4)) if rng.random() < 0.5 else value
    )


def held_out_plants(per_origin: int = 3, seed: int = 23) -> list[Plant]:
    """Every kind from every origin, ``per_origin`` values each, each in a drawn phrasing."""
    import importlib

    from faker import Faker

    rng = random.Random(seed)
    plants = []

    def add(kind: str, origin: str, value: str) -> None:
        plants.append(Plant(kind, origin, value, rng.choice(CONTEXTS[kind]).format(value)))

    for locale in NAME_LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(per_origin):
            add("name", locale, _name(fake, locale, rng))
    for particle, locale in PARTICLES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(per_origin):
            glue = "" if particle.endswith("-") else " "
            name = f"{fake.first_name()} {particle}{glue}{fake.last_name()}"
            add("name", f"{locale} particle", name)
    for locale in ADDRESS_LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(per_origin + 1):
            # Street and house number; Faker's Japanese and Chinese street lines are placeholders,
            # their full address lines are real layouts (prefecture, city, block numbers).
            if locale in ("ja_JP", "zh_CN", "zh_TW"):
                street = max(fake.address().split("\n")[0].split(" "), key=len)
                if locale == "ja_JP" and rng.random() < 0.5:
                    street = f"〒{fake.postcode()} {street}"
            else:
                street = fake.street_address()
            if len(plants) % 4 == 0 and locale not in ("ja_JP", "zh_CN", "zh_TW", "ko_KR"):
                add(
                    "address",
                    f"{locale} unit first",
                    f"{rng.choice(UNITS)} {rng.randint(1, 40)}, {street}",
                )
            else:
                add("address", locale, street)
    for country, (module, make) in NATIONAL_IDS.items():
        validator = importlib.import_module(f"stdnum.{module}")
        for _ in range(per_origin):
            # Some drawn bodies have no valid check digit (or an invalid date): draw again.
            value = next(v for v in (make(rng) for _ in range(100)) if validator.is_valid(v))
            add("national_id", country, value)
    for locale in ("en_US", "en_CA", "en_IN", "pt_BR", "ru_RU", "de_AT", "es_AR", "sq_AL"):
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(per_origin):
            add("passport", locale, fake.passport_number())
    for locale in ("de_AT", "nl_BE", "fr_CH", "sk_SK", "hr_HR", "en_IE", "lt_LT", "pt_PT"):
        fake = Faker(locale)
        fake.seed_instance(seed)
        for _ in range(per_origin):
            add("iban_near_miss", locale, _near_miss_iban(fake, rng))
    for origin, digits in (("8 digits", 8), ("10 digits", 10), ("12 digits", 12)):
        for _ in range(per_origin * 3):
            raw = rng.choice("123456789") + _digits(rng, digits - 1)
            value = raw if rng.random() < 0.5 else f"{raw[:4]}-{raw[4:]}"
            add("account", origin, value)
    return plants


# --- judging ----------------------------------------------------------------------------------

# Words of a value that identify nobody on their own: unit, street-type and postal words.
NOT_IDENTIFYING = frozenset({
    "flat", "apartment", "unit", "apt", "suite", "level", "dpto", "appartement", "street", "road",
    "avenue", "no", "box", "bis", "sur", "este", "local", "torre", "apartamento", "building",
    "bldg", "blk", "block", "lot", "km", "ruta", "calle", "carrera", "psje", "pasaje", "gg",
    "jalan", "jl", "số", "khóm", "phường", "ул", "пер", "д", "буд", "парк", "шосе", "ქ",
    "mama", "madam", "van", "der", "de", "la", "bin", "ibn", "al", "von", "dos", "ter", "ní",
    "mac",
})  # fmt: skip
PSEUDONYM = re.compile(r"<[A-Z_]+_[0-9a-f]{8}>")


def _fragments(plant: Plant) -> list[str]:
    """What must not be left of ``plant.value`` in an output."""
    if plant.kind in ("national_id", "passport", "iban_near_miss", "account"):
        compact = re.sub(r"[\s.\-/]", "", plant.value)
        return [plant.value, compact]
    fragments = []
    for word in re.findall(r"\w+", plant.value):
        uncased = all(not (c.isupper() or c.islower()) for c in word if c.isalpha())
        if word.lower() in NOT_IDENTIFYING or len(word) < (2 if uncased else 3):
            continue
        if plant.kind == "address" and any(c.isdigit() for c in word) and len(word) < 5:
            continue  # a house, block or lot number alone identifies nobody
        fragments.append(word)
    return fragments


def leaks(plant: Plant, output: str) -> list[str]:
    """The identifying fragments of ``plant`` still in ``output`` (pseudonyms removed)."""
    rest = PSEUDONYM.sub(" ", output)
    found = []
    for fragment in _fragments(plant):
        if re.search(rf"(?<!\w){re.escape(fragment)}(?!\w)", rest) or (
            len(fragment) >= 6 and not fragment.isalpha() and fragment in rest
        ):
            found.append(fragment)
    return found
