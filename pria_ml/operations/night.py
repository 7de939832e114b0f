"""The report of one night: what each stage did, the gate's decision, how the run ended.

``nightly`` fills it; monitoring, notify and the demo read it. It lives apart from the chain
so its readers do not import the chain (and through it every stage).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pria_ml.errors import GateBlocked, PriaError

if TYPE_CHECKING:
    from pria_ml.quality.record import GateRecord
    from pria_ml.registry import Adapter

STAGES = ("extract", "build-features", "train", "eval", "gate", "promote", "archive", "retention")

# The two halves of a night as CI runs them (extract_dataset.yml on a runner, train_adapters.yml
# on a GPU machine): each reports its own success, so one half succeeding never hides the
# other failing (monitoring's `part` label, the Pushgateway's grouping key).
PARTS: dict[str, tuple[str, ...]] = {
    "extract": ("extract", "build-features"),
    "train": ("train", "eval", "gate", "promote", "archive", "retention"),
}

# Stage statuses, as the end table shows them.
DONE, SKIPPED, FAILED, BLOCKED, NOT_RUN = "done", "skipped", "failed", "blocked", "not run"


@dataclass
class StageReport:
    """What one stage did this run."""

    stage: str
    status: str = NOT_RUN
    seconds: float = 0.0
    cost_usd: float | None = None
    detail: str = ""
    error: BaseException | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GateOutcome:
    """The gate's recorded decision on the night's candidate: its stored record, as the
    registry holds it, with the one-line reason."""

    adapter_id: uuid.UUID
    reason: str
    record: GateRecord

    @property
    def passed(self) -> bool:
        return self.record.passed

    @property
    def failed(self) -> list[str]:
        return self.record.failed

    @property
    def inputs(self) -> dict[str, Any]:
        return self.record.inputs


@dataclass
class NightlyReport:
    """One run of the night: every stage's report, the gate decision and the error, if any."""

    date: dt.date
    stages: list[StageReport]
    started_at: dt.datetime
    finished_at: dt.datetime | None = None
    gate: GateOutcome | None = None
    adapter: Adapter | None = None
    error: BaseException | None = None
    seconds: float = 0.0  # how long the run took (a simulated night's stamps stand still)

    @property
    def failed_stage(self) -> str | None:
        return next((s.stage for s in self.stages if s.status == FAILED), None)

    @property
    def blocked(self) -> bool:
        return self.gate is not None and not self.gate.passed

    @property
    def succeeded(self) -> bool:
        """Every selected stage finished (done or already complete) and the gate did not block."""
        return self.error is None and not self.blocked

    @property
    def exit_code(self) -> int:
        if isinstance(self.error, PriaError):
            return self.error.exit_code
        if self.error is not None:
            return 1
        return GateBlocked.exit_code if self.blocked else 0

    def stage(self, name: str) -> StageReport:
        return next(s for s in self.stages if s.stage == name)

    def parts_run(self) -> list[str]:
        """The parts (PARTS) with at least one stage this run ran or skipped as complete."""
        return [
            part
            for part, stages in PARTS.items()
            if any(self.stage(name).status != NOT_RUN for name in stages)
        ]

    def part_succeeded(self, part: str) -> bool:
        """Every stage of ``part`` this run reached finished (done or complete), none failed,
        and, for the train part, the gate did not block."""
        statuses = [self.stage(name).status for name in PARTS[part]]
        if FAILED in statuses or all(status == NOT_RUN for status in statuses):
            return False
        return not (part == "train" and self.blocked)
