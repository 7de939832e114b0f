"""``pria-ml simulate``: production traffic for simulated days, served by the model in prod.

For each simulated day:

1. New expenses and conversations arrive, drawn by the seeder's generator (``seed.draw_case``:
   the same merchants, descriptions and PII as ``pria-ml seed``).
2. The serving model - the base plus the adapter that is ``prod`` in the registry that day, or
   the bare base when nothing is - is loaded through ``loading.load_for_inference`` (the code
   evaluation uses) and proposes each action with batched greedy generation
   (``generation.generate``).
3. A simulated reviewer checks each proposal against the correct action. A wrong one is
   overridden with the correct action; a right one is accepted. With probability
   ``reviewer_noise`` (default 2 %) the reviewer errs instead: accepts a wrong action, or
   overrides a right one with another category. During a *labelling incident* (``Incident``)
   the review tool's category list is shifted by one: a share of reviews stores the category
   next to the one the reviewer picked, consistently, so a model can learn the wrong mapping.
4. The rows are written to the source tables exactly as the product writes them (expense,
   agent_trace ending in the served action, workflow_event with override_flag and
   corrected_output), one transaction per day.

So the override rate in ``workflow_event`` - the spec's headline metric - reflects whichever
adapter was in prod that day.

A counterfactual (``others``): the same day's conversations can also be answered by other
models - the demo asks for its frozen first prod adapter and the bare base - and reviewed by
the same simulated reviewer with the same random draws, so the rates are paired with the served
model's. Their answers are counted (``Day.others``) and never written to the source tables.

Everything is drawn from random generators seeded by ``seed`` and the day: the same seed, days
and prod adapters give the same rows.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pria_ml import registry
from pria_ml.db import database
from pria_ml.errors import DataError
from pria_ml.model import generation, loading
from pria_ml.world import seed as seeder

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pria_ml.settings import Settings

REVIEWER_NOISE = 0.02
MAX_NEW_TOKENS = 32  # the longest action (a long merchant name) is about 20 tiny-model tokens


@dataclass(frozen=True)
class Incident:
    """A labelling incident: on these days, ``rate`` of reviews store the category next to the
    right one (``shifted``), as a review tool whose category list is off by one would."""

    first_day: dt.date
    last_day: dt.date
    rate: float = 0.6

    def covers(self, day: dt.date) -> bool:
        return self.first_day <= day <= self.last_day


@dataclass(frozen=True)
class Day:
    """One simulated day of traffic as written to the source tables."""

    day: dt.date
    rows: int
    overrides: int
    agent_errors: int  # proposals that were not the correct action
    adapter_id: uuid.UUID | None  # the adapter in prod that day; None = bare base
    incident: bool
    # counterfactual answers on the same conversations: name -> overrides of its ``rows``
    others: dict[str, int] = field(default_factory=dict)

    @property
    def override_rate(self) -> float:
        return self.overrides / self.rows


def _day_rng(seed: int, day: dt.date) -> random.Random:
    return random.Random(f"pria-simulate/{seed}/{day.isoformat()}")


class Simulator:
    """Serves simulated days; keeps the loaded model while the prod adapter stays the same."""

    def __init__(
        self,
        settings: Settings,
        *,
        rows_per_day: int,
        seed: int = 0,
        reviewer_noise: float = REVIEWER_NOISE,
        batch_size: int = 16,
        world: seeder.World | None = None,
    ) -> None:
        if rows_per_day < 1:
            raise DataError(f"--rows-per-day ({rows_per_day}) must be positive")
        if not 0 <= reviewer_noise < 1:
            raise DataError(f"reviewer noise {reviewer_noise} must be in [0, 1)")
        self.settings = settings
        self.rows_per_day = rows_per_day
        self.seed = seed
        self.reviewer_noise = reviewer_noise
        self.batch_size = batch_size
        self.world = world  # None: the seeded world, which never changes
        self.population = seeder.Population(random.Random(seed), rows_per_day * 7)
        self._loaded = None
        self._loaded_key: object = ()
        self._others: dict[uuid.UUID | None, object] = {}

    def _serving(self):
        """The model in prod now, loaded once per change of prod."""

        prod = registry.current_prod(database(self.settings))
        key = prod.adapter_id if prod else None
        if self._loaded is None or self._loaded_key != key:
            self._loaded = None  # release the old weights before loading the new ones
            self._loaded = loading.load_for_inference(self.settings, key)
            self._loaded_key = key
        return self._loaded

    def _other(self, adapter_id: uuid.UUID | None):
        """A counterfactual model (``None``: the bare base), loaded once and kept."""
        if adapter_id not in self._others:
            self._others[adapter_id] = loading.load_for_inference(self.settings, adapter_id)
        return self._others[adapter_id]

    def day(
        self,
        day: dt.date,
        *,
        incident: Incident | None = None,
        others: dict[str, uuid.UUID | None] | None = None,
        progress=None,
    ) -> Day:
        """Simulate ``day``: draw, serve, review and write its traffic; return its figures.

        ``others``: name -> adapter (None: the bare base) that also answers the day's
        conversations, reviewed the same way and counted in ``Day.others``, never written.
        """

        rng = _day_rng(self.seed, day)
        start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        cases = []
        for _ in range(self.rows_per_day):
            user = rng.choice(self.population.users)
            at = start + dt.timedelta(seconds=rng.randrange(86400 - 60))
            if self.world is None:
                merchant = rng.choice(self.population.merchants)
            else:
                merchant = self.world.merchant(rng, day)
            cases.append(seeder.draw_case(rng, user, merchant, at, world=self.world))
        cases.sort(key=lambda case: case.at)

        loaded = self._serving()
        proposals = generation.generate(
            loaded.model,
            loaded.tokenizer,
            [case.prompt for case in cases],
            max_new_tokens=MAX_NEW_TOKENS,
            batch_size=self.batch_size,
        )
        corrupted = incident is not None and incident.covers(day)
        reviewer = rng.getstate()  # every model's answers meet the same reviewer draws
        rows = seeder.Rows()
        overrides = errors = 0
        for case, proposal in zip(cases, proposals, strict=True):
            proposal = proposal.strip()
            correction = review(
                rng,
                case,
                proposal,
                noise=self.reviewer_noise,
                incident=incident if corrupted else None,
            )
            case.add_rows(rows, proposal, correction)
            errors += proposal != case.correct_action
            overrides += correction != proposal
        served = loaded.adapter.adapter_id if loaded.adapter else None
        counted = {}
        for name, adapter_id in (others or {}).items():
            if adapter_id == served:  # it served the day itself: its figures are the day's
                counted[name] = overrides
                continue
            other = self._other(adapter_id)
            answers = generation.generate(
                other.model,
                other.tokenizer,
                [case.prompt for case in cases],
                max_new_tokens=MAX_NEW_TOKENS,
                batch_size=self.batch_size,
            )
            replay = random.Random()
            replay.setstate(reviewer)
            counted[name] = sum(
                review(
                    replay,
                    case,
                    answer.strip(),
                    noise=self.reviewer_noise,
                    incident=incident if corrupted else None,
                )
                != answer.strip()
                for case, answer in zip(cases, answers, strict=True)
            )
        source = database(self.settings, "source")
        seeder.apply_schema(source)
        with source.connect() as conn:
            seeder.write_rows(conn, rows)
        return Day(
            day=day,
            rows=len(cases),
            overrides=overrides,
            agent_errors=errors,
            adapter_id=served,
            incident=corrupted,
            others=counted,
        )


def review(
    rng: random.Random,
    case: seeder.Case,
    proposal: str,
    *,
    noise: float = REVIEWER_NOISE,
    incident: Incident | None = None,
) -> str:
    """What the simulated reviewer leaves as the action: ``proposal`` when accepted, else the
    correction. A careful review corrects a wrong answer and accepts a right one; with
    probability ``noise`` the reviewer errs instead (accepts a wrong answer, or "corrects" a
    right one to another category); during an ``incident`` a share ``incident.rate`` of reviews
    stores the ``shifted`` category. Always draws the same random numbers, so one review does
    not shift the next one's."""
    noise_roll, incident_roll = rng.random(), rng.random()
    wrong = seeder.action(
        rng.choice([c for c in seeder.CATEGORIES if c != case.category]), case.merchant
    )
    if incident is not None and incident_roll < incident.rate:
        return seeder.action(shifted(case.category), case.merchant)
    correct = case.correct_action
    if noise_roll < noise:
        return wrong if proposal == correct else proposal
    return correct


def shifted(category_id: int) -> int:
    """The category after ``category_id`` in the list (the last wraps to the first)."""
    ids = sorted(seeder.CATEGORIES)
    return ids[(ids.index(category_id) + 1) % len(ids)]


def run(
    settings: Settings,
    *,
    first_day: dt.date,
    days: int,
    rows_per_day: int,
    seed: int = 0,
    reviewer_noise: float = REVIEWER_NOISE,
    incident: Incident | None = None,
    progress: Callable[[Day], None] | None = None,
) -> list[Day]:
    """Simulate ``days`` days from ``first_day`` with whatever adapter is prod (``pria-ml
    simulate``); ``progress`` is called after each day."""
    if days < 1:
        raise DataError(f"--days ({days}) must be positive")
    simulator = Simulator(
        settings, rows_per_day=rows_per_day, seed=seed, reviewer_noise=reviewer_noise
    )
    results = []
    for offset in range(days):
        result = simulator.day(first_day + dt.timedelta(days=offset), incident=incident)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def render(days: list[Day]) -> RenderableType:
    """``pria-ml simulate``: conversations, days and the share overridden."""
    from rich.text import Text

    events = sum(day.rows for day in days)
    overrides = sum(day.overrides for day in days)
    return Text.from_markup(
        f"[green]simulated[/] {events} conversations over {len(days)} days, "
        f"{overrides} overridden ({overrides / events:.1%})"
    )
