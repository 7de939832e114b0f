"""The drifting world: merchants never seen before arrive every week with a learnable rule (the
cue word of the name decides the category), a tenant vertical changes its filing policy on a
given day, and the vertical reaches the prompt only when asked. Pure: no model, no database."""

from __future__ import annotations

import datetime as dt
import json
import random

from pria_ml.world import seed

FIRST = dt.date(2026, 1, 5)


def _user(workspace_vertical: str) -> seed.User:
    rng = random.Random(0)
    while True:  # a workspace of the vertical asked for
        workspace = seed._uuid(rng)
        if seed.World.vertical_of(workspace) == workspace_vertical:
            return seed._user(rng, workspace, 0)


def test_new_merchants_arrive_every_week_and_follow_their_cue_words() -> None:
    world = seed.World(1, FIRST, new_per_week=3)
    assert world.new_merchants(FIRST - dt.timedelta(days=1)) == []
    for week in range(4):
        arrived = world.new_merchants(FIRST + dt.timedelta(days=7 * week + 6))
        assert len(arrived) == 3 * (week + 1)
    cue_category = {cue: c for c, cues in seed.NEW_MERCHANT_CUES.items() for cue in cues}
    for name in world.new_merchants(FIRST + dt.timedelta(weeks=4)):
        assert name not in seed.MERCHANTS
        (cue,) = [cue for cue in cue_category if name.endswith(" " + cue)]
        assert world.category_of(name) == cue_category[cue]  # the learnable rule


def test_new_merchants_take_a_steady_share_of_the_traffic() -> None:
    world = seed.World(1, FIRST, new_share=0.35)
    rng = random.Random(7)
    day = FIRST + dt.timedelta(days=20)
    draws = [world.merchant(rng, day) for _ in range(4000)]
    share = sum(m not in seed.MERCHANTS for m in draws) / len(draws)
    assert abs(share - 0.35) < 0.03
    assert {m for m in draws if m not in seed.MERCHANTS} == set(world.new_merchants(day))


def test_a_vertical_changes_its_policy_from_a_given_day_and_no_other_does() -> None:
    change = FIRST + dt.timedelta(days=14)
    world = seed.World(1, FIRST, policy=seed.PolicyChange("consulting", change))
    consulting, retail = _user("consulting"), _user("retail")

    def filed(user: seed.User, day: dt.date) -> set[int]:
        rng = random.Random(3)
        at = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        return {seed.draw_case(rng, user, "Wagamama", at, world=world).category for _ in range(40)}

    assert filed(consulting, change - dt.timedelta(days=1)) == {4, 5}  # meals; client meals
    assert filed(consulting, change) == {5}  # from the change on, all client entertainment
    assert filed(retail, change) == {4, 5}


def test_the_vertical_reaches_the_prompt_only_when_asked() -> None:
    at = dt.datetime.combine(FIRST, dt.time(12), tzinfo=dt.UTC)
    user = _user("logistics")
    for shown in (False, True):
        world = seed.World(1, FIRST, vertical_in_prompt=shown)
        case = seed.draw_case(random.Random(2), user, "Figma", at, world=world)
        tool = json.loads(case.prompt[2]["content"])
        assert ("workspace_vertical" in tool) is shown
        if shown:
            assert tool["workspace_vertical"] == "logistics"
