"""A synthetic PRIA source database: expenses, agent traces and workflow events.

``seed`` stands up the source schema (``sql/source/schema.sql``) and fills it by bulk COPY, so
the demo and the tests extract from something that looks like the product: realistic expense
text, conversations with system / user / tool messages ending in the agent's action, and human
overrides that follow patterns a model can learn:

- the agent systematically files a few *trap merchants* under the wrong category (Deutsche
  Bahn as air travel, Coursera as software, ...) and the human corrects them most of the time;
- a restaurant bill whose description mentions a client is client entertainment, not a meal;
  the agent says "meal", the human corrects it;
- otherwise the agent is right, with a small rate of random mistakes the human corrects.

PII is planted where it turns up in real data: names, emails, phones, card numbers, IBANs and
street addresses in expense free text and chat messages; user identifier fields (``user_id``,
``email``, ``name``, ``phone``, ``ip``) in the trace JSON at depths 2 to 4 and inside the tool
result's JSON string. The people, phone formats and addresses come from four countries only
(US, UK, Germany, Sweden) and from name lists in this file, which the PII detectors never see:
the privacy tests measure recall on PII from other countries too (see docs/privacy.md).

Everything is drawn from one ``random.Random(seed)``: the same seed, row count and end date give
the same database, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pria_ml.db import database
from pria_ml.db.sqlfiles import read_sql
from pria_ml.errors import DataError

if TYPE_CHECKING:
    import psycopg

    from pria_ml.db import Database
    from pria_ml.settings import Settings

SOURCE_TABLES = ("workflow_event", "agent_trace", "expense")
EVENT_TYPE = "expense.categorize"

CATEGORIES: dict[int, str] = {
    1: "Air travel",
    2: "Lodging",
    3: "Ground transport",
    4: "Meals",
    5: "Client entertainment",
    6: "Office supplies",
    7: "Software and subscriptions",
    8: "Telecom",
    9: "Fuel and mileage",
    10: "Training and conferences",
}

# merchant -> the category a careful human files it under
MERCHANTS: dict[str, int] = {
    "Lufthansa": 1,
    "SAS Scandinavian Airlines": 1,
    "British Airways": 1,
    "KLM Royal Dutch Airlines": 1,
    "Norwegian Air Shuttle": 1,
    "Scandic Hotels": 2,
    "Premier Inn": 2,
    "Motel One": 2,
    "Radisson Blu": 2,
    "Airbnb": 2,
    "Deutsche Bahn": 3,
    "SJ Rail": 3,
    "Uber": 3,
    "Heathrow Express": 3,
    "Arlanda Express": 3,
    "Pret A Manger": 4,
    "Wagamama": 4,
    "Espresso House": 4,
    "Starbucks": 4,
    "Vapiano": 4,
    "Staples": 6,
    "Biltema": 6,
    "Viking Direct": 6,
    "Atlassian": 7,
    "Figma": 7,
    "GitHub": 7,
    "Zoom Video Communications": 7,
    "Telia": 8,
    "Vodafone": 8,
    "Deutsche Telekom": 8,
    "Shell": 9,
    "Circle K": 9,
    "Aral": 9,
    "Coursera": 10,
    "O'Reilly Media": 10,
    "Web Summit": 10,
}

# The agent's systematic mistakes: merchant -> the category it wrongly picks.
TRAP_MERCHANTS: dict[str, int] = {
    "Deutsche Bahn": 1,
    "Airbnb": 5,
    "Biltema": 7,
    "Circle K": 4,
    "Coursera": 7,
    "Telia": 7,
}
TRAP_ERROR_RATE = 0.85
RANDOM_ERROR_RATE = 0.03
# Only client meals mention these words, so "meal or entertainment" is decidable from the text.
CLIENT_WORDS = ("client", "customer", "prospect")

PURPOSES = (
    "the Q3 planning offsite",
    "onboarding in Hamburg",
    "the annual sales kickoff",
    "a partner workshop",
    "the board meeting",
    "recruiting interviews",
    "the product launch",
    "a site visit",
)
CITIES = ("Stockholm", "Berlin", "London", "Munich", "Gothenburg", "Manchester", "New York")

DESCRIPTIONS: dict[int, tuple[str, ...]] = {
    1: ("Flight {a}-{b} for {purpose}", "Return flight to {b}", "Seat upgrade {a}-{b}"),
    2: ("Hotel {n} nights in {b} for {purpose}", "Accommodation {b}, {n} nights"),
    3: ("Train {a}-{b}", "Taxi from the airport to the office", "Ride to {purpose}"),
    4: (
        "Lunch during {purpose}",
        "Team dinner after {purpose}",
        "Coffee and sandwiches",
        "Working lunch in {b}",
    ),
    6: ("Printer paper and toner", "Whiteboard markers and notebooks", "USB-C adapters"),
    7: ("Monthly subscription", "Annual licence renewal, {n} seats", "Extra storage plan"),
    8: ("Mobile plan {month}", "Roaming charges in {b}", "Office broadband {month}"),
    9: ("Fuel for the rental car", "Diesel, trip to {b}", "Petrol on the way to {purpose}"),
    10: ("Conference ticket for {purpose}", "Online course: data engineering", "Workshop fee"),
}
CLIENT_MEALS = (
    "Dinner with client {client} to discuss renewal",
    "Lunch with a prospect from {client}",
    "Drinks with customer team from {client}",
)
CLIENT_COMPANIES = ("Volvo Cars", "Siemens", "Spotify", "Tesco", "Ericsson", "Bosch", "Ikea")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August")

# --- people: four countries only; the detectors use none of these lists --------------------

FIRST_NAMES = (
    "Anna", "Erik", "Johanna", "Lars", "Ingrid", "Mikael", "Karin", "Oskar", "Sofia", "Henrik",
    "Lukas", "Katharina", "Jonas", "Lena", "Felix", "Miriam", "Tobias", "Sabine", "Matthias",
    "Claudia", "Oliver", "Charlotte", "Harry", "Emily", "George", "Amelia", "Jack", "Olivia",
    "Thomas", "Jessica", "Michael", "Jennifer", "David", "Ashley", "Christopher", "Sarah",
    "Daniel", "Megan", "Andrew", "Rachel",
)  # fmt: skip
LAST_NAMES = (
    "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Lindqvist",
    "Bergstrom", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker",
    "Hoffmann", "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Davies", "Evans",
    "Johnson", "Miller", "Garcia", "Martinez", "Anderson", "Thompson", "Robinson", "Clarke",
)  # fmt: skip
EMAIL_DOMAINS = ("gmail.com", "outlook.com", "acme-corp.com", "northwind.se", "beispiel.de")


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    streets: tuple[str, ...]


COUNTRIES = (
    Country("US", "USD", ("Elm Street", "Oak Avenue", "Maple Drive", "Sunset Boulevard")),
    Country("GB", "GBP", ("Baker Street", "Station Road", "Church Lane", "Victoria Road")),
    Country("DE", "EUR", ("Hauptstraße", "Bahnhofstraße", "Lindenweg", "Schillerplatz")),
    Country("SE", "SEK", ("Storgatan", "Kungsgatan", "Drottninggatan", "Björkvägen")),
)


def _phone(rng: random.Random, country: str) -> str:
    d = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    international = rng.random() < 0.6
    if country == "US":
        area = rng.choice(("415", "212", "646", "312", "617"))
        local = f"{rng.randint(200, 999)}-{d(4)}"
        return f"+1 ({area}) {local}" if international else f"({area}) {local}"
    if country == "GB":
        body = f"20 7{d(3)} {d(4)}" if rng.random() < 0.5 else f"7{d(3)} {d(6)}"
        return f"+44 {body}" if international else f"0{body}"
    if country == "DE":
        body = rng.choice(("30", "89", "40", "151")) + f" {d(7)}"
        return f"+49 {body}" if international else f"0{body}"
    body = f"8 {d(3)} {d(3)} {d(2)}" if rng.random() < 0.5 else f"70 {d(3)} {d(2)} {d(2)}"
    return f"+46 {body}" if international else f"0{body.replace(' ', '-', 1)}"


def _card(rng: random.Random) -> str:
    from stdnum import luhn

    body = rng.choice("45") + "".join(rng.choice("0123456789") for _ in range(14))
    digits = body + luhn.calc_check_digit(body)
    return " ".join(digits[i : i + 4] for i in range(0, 16, 4))


def _iban(rng: random.Random, country: str) -> str:
    from stdnum import iban

    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    bban = {
        "GB": "NWBK" + digits(14),
        "DE": digits(18),
        "SE": digits(20),
        "US": digits(18),  # US has no IBAN; US users hold German accounts here
    }[country]
    code = "DE" if country == "US" else country
    compact = code + iban.calc_check_digits(code + "00" + bban) + bban
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.7:
        return ".".join(
            str(rng.randint(lo, hi)) for lo, hi in ((11, 223), (0, 255), (0, 255), (1, 254))
        )
    return "2001:db8:" + ":".join(f"{rng.getrandbits(16):x}" for _ in range(6))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass(frozen=True)
class User:
    user_id: str
    workspace_id: str
    name: str
    email: str
    phone: str
    ip: str
    address: str
    card: str
    iban: str
    country: Country


def _user(rng: random.Random, workspace_id: str, serial: int) -> User:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    country = rng.choice(COUNTRIES)
    number = rng.randint(1, 250)
    street = rng.choice(country.streets)
    address = f"{number} {street}" if country.code in ("US", "GB") else f"{street} {number}"
    email = f"{first}.{last}{serial}@{rng.choice(EMAIL_DOMAINS)}".lower()
    return User(
        user_id=_uuid(rng),
        workspace_id=workspace_id,
        name=f"{first} {last}",
        email=email,
        phone=_phone(rng, country.code),
        ip=_ip(rng),
        address=address,
        card=_card(rng),
        iban=_iban(rng, country.code),
        country=country,
    )


def action(category_id: int, merchant: str) -> str:
    """The agent action string: the completion a model is trained to produce (data-contract.md)."""
    return f"categorize(category_id={category_id}, merchant={json.dumps(merchant)})"


SYSTEM_PROMPT = (
    "You are PRIA, the expense assistant. File the expense under exactly one category. "
    "Categories: "
    + "; ".join(f"{cid} {name}" for cid, name in CATEGORIES.items())
    + '. Answer with one action: categorize(category_id=<id>, merchant="<merchant>").'
)


@dataclass
class Planted:
    """Where the generator put PII: (source, location, kind, value); for the privacy tests."""

    values: list[tuple[str, str, str, str]] = field(default_factory=list)

    def add(self, source: str, location: str, kind: str, value: str) -> str:
        self.values.append((source, location, kind, value))
        return value


@dataclass(frozen=True)
class SeedReport:
    rows: int
    users: int
    workspaces: int
    overrides: int
    first_day: dt.date
    last_day: dt.date


@dataclass
class Rows:
    """Source rows waiting to be written: one tuple per row, in ``_COLUMNS`` order."""

    expense: list[tuple] = field(default_factory=list)
    agent_trace: list[tuple] = field(default_factory=list)
    workflow_event: list[tuple] = field(default_factory=list)


class Population:
    """The workspaces and users traffic comes from; drawn first from the generator's ``rng``."""

    def __init__(self, rng: random.Random, rows: int) -> None:
        n_workspaces = max(3, rows // 500)
        self.workspaces = [_uuid(rng) for _ in range(n_workspaces)]
        self.users = [_user(rng, rng.choice(self.workspaces), i) for i in range(max(10, rows // 5))]
        self.merchants = list(MERCHANTS)


def generate(
    rows: int, seed: int, end_date: dt.date, *, days: int = 365, planted: Planted | None = None
) -> Iterator[Rows]:
    """Yield the source rows in chunks of at most 10,000 events; pure and deterministic."""
    rng = random.Random(seed)
    population = Population(rng, rows)
    end = dt.datetime.combine(end_date, dt.time(23, 59, 59), tzinfo=dt.UTC)
    chunk = Rows()
    for _ in range(rows):
        user = rng.choice(population.users)
        at = end - dt.timedelta(seconds=rng.randrange(days * 86400))
        case = draw_case(rng, user, rng.choice(population.merchants), at, planted)
        case.add_rows(chunk, case.seeded_action)
        if len(chunk.workflow_event) >= 10_000:
            yield chunk
            chunk = Rows()
    if chunk.workflow_event:
        yield chunk


@dataclass(frozen=True)
class Case:
    """One expense and the conversation about it, up to the moment the agent acts.

    ``prompt`` is what the agent sees (system, user and tool messages); ``seeded_action`` is what
    the seeded agent answers (its systematic mistakes included); ``correct_action`` is what a
    careful reviewer approves. ``add_rows`` writes the case as the product does once an agent has
    answered and a reviewer has decided: the simulation (``simulate.py``) puts a served model's
    answer where the seeder puts the seeded agent's.
    """

    expense: tuple
    trace: dict[str, Any]
    workspace_id: str
    trace_id: str
    event_id: str
    at: dt.datetime
    reviewed_at: dt.datetime
    merchant: str
    category: int
    seeded_category: int

    @property
    def prompt(self) -> list[dict[str, str]]:
        return [{"role": m["role"], "content": m["content"]} for m in self.trace["messages"]]

    @property
    def seeded_action(self) -> str:
        return action(self.seeded_category, self.merchant)

    @property
    def correct_action(self) -> str:
        return action(self.category, self.merchant)

    def add_rows(self, out: Rows, agent_output: str, correction: str | None = None) -> None:
        """Append the expense, the trace ending in ``agent_output`` and the review event.

        The reviewer overrides when ``agent_output`` is not the correct action and writes
        ``correction`` (default: the correct action); pass a ``correction`` equal to
        ``agent_output`` to record an accepted action, or another to simulate a reviewer error.
        """
        correction = self.correct_action if correction is None else correction
        trace = dict(self.trace)
        trace["messages"] = [
            *self.trace["messages"],
            {"role": "assistant", "content": agent_output},
        ]
        out.expense.append(self.expense)
        out.agent_trace.append(
            (
                self.trace_id,
                self.workspace_id,
                self.expense[0],
                json.dumps(trace, ensure_ascii=False),
                self.at,
            )
        )
        overridden = correction != agent_output
        out.workflow_event.append(
            (
                self.event_id,
                self.workspace_id,
                self.trace_id,
                EVENT_TYPE,
                overridden,
                correction if overridden else None,
                self.reviewed_at.isoformat(),
            )
        )


def draw_case(
    rng: random.Random,
    user: User,
    merchant: str,
    at: dt.datetime,
    planted: Planted | None = None,
    *,
    world: World | None = None,
) -> Case:
    """One expense by ``user`` at ``merchant`` whose conversation happens at ``at``; in a
    drifting ``world`` (its merchants, its policy, its tenants' verticals)."""

    def plant(source: str, location: str, kind: str, value: str) -> str:
        return planted.add(source, location, kind, value) if planted is not None else value

    category = MERCHANTS[merchant] if world is None else world.category_of(merchant)
    client_meal = category == 4 and rng.random() < 0.3
    if client_meal:
        description = rng.choice(CLIENT_MEALS).format(client=rng.choice(CLIENT_COMPANIES))
        category = 5
    else:
        description = rng.choice(DESCRIPTIONS[category]).format(
            a=rng.choice(CITIES),
            b=rng.choice(CITIES),
            purpose=rng.choice(PURPOSES),
            n=rng.randint(1, 5),
            month=rng.choice(MONTHS),
        )
    notes = None
    roll = rng.random()
    if roll < 0.15:
        notes = f"Paid with corporate card {plant('expense', 'notes', 'card', user.card)}"
    elif roll < 0.30:
        notes = f"Reimburse to IBAN {plant('expense', 'notes', 'iban', user.iban)}"
    elif roll < 0.40:
        notes = f"Receipt mailed to {plant('expense', 'notes', 'address', user.address)}"
    elif roll < 0.50:
        notes = f"Questions: {plant('expense', 'notes', 'phone', user.phone)}"
    if rng.random() < 0.2:
        guest = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        description += f", with {plant('expense', 'description', 'name', guest)}"
    if rng.random() < 0.1:
        description += f" (cc {plant('expense', 'description', 'email', user.email)})"

    expense_id, trace_id, event_id = _uuid(rng), _uuid(rng), _uuid(rng)
    amount = round(rng.uniform(4, 60) if category in (4, 6) else rng.uniform(20, 900), 2)
    if world is not None:  # the workspace's own policy decides where it is filed
        category = world.policy_category(category, user.workspace_id, at.date())
    expense_at = at - dt.timedelta(seconds=rng.randrange(2 * 86400))
    expense = (
        expense_id,
        user.workspace_id,
        user.user_id,
        description,
        merchant,
        notes,
        category,
        f"{amount:.2f}",
        user.country.currency,
        expense_at.isoformat(),
    )

    user_text = rng.choice(
        (
            "Please file my receipt from {m}.",
            "Can you categorise the {m} expense I just uploaded?",
            "New receipt from {m}, thanks!",
        )
    ).format(m=merchant)
    if rng.random() < 0.3:
        user_text += f" It's {plant('agent_trace', 'messages.user', 'name', user.name)}"
        user_text += f", call me on {plant('agent_trace', 'messages.user', 'phone', user.phone)}"
        user_text += " if anything is unclear."
    if rng.random() < 0.1:
        user_text += f" (sent from {plant('agent_trace', 'messages.user', 'ip', user.ip)})"
    if rng.random() < 0.15:
        user_text += (
            f" Reply to {plant('agent_trace', 'messages.user', 'email', user.email)} please."
        )
    tool_result = {
        "expense_id": expense_id,
        "merchant": merchant,
        "description": description,
        "notes": notes,
        "amount": amount,
        "currency": user.country.currency,
        "submitted_by": {
            "user_id": user.user_id,
            "profile": {
                "email": plant(
                    "agent_trace", "tool.submitted_by.profile.email", "email", user.email
                ),
                "phone": plant(
                    "agent_trace", "tool.submitted_by.profile.phone", "phone", user.phone
                ),
            },
        },
    }
    if world is not None and world.vertical_in_prompt:
        tool_result["workspace_vertical"] = world.vertical_of(user.workspace_id)
    predicted = MERCHANTS.get(merchant, category) if not client_meal else 4
    if merchant in TRAP_MERCHANTS and rng.random() < TRAP_ERROR_RATE:
        predicted = TRAP_MERCHANTS[merchant]
    elif rng.random() < RANDOM_ERROR_RATE:
        predicted = rng.choice([c for c in CATEGORIES if c != category])
    trace = {
        "version": 2,
        "workspace_id": user.workspace_id,
        "session": {
            "id": _uuid(rng),
            "user": {
                "user_id": user.user_id,
                "email": plant("agent_trace", "session.user.email", "email", user.email),
                "name": plant("agent_trace", "session.user.name", "name", user.name),
                "device": {
                    "ip": plant("agent_trace", "session.user.device.ip", "ip", user.ip),
                    "user_agent": "PRIA-iOS/4.2",
                },
            },
        },
        "model": "pria-agent-2025-06",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": user_text, "meta": {"user_id": user.user_id}},
            {
                "role": "tool",
                "name": "get_expense",
                "content": json.dumps(tool_result, ensure_ascii=False),
            },
        ],
    }
    return Case(
        expense=expense,
        trace=trace,
        workspace_id=user.workspace_id,
        trace_id=trace_id,
        event_id=event_id,
        at=at,
        reviewed_at=at + dt.timedelta(seconds=rng.randint(1, 30)),
        merchant=merchant,
        category=category,
        seeded_category=predicted,
    )


# A drifting world (the demo's and ``simulate``'s): new merchants every week, one policy change.
# A new merchant's name ends in a cue word that decides its category: learnable from the
# reviewers' corrections, never seen by the base model. Each week's newcomers draw cue words of
# their own, so what one week teaches does not cover the next week's merchants.
NEW_MERCHANT_CUES: dict[int, tuple[str, ...]] = {
    1: ("Airways", "Jetlines", "Skyways", "Aero"),
    2: ("Hotel", "Inn", "Lodge", "Suites"),
    3: ("Cabs", "Rail", "Shuttle", "Ferries"),
    4: ("Bistro", "Deli", "Kitchen", "Noodle Bar"),
    6: ("Stationers", "Office Supply", "Paperworks", "Print Shop"),
    7: ("Cloud", "Software", "Apps", "SaaS"),
    8: ("Mobile", "Telecom", "Broadband", "Wireless"),
    9: ("Fuels", "Petrol", "Charging", "Gas Station"),
    10: ("Academy", "Institute", "Courses", "Summit"),
}
NEW_MERCHANT_NAMES = (
    "Nordvik",
    "Bramble",
    "Kestrel",
    "Halden",
    "Corvus",
    "Tamsin",
    "Orrin",
    "Vellum",
    "Quillon",
    "Ashby",
    "Lumen",
    "Mossgard",
    "Fenwick",
    "Ivarsson",
    "Calloway",
    "Rydberg",
    "Selwyn",
    "Thorne",
    "Wexford",
    "Ystad",
    "Zephyr",
    "Almqvist",
    "Brisco",
    "Delmar",
)
VERTICALS = ("consulting", "retail", "logistics")


@dataclass(frozen=True)
class PolicyChange:
    """From ``first_day``, workspaces of ``vertical`` file ``category`` under ``files_as``."""

    vertical: str
    first_day: dt.date
    category: int = 4  # meals
    files_as: int = 5  # client entertainment


class World:
    """The seeded world plus drift: ``new_per_week`` merchants arrive every week from
    ``first_day`` and together take ``new_share`` of the traffic; an optional ``policy``
    change; each workspace has a vertical (shown to the agent when ``vertical_in_prompt``,
    spec section 11's metadata-conditioned training). Deterministic in ``seed``."""

    def __init__(
        self,
        seed: int,
        first_day: dt.date,
        *,
        new_per_week: int = 3,
        new_share: float = 0.35,
        policy: PolicyChange | None = None,
        vertical_in_prompt: bool = False,
        weeks: int = 12,
    ) -> None:
        rng = random.Random(f"pria-world/{seed}")
        self.first_day = first_day
        self.new_share = new_share
        self.policy = policy
        self.vertical_in_prompt = vertical_in_prompt
        names = list(NEW_MERCHANT_NAMES)
        rng.shuffle(names)
        cues = [(cue, category) for category, words in NEW_MERCHANT_CUES.items() for cue in words]
        rng.shuffle(cues)
        self.arrivals: dict[str, tuple[dt.date, int]] = {}
        for week in range(weeks):
            for n in range(new_per_week):
                index = week * new_per_week + n
                cue, category = cues[index % len(cues)]
                name = f"{names[index % len(names)]} {cue}"
                arrives = first_day + dt.timedelta(days=7 * week)
                self.arrivals.setdefault(name, (arrives, category))

    def category_of(self, merchant: str) -> int:
        return MERCHANTS[merchant] if merchant in MERCHANTS else self.arrivals[merchant][1]

    def new_merchants(self, day: dt.date) -> list[str]:
        """The new merchants that have arrived by ``day``, oldest first."""
        return [name for name, (arrives, _) in self.arrivals.items() if arrives <= day]

    def merchant(self, rng: random.Random, day: dt.date) -> str:
        """A merchant for one of ``day``'s expenses: a new one with probability ``new_share``."""
        roll, pick = rng.random(), rng.random()
        arrived = self.new_merchants(day)
        pool = arrived if arrived and roll < self.new_share else list(MERCHANTS)
        return pool[int(pick * len(pool))]

    @staticmethod
    def vertical_of(workspace_id: str) -> str:
        digest = int(uuid.UUID(workspace_id).hex[:8], 16)
        return VERTICALS[digest % len(VERTICALS)]

    def policy_category(self, category: int, workspace_id: str, day: dt.date) -> int:
        """``category`` as the workspace files it on ``day``, after any policy change."""
        policy = self.policy
        if (
            policy is not None
            and day >= policy.first_day
            and category == policy.category
            and self.vertical_of(workspace_id) == policy.vertical
        ):
            return policy.files_as
        return category


def apply_schema(source: Database) -> None:
    """Create the source tables if they do not exist (``sql/source/schema.sql``)."""
    schema = read_sql("source/schema.sql")
    source.transaction(
        lambda conn: conn.execute(schema), what="creating the source tables", idempotent=True
    )


def seed(
    settings: Settings,
    *,
    rows: int,
    seed: int = 0,
    end_date: dt.date,
    days: int = 365,
    replace: bool = False,
    planted: Planted | None = None,
) -> SeedReport:
    """Fill the source database with ``rows`` synthetic expenses, traces and events.

    Events fall in the ``days`` days ending on ``end_date`` (UTC). Writes by COPY in one
    transaction. Raises ``DataError`` if the tables already hold rows and ``replace`` is false
    (``replace`` empties them first), ``DatabaseUnavailable`` if the source cannot be reached.
    Pass ``planted`` to learn where the generator put each PII value.
    """

    if rows < 1 or days < 1:
        raise DataError(f"--rows ({rows}) and --days ({days}) must be positive")
    source = database(settings, "source")
    apply_schema(source)

    def fill(conn: psycopg.Connection) -> tuple[int, int, int]:
        existing = conn.execute("SELECT count(*) FROM workflow_event").fetchone()[0]
        if existing and not replace:
            raise DataError(
                f"the source database {source.display_url} already holds {existing} events; "
                "pass --replace to empty it first"
            )
        conn.execute("TRUNCATE " + ", ".join(SOURCE_TABLES))
        overrides = 0
        for chunk in generate(rows, seed, end_date, days=days, planted=planted):
            write_rows(conn, chunk)
            overrides += sum(1 for row in chunk.workflow_event if row[4])
        conn.execute("ANALYZE " + ", ".join(SOURCE_TABLES))
        users, workspaces = conn.execute(
            "SELECT count(DISTINCT user_id), count(DISTINCT workspace_id) FROM expense"
        ).fetchone()
        return overrides, users, workspaces

    # One transaction: a connection lost before its COMMIT left nothing and is tried again.
    overrides, users, workspaces = source.transaction(fill, what="seeding the source database")
    return SeedReport(
        rows=rows,
        users=users,
        workspaces=workspaces,
        overrides=overrides,
        first_day=end_date - dt.timedelta(days=days - 1),
        last_day=end_date,
    )


_COLUMNS = {
    "expense": (
        "expense_id, workspace_id, user_id, description, merchant, notes, category_id, amount, "
        "currency, created_at"
    ),
    "agent_trace": "trace_id, workspace_id, expense_id, trace, created_at",
    "workflow_event": (
        "event_id, workspace_id, trace_id, event_type, override_flag, corrected_output, created_at"
    ),
}
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def write_rows(conn: psycopg.Connection, rows: Rows) -> None:
    """Write ``rows`` to the three source tables in ``conn``'s transaction."""
    _copy(conn, "expense", rows.expense)
    _copy(conn, "agent_trace", rows.agent_trace)
    _copy(conn, "workflow_event", rows.workflow_event)


def _copy(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:
    """COPY rows in PostgreSQL's text format, built in Python: far faster than write_row."""

    def text(value: object) -> str:
        if value is None:
            return "\\N"
        if isinstance(value, bool):
            return "t" if value else "f"
        return str(value).translate(_ESCAPES)

    payload = "".join("\t".join(map(text, row)) + "\n" for row in rows)
    with conn.cursor().copy(f"COPY {table} ({_COLUMNS[table]}) FROM STDIN") as copy:
        copy.write(payload.encode())
