"""Test data for extraction: the extraction date and held-out PII.

Held-out PII comes from Faker locales of countries the seeder never uses (it knows only the US,
UK, Germany and Sweden, and its own short name lists); any value sharing a word with the
seeder's name lists is dropped, so the detectors are measured on people they cannot have been
tuned to through the generator.
"""

from __future__ import annotations

import datetime as dt

from pria_ml.world import seed

DAY = dt.date(2026, 11, 24)

HELD_OUT_LOCALES = (
    "pl_PL", "fi_FI", "tr_TR", "pt_BR", "es_MX", "nl_NL", "it_IT", "fr_FR", "en_IN", "cs_CZ",
    "hu_HU", "ro_RO", "da_DK", "no_NO", "es_ES", "pt_PT",
)  # fmt: skip

_SEEDER_WORDS = {w.lower() for w in seed.FIRST_NAMES + seed.LAST_NAMES}


def held_out_people(per_locale: int, seed_value: int = 7) -> list[dict[str, str]]:
    """People from HELD_OUT_LOCALES: name, phone, street address, email, IBAN, card, IPs."""
    from faker import Faker
    from stdnum import iban, luhn

    people = []
    for locale in HELD_OUT_LOCALES:
        fake = Faker(locale)
        fake.seed_instance(seed_value)
        for _ in range(per_locale):
            person = {
                "locale": locale,
                "name": fake.name(),
                "phone": fake.phone_number(),
                "address": fake.street_address(),
                "email": fake.email(),
                "iban": fake.iban(),
                "card": fake.credit_card_number(),
                "ipv4": fake.ipv4(),
                "ipv6": fake.ipv6(),
            }
            if {w.lower() for w in person["name"].split()} & _SEEDER_WORDS:
                continue
            # Faker draws some IBANs and cards that fail their own checksum: those are not
            # IBANs or card numbers, and a checksum-validating detector rightly ignores them.
            if not iban.is_valid(person["iban"]):
                person.pop("iban")
            if not luhn.is_valid(person["card"]):
                person.pop("card")
            people.append(person)
    return people
