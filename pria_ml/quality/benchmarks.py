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

    checkout = Path(__file__).resolve().parents[2] / "benchmarks"
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
    """lm-eval and datasets log at INFO/WARNING and draw tqdm bars on stderr; keep them out."""
    import io
    import warnings
    from contextlib import redirect_stderr

    names = ("lm_eval", "lm-eval", "datasets", "evaluate")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    # simple_evaluate records the environment in its results, which we do not keep: it runs
    # `git describe` (whose "fatal: not a git repository" reaches the terminal from a child
    # process wherever there is no .git, as in the Docker image) and torch's collect_env
    # (about 1 s of subprocesses per call, twice a night). Both are skipped while we call it.
    import lm_eval.evaluator as evaluator

    skipped = {"get_git_commit_hash": lambda: None, "add_env_info": lambda storage: None}
    originals = {name: getattr(evaluator, name) for name in skipped}
    try:
        for name, replacement in skipped.items():
            setattr(evaluator, name, replacement)
        with warnings.catch_warnings(), redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, original in originals.items():
            setattr(evaluator, name, original)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def run(
    model: Any,
    tokenizer: Any,
    tasks: list[BenchmarkTask],
    *,
    batch_size: int = 16,
    limit: int | None = None,
) -> dict[str, list[float]]:
    """Score ``model`` (as it is now: adapter set by the caller) on ``tasks``.

    Returns ``{task: [score of each document, in document order]}``, each in [0, 1] (the
    task's first metric): per document, so that two models' scores can be compared pair by
    pair (``evaluate``). Offline: the data files are local and nothing is fetched. ``limit``
    caps the documents per task.
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
            log_samples=True,
            apply_chat_template=True,
            verbosity=None,
        )
    scores = {}
    for task in tasks:
        samples = sorted(results["samples"][task.name], key=lambda sample: sample["doc_id"])
        scores[task.name] = [float(sample[task.metric]) for sample in samples]
    return scores


def mean(scores: list[float]) -> float:
    """A task's score: the mean over its documents (NaN when it has none)."""
    return sum(scores) / len(scores) if scores else float("nan")
