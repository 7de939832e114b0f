"""Progress on long work: a rich bar on a terminal, a plain line now and then otherwise.

``with bar(console, "pre-training", total=120) as advance: advance(step, "loss 1.23")``. In a
log (CI, cron, a pipe) a bar's redraws would be noise, so there the same calls print one line
per ``every`` seconds and one at the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape


@contextmanager
def bar(
    console: Console, description: str, total: int, *, every: float = 10.0
) -> Iterator[Callable[[int, str], None]]:
    """Yield ``advance(completed, info)``; ``completed`` counts up to ``total``."""
    if console.is_terminal:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            transient=False,
        ) as progress:
            task = progress.add_task(escape(description), total=total, info="")
            yield lambda completed, info="": progress.update(
                task, completed=completed, info=escape(info)
            )
        return

    started = last = time.monotonic()

    def advance(completed: int, info: str = "") -> None:
        nonlocal last
        now = time.monotonic()
        if completed >= total or now - last >= every:
            last = now
            console.print(
                f"{escape(description)}: {completed}/{total} "
                f"({now - started:.0f} s) {escape(info)}".rstrip(),
                highlight=False,
            )

    yield advance
