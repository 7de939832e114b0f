# ruff: noqa: RUF001 - names and streets in their own alphabets
"""The PII detectors and the keyed tokeniser, on hand-picked cases from many countries."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from pria_ml import privacy, seed
from pria_ml.errors import ConfigError
from pria_ml.settings import Settings


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.value) for f in privacy.find_pii(text)]


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("mail jan.kowalski+exp@poczta.onet.pl now", "EMAIL", "jan.kowalski+exp@poczta.onet.pl"),
        ("ring +44 20 7946 0958 today", "PHONE", "+44 20 7946 0958"),
        ("tel. +48 512 345 678", "PHONE", "+48 512 345 678"),
        ("puhelin 040 123 4567", "PHONE", "040 123 4567"),
        ("call +90 (312) 402-3448 x347", "PHONE", "+90 (312) 402-3448 x347"),
        ("whatsapp 0049 151 23456789", "PHONE", "0049 151 23456789"),
        ("Card 4111 1111 1111 1111 charged", "CARD", "4111 1111 1111 1111"),
        ("amex 3782-822463-10005", "CARD", "3782-822463-10005"),
        (
            "IBAN FR14 2004 1010 0505 0001 3M02 606 please",
            "IBAN",
            "FR14 2004 1010 0505 0001 3M02 606",
        ),
        ("to NL91ABNA0417164300", "IBAN", "NL91ABNA0417164300"),
        ("from 192.168.10.254", "IP", "192.168.10.254"),
        ("v6 2001:db8:85a3::8a2e:370:7334 seen", "IP", "2001:db8:85a3::8a2e:370:7334"),
        ("Receipt to 221B Baker Street", "ADDRESS", "221B Baker Street"),
        ("Office: Hauptstraße 12", "ADDRESS", "Hauptstraße 12"),
        ("lives at ulica Marszałkowska 84/92", "ADDRESS", "ulica Marszałkowska 84/92"),
        ("at 12, rue de la Paix", "ADDRESS", "12, rue de la Paix"),
        ("Mannerheimintie 5", "ADDRESS", "Mannerheimintie 5"),
        ("deliver to Via Roma 5", "ADDRESS", "Via Roma 5"),
        ("dinner with Katarzyna Nowak", "NAME", "Katarzyna Nowak"),
        ("approved by Mr. Okonkwo", "NAME", "Mr. Okonkwo"),
        ("guest Lotte van den Nuwenhijsen", "NAME", "Lotte van den Nuwenhijsen"),
        ("Dear Mehmet Yılmaz,", "NAME", "Mehmet Yılmaz"),
        ("met Ivan Petrovski", "NAME", "Ivan Petrovski"),
    ],
)
def test_detects_pii_of_every_kind(text: str, kind: str, value: str) -> None:
    assert (kind, value) in kinds(text)


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111 1111 1111 1112 charged",  # fails Luhn
        "IBAN FR15 2004 1010 0505 0001 3M02 606",  # fails mod-97
        "version 999.1.1.1 released",  # not an IP
        "Meeting at 12:30:45 on 2026-11-24",  # time and date, not IPv6 or phone
        "Team dinner after the Q3 planning offsite",
        "Annual licence renewal, 4 seats, EUR 1299.00",
    ],
)
def test_checksums_and_shapes_keep_false_positives_out(text: str) -> None:
    assert kinds(text) == []


def test_the_seeders_merchants_and_system_prompt_are_not_pii() -> None:
    """The model learns merchant -> category: the merchants must survive tokenisation."""
    flagged = [m for m in seed.MERCHANTS if privacy.find_pii(f"New receipt from {m}.")]
    assert flagged == []
    assert privacy.find_pii(seed.SYSTEM_PROMPT) == ()


def test_tokens_are_stable_keyed_and_normalised() -> None:
    one, other = privacy.Tokeniser(b"key-one"), privacy.Tokeniser(b"key-two")
    a = one.tokenise("Mail Anna.Berg@Example.com or call +46 8 123 456 78")
    b = one.tokenise("call +46812345678, mail anna.berg@example.com")
    assert re.fullmatch(r"Mail <EMAIL_[0-9a-f]{8}> or call <PHONE_[0-9a-f]{8}>", a)
    assert set(re.findall(r"<\w+>", a)) == set(re.findall(r"<\w+>", b))
    assert other.tokenise("anna.berg@example.com") != one.tokenise("anna.berg@example.com")
    assert one.tokens == {"EMAIL": 3, "PHONE": 2}
    assert one.fingerprint != other.fingerprint


def test_identifier_fields_are_removed_at_every_depth() -> None:
    tokens = privacy.Tokeniser(b"k")
    trace = {
        "user_id": "u1",
        "session": {"User-Email": "a@b.se", "device": {"IP": "10.0.0.1", "model": "iPhone"}},
        "messages": [{"role": "user", "content": "hi", "meta": {"x": {"y": {"phone": "1"}}}}],
        "billing": {"contact_email": "c@d.se", "card_number": "4111111111111111"},
    }
    assert tokens.strip_identifiers(trace) == {
        "session": {"device": {"model": "iPhone"}},
        "messages": [{"role": "user", "content": "hi", "meta": {"x": {"y": {}}}}],
        "billing": {},
    }
    assert tokens.fields_removed == 6


def test_json_message_content_is_scrubbed_and_plain_text_tokenised() -> None:
    tokens = privacy.Tokeniser(b"k")
    tool = '{"merchant": "Uber", "submitted_by": {"name": "Jan Nowak"}, "note": "jan@x.pl"}'
    scrubbed = tokens.scrub_text(tool)
    assert "Jan" not in scrubbed and "jan@x.pl" not in scrubbed
    assert scrubbed.startswith('{"merchant": "Uber", "submitted_by": {}, "note": "<EMAIL_')
    assert tokens.scrub_text("{not json, from jan@x.pl").startswith("{not json, from <EMAIL_")


def test_missing_key_is_a_config_error_naming_pria_pii_key(settings: Settings) -> None:
    for key in (None, SecretStr("")):
        with pytest.raises(ConfigError, match="PRIA_PII_KEY"):
            privacy.tokeniser(settings.model_copy(update={"pii_key": key}))
    assert privacy.tokeniser(settings).fingerprint
