"""Regression benchmarks (spec section 6.3): lm-evaluation-harness tasks shipped as local files.

Format: ``benchmarks/<task>.json`` is an lm-eval task config - the same keys as lm-eval's YAML
task files (``task``, ``dataset_path: json``, ``doc_to_text``, ``doc_to_choice``,
``metric_list``, ...), written as JSON because the spec names ``benchmarks/*.json``. Two
additions, both inside lm-eval's own ``metadata`` block: ``critical`` (bool, required) and a
``description``. ``dataset_kwargs.data_files`` paths are relative to the task file (the data
ships in ``benchmarks/data/*.jsonl``) and are made absolute before lm-eval sees them, so
nothing is looked up on the hub.

lm-eval's ``TaskManager(include_path=...)`` only indexes ``*.yaml`` files, so the configs are
handed to ``TaskManager(include_defaults=False).load([...])`` as dicts instead - the same path
lm-eval takes for an inline config, without indexing its thousands of built-in tasks. The model
is the PEFT model object itself, wrapped in ``HFLM(pretrained=model, tokenizer=...)`` (HFLM's
``peft=`` argument wants a hub-style path), with the adapter switched in by the caller.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pria_ml.errors import ConfigError

log = logging.getLogger(__name__)

REQUIRED_KEYS = ("task", "dataset_path", "output_type", "metric_list")


@dataclass(frozen=True)
class BenchmarkTask:
    """One task file: its lm-eval config (data paths made absolute) and whether it is critical."""

    name: str
    path: Path
    config: dict[str, Any]
    critical: bool
    metric: str


@cache
def default_dir() -> Path:
    """``benchmarks/`` of the checkout, or the copy a wheel ships as ``pria_ml.benchmarks``."""
    import importlib.resources

    checkout = Path(__file__).resolve().parent.parent / "benchmarks"
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files("pria_ml.benchmarks")))


def known_metrics() -> frozenset[str]:
    """The metric names lm-eval has registered (acc, acc_norm, exact_match, ...)."""
    import lm_eval.api.metrics  # noqa: F401 - registers the built-in metrics
    from lm_eval.api.registry import metric_registry

    return frozenset(metric_registry)


def load_tasks(directory: Path) -> list[BenchmarkTask]:
    """Every ``*.json`` task file of ``directory``, validated; ConfigError naming the file."""
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ConfigError(
            f"no benchmark task files (*.json) in {directory}: set PRIA_BENCHMARKS_DIR to the "
            "directory holding them"
        )
    metrics = known_metrics()
    tasks = [_load_task(path, metrics) for path in files]
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"benchmark task names {duplicates} appear twice in {directory}")
    return tasks


def _load_task(path: Path, metrics: frozenset[str]) -> BenchmarkTask:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"benchmark file {path} is not valid JSON ({exc}); fix it") from None
    if not isinstance(config, dict):
        raise ConfigError(f"benchmark file {path} must hold one JSON object (an lm-eval task)")
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ConfigError(f"benchmark file {path} lacks the lm-eval key(s) {missing}")
    critical = (config.get("metadata") or {}).get("critical")
    if not isinstance(critical, bool):
        raise ConfigError(
            f"benchmark file {path} needs metadata.critical true or false (got {critical!r})"
        )
    entries = config["metric_list"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"benchmark file {path}: metric_list must be a non-empty list")
    for entry in entries:
        name = entry.get("metric") if isinstance(entry, Mapping) else None
        if name not in metrics:
            raise ConfigError(
                f"benchmark file {path} names unknown metric {name!r}; lm-eval knows "
                f"{', '.join(sorted(metrics))}"
            )
    config = copy.deepcopy(config)
    data_files = (config.get("dataset_kwargs") or {}).get("data_files")
    if isinstance(data_files, Mapping):
        resolved = {}
        for split, relative in data_files.items():
            file = (path.parent / relative).resolve()
            if not file.is_file():
                raise ConfigError(f"benchmark file {path}: data file {file} does not exist")
            resolved[split] = str(file)
        config["dataset_kwargs"]["data_files"] = resolved
    return BenchmarkTask(
        name=str(config["task"]),
        path=path,
        config=config,
        critical=critical,
        metric=entries[0]["metric"],
    )


@contextmanager
def _quiet_lm_eval() -> Iterator[None]:
    """lm-eval and datasets log progress and warnings at INFO/WARNING; keep them out."""
    import warnings

    names = ("lm_eval", "lm-eval", "datasets", "evaluate")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run(
    model: Any,
    tokenizer: Any,
    tasks: list[BenchmarkTask],
    *,
    batch_size: int = 16,
    limit: int | None = None,
) -> dict[str, float]:
    """Score ``model`` (as it is now: adapter set by the caller) on ``tasks``; ``{task: score}``.

    Offline: the data files are local and nothing is fetched. Scores are the first metric of
    each task in [0, 1]. ``limit`` caps the documents per task.
    """
    with _quiet_lm_eval():
        from lm_eval import simple_evaluate
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        manager = TaskManager(include_defaults=False)
        results = simple_evaluate(
            model=lm,
            tasks=[copy.deepcopy(t.config) for t in tasks],
            task_manager=manager,
            limit=limit,
            bootstrap_iters=0,
            log_samples=False,
            apply_chat_template=True,
            verbosity=None,
        )
    scores = {}
    for task in tasks:
        row = results["results"][task.name]
        scores[task.name] = float(row[f"{task.metric},none"])
    return scores
