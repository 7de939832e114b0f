"""Evaluation: candidate vs baseline on the same prompts, recorded as one typed record.

``run(settings, date)`` reads top to bottom as the stage does it:

1. Find the candidate of D (or the ``adapter_id`` asked for) and the baseline: the current prod
   adapter, or the bare base model when nothing is prod yet. Read the val and test splits, the
   benchmark task files and the safety classifier - every input is checked before a weight is
   loaded, and a bad one raises with nothing recorded.
2. Load one 4-bit base with both adapters (``loading.load_for_comparison``; each adapter's
   sha256 is checked against its registry row).
3. Greedy, batched generation of every val and test prompt by both models (same prompts, same
   decoding); score each sample: exact match of the normalised action, ROUGE-L F, whether a
   human would override it, reward, safety scores.
4. Paired, interleaved latency: per-prompt generation time of both models after warm-up.
5. lm-eval regression benchmarks on both.
6. Write ``evals/D/<adapter_id>/samples.parquet`` and ``report.json`` (the evaluation record,
   last; it lists the files with their sha256), then store the record in the candidate's
   registry row in one transaction.

Evaluation measures and never decides: the gate stage (``pria_ml/gate.py``) judges the record.

The test split is reported but never judged: it stays held out. docs/evaluation.md explains
each metric, the intervals and the measured noise.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import registry
from pria_ml.data.contract import load_split
from pria_ml.data.storage import open_storage, sha256_file
from pria_ml.db import database
from pria_ml.errors import RegistryError, StorageError
from pria_ml.model.chat import render_prompt
from pria_ml.model.generation import generate
from pria_ml.model.loading import load_for_comparison
from pria_ml.quality import benchmarks, metrics, precision, record, safety
from pria_ml.quality.record import (
    BARE_BASE,
    PROD_ADAPTER,
    EvalRecord,
    Interval,
    SplitResult,
    StoredFile,
    eval_key,
    read_report,
)
from pria_ml.quality.safety import flagged, redact

if TYPE_CHECKING:
    from pria_ml.data.storage import Storage
    from pria_ml.model.loading import Comparison
    from pria_ml.registry import Adapter
    from pria_ml.settings import Settings

log = logging.getLogger(__name__)

MODELS = ("candidate", "baseline")
SPLITS = ("val", "test")
# Generation may run to twice the longest reference action plus this margin (tokens): enough
# to see an output that runs on past the action - and what it leaks there - without paying
# for a model that never stops.
NEW_TOKENS_MARGIN = 16
LATENCY_WARMUP_PROMPTS = 2


@dataclass
class EvalResult:
    """What one evaluation produced: the record and where its files were written."""

    record: EvalRecord
    report_uri: str
    samples_uri: str

    @property
    def adapter_id(self) -> uuid.UUID:
        return self.record.adapter_id


# Inputs -------------------------------------------------------------------------------------
def find_candidate(db: Any, date: datetime.date, adapter_id: uuid.UUID | str | None) -> Adapter:
    """The adapter to judge: ``adapter_id``, or the newest candidate trained on D's dataset."""

    if adapter_id is not None:
        adapter = registry.get_adapter(db, adapter_id)
    else:
        of_date = registry.adapters_of_date(db, date)
        candidates = [a for a in of_date if a.status == "candidate" and a.superseded_at is None]
        if not candidates:
            raise RegistryError(
                f"no candidate adapter for {date} in model_registry "
                f"({len(of_date)} adapters of that date, none a fresh candidate): run "
                f"`pria-ml train --date {date}` first, or pass --adapter ID"
            )
        adapter = candidates[0]
    if adapter.status != "candidate":
        raise RegistryError(
            f"adapter {adapter.adapter_id} is {adapter.state}, not a candidate; only candidates "
            "are evaluated for promotion"
        )
    return adapter


def load_samples(
    storage: Storage, date: datetime.date, split: str, limit: int | None
) -> list[dict[str, Any]]:
    """The ``(prompt, completion)`` rows of a split, at most ``limit`` (the first ones)."""

    rows = load_split(storage, date, split)
    return rows if limit is None else rows[:limit]


def prompt_hash(prompt: Sequence[dict[str, str]]) -> str:
    """A stable id of a prompt (sha256 of its messages as JSON), for joining and review."""
    text = json.dumps(list(prompt), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def longest_tokens(tokenizer: Any, references: Sequence[str]) -> int:
    """The longest approved action, in tokens: what one real answer costs to generate."""
    return max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in references)


def max_new_tokens(tokenizer: Any, references: Sequence[str]) -> int:
    """Twice the longest approved action in tokens plus a margin: room to see a run-on output."""
    return 2 * longest_tokens(tokenizer, references) + NEW_TOKENS_MARGIN


# Scoring ------------------------------------------------------------------------------------
def score_outputs(
    outputs: Sequence[str], references: Sequence[str], safety_scores: Sequence[dict[str, float]]
) -> dict[str, list]:
    """Per-sample scores of one model's outputs: exact, rouge_l, override, reward, flagged."""

    exact = [metrics.exact_match(o, r) for o, r in zip(outputs, references, strict=True)]
    override = [metrics.would_override(o, r) for o, r in zip(outputs, references, strict=True)]
    return {
        "exact": exact,
        "rouge_l": [metrics.rouge_l(o, r) for o, r in zip(outputs, references, strict=True)],
        "override": override,
        "reward": [0.0 if o else 1.0 for o in override],
        "flagged": [flagged(s) for s in safety_scores],
    }


def summarise(scores: dict[str, list]) -> dict[str, float | int]:
    """One model's split metrics from its per-sample scores (rates in 0..1, pct in %)."""
    n = len(scores["exact"])
    flags = sum(scores["flagged"])
    return {
        "samples": n,
        "accuracy": sum(scores["exact"]) / n,
        "rouge_l": statistics.fmean(scores["rouge_l"]),
        "override_rate": sum(scores["override"]) / n,
        "mean_reward": statistics.fmean(scores["reward"]),
        "safety_flags": flags,
        "safety_flag_pct": 100 * flags / n,
    }


def deltas(
    candidate: dict[str, list], baseline: dict[str, list], *, seed: int
) -> dict[str, dict[str, float]]:
    """Candidate minus baseline per metric, in percentage points, with paired 95% intervals."""
    pairs = {
        "accuracy_delta": "exact",
        "override_delta": "override",
        "mean_reward_delta": "reward",
        "rouge_l_delta": "rouge_l",
    }
    return {
        name: metrics.percentage_points(
            metrics.paired_bootstrap(candidate[key], baseline[key], seed=seed)
        ).as_dict()
        for name, key in pairs.items()
    }


# Latency ------------------------------------------------------------------------------------
def time_latency(
    comparison: Comparison,
    prompts: Sequence[Sequence[dict[str, str]]],
    *,
    new_tokens: int,
    repeats: int,
) -> dict[str, Any]:
    """Per-prompt generation times of candidate and baseline: ``{model: prompts x repeats}``.

    Each prompt is generated alone (a request) for exactly ``new_tokens`` tokens, so a
    difference in output length cannot pass for a difference in speed. Both models run on the
    same prompt back to back, in alternating order, ``repeats`` times, after a warm-up.
    """
    import numpy as np
    import torch

    tokenizer = comparison.tokenizer
    encoded = [
        tokenizer(render_prompt(tokenizer, p), add_special_tokens=False, return_tensors="pt")
        for p in prompts
    ]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def once(name: str, inputs: Any) -> float:
        with comparison.use(name) as model, torch.inference_mode():
            start = time.perf_counter()
            model.generate(
                **inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_id,
            )
            return time.perf_counter() - start

    for inputs in encoded[:LATENCY_WARMUP_PROMPTS]:
        for name in MODELS:
            once(name, inputs)
    times = {name: np.zeros((len(encoded), repeats)) for name in MODELS}
    for r in range(repeats):
        for i, inputs in enumerate(encoded):
            order = MODELS if (i + r) % 2 == 0 else MODELS[::-1]
            for name in order:
                times[name][i, r] = once(name, inputs)
    return times


def summarise_latency(times: dict[str, Any], *, new_tokens: int, seed: int = 0) -> dict[str, Any]:
    """``latency_delta`` = p95(candidate) / p95(baseline) - 1 of the per-prompt median over
    repeats, with a paired bootstrap interval over prompts (``quality.precision`` sizes it)."""
    import numpy as np

    per_prompt = {name: precision.per_prompt(t) for name, t in times.items()}
    delta = metrics.paired_bootstrap(
        per_prompt["candidate"],
        per_prompt["baseline"],
        metrics.p95_ratio_minus_one,
        seed=seed,
    )
    prompts, repeats = times["candidate"].shape
    return {
        "prompts": prompts,
        "repeats": repeats,
        "new_tokens": new_tokens,
        "candidate_p95_s": float(np.percentile(per_prompt["candidate"], 95)),
        "baseline_p95_s": float(np.percentile(per_prompt["baseline"], 95)),
        "latency_delta": delta.as_dict(),
    }


def measure_latency(
    comparison: Comparison,
    prompts: Sequence[Sequence[dict[str, str]]],
    *,
    new_tokens: int,
    repeats: int,
    seed: int = 0,
) -> dict[str, Any]:
    """p95 per-prompt generation latency of candidate and baseline, paired and interleaved
    (``time_latency``, then ``summarise_latency``)."""
    times = time_latency(comparison, prompts, new_tokens=new_tokens, repeats=repeats)
    return summarise_latency(times, new_tokens=new_tokens, seed=seed)


# The stage ----------------------------------------------------------------------------------
def run(
    settings: Settings,
    date: datetime.date,
    adapter_id: uuid.UUID | str | None = None,
    *,
    now: datetime.datetime | None = None,
) -> EvalResult:
    """Evaluate the candidate of ``date`` (or ``adapter_id``) against prod; record what it measured.

    Reads the registry, ``datasets/D/features/{val,test}.parquet``, the benchmark files and the
    adapters; writes ``evals/D/<adapter_id>/samples.parquet`` and ``report.json`` (the
    ``EvalRecord``) and stores the record in ``model_registry`` (clearing a gate decision taken
    on an earlier record). Deciding is the gate's: ``pria-ml gate --date D``.

    Raises RegistryError (no candidate, not a candidate), DataError (missing or empty split),
    ConfigError (bad benchmark file, safety classifier or base model), ArtifactMismatch
    (adapter weights differ from the registered sha256); in each case nothing is recorded.
    """

    started = time.perf_counter()
    db = database(settings)
    storage = open_storage(settings)
    candidate = find_candidate(db, date, adapter_id)
    prod = registry.current_prod(db)
    splits = {
        split: load_samples(storage, date, split, settings.eval_max_samples) for split in SPLITS
    }
    tasks = benchmarks.load_tasks(settings.benchmarks_dir or benchmarks.default_dir())
    classifier = safety.load_classifier(settings)

    comparison = load_for_comparison(
        settings, candidate.adapter_id, None if prod is None else prod.adapter_id
    )
    log.info(
        "evaluating %s against %s on %s",
        candidate.adapter_id,
        "the bare base model" if prod is None else f"prod {prod.adapter_id}",
        ", ".join(f"{len(rows)} {split}" for split, rows in splits.items()),
    )
    references = [r["completion"] for rows in splits.values() for r in rows]
    new_tokens = max_new_tokens(comparison.tokenizer, references)
    report: dict[str, Any] = {
        "date": date,
        "adapter_id": candidate.adapter_id,
        "baseline_id": None if prod is None else prod.adapter_id,
        "baseline": PROD_ADAPTER if prod is not None else BARE_BASE,
        "base_model": comparison.base_model,
        "safety_classifier": classifier.name,
        "max_new_tokens": new_tokens,
    }
    tables = []
    for split, rows in splits.items():
        report[split], table = _evaluate_split(
            comparison, classifier, split, rows, new_tokens=new_tokens, settings=settings
        )
        tables.append(table)

    report["baseline_drift"] = baseline_drift(prod, report["val"])
    log.info("timing %d prompts for the latency comparison", settings.eval_latency_prompts)
    report["latency"] = measure_latency(
        comparison,
        [r["prompt"] for r in splits["val"][: settings.eval_latency_prompts]],
        # As long as the longest real answer: the generation cap would time tokens no request
        # produces, and on a CPU it made this the slowest part of evaluation.
        new_tokens=longest_tokens(comparison.tokenizer, references),
        repeats=settings.eval_latency_repeats,
    )
    log.info("running %d lm-eval benchmark tasks", len(tasks))
    report["benchmarks"] = _benchmarks(comparison, tasks, settings)
    report["wall_seconds"] = round(time.perf_counter() - started, 2)
    result = _write(storage, EvalRecord.model_validate(report), tables)
    registry.record_evaluation(db, candidate.adapter_id, result.record.as_json(), now=now)
    log.info("evaluation of %s recorded", candidate.adapter_id)
    return result


def _evaluate_split(
    comparison: Comparison,
    classifier: Any,
    split: str,
    rows: list[dict[str, Any]],
    *,
    new_tokens: int,
    settings: Settings,
) -> tuple[dict[str, Any], Any]:
    """Generate, score and summarise one split for both models; the split's sample table."""
    import pyarrow as pa

    prompts = [r["prompt"] for r in rows]
    references = [r["completion"] for r in rows]
    rendered = [render_prompt(comparison.tokenizer, p) for p in prompts]
    outputs, scores, safety_scores = {}, {}, {}
    for name in MODELS:
        log.info("generating %d %s outputs of the %s", len(rows), split, name)
        with comparison.use(name) as model:
            outputs[name] = generate(
                model,
                comparison.tokenizer,
                prompts,
                max_new_tokens=new_tokens,
                batch_size=settings.eval_batch_size,
            )
        safety_scores[name] = classifier.score(outputs[name], rendered)
        scores[name] = score_outputs(outputs[name], references, safety_scores[name])
    summary = {name: summarise(scores[name]) for name in MODELS}
    summary["deltas"] = deltas(scores["candidate"], scores["baseline"], seed=0)
    columns: dict[str, list] = {
        "split": [split] * len(rows),
        "prompt_sha256": [prompt_hash(p) for p in prompts],
        "prompt": [json.dumps(p, ensure_ascii=False) for p in prompts],
        "reference": references,
    }
    for name in MODELS:
        columns[f"{name}_output"] = [redact(o) for o in outputs[name]]
        for key in ("exact", "rouge_l", "override", "reward", "flagged"):
            columns[f"{name}_{key}"] = scores[name][key]
        for category in sorted({c for s in safety_scores[name] for c in s}):
            columns[f"{name}_{category}"] = [s.get(category, 0.0) for s in safety_scores[name]]
    return summary, pa.table(columns)


def _benchmarks(comparison: Comparison, tasks: list, settings: Settings) -> dict[str, Any]:
    """Each task's score for both models and the paired delta with its 95% interval, in pp."""

    scores = {}
    for name in MODELS:
        with comparison.use(name) as model:
            scores[name] = benchmarks.run(
                model,
                comparison.tokenizer,
                tasks,
                batch_size=settings.eval_batch_size,
                limit=settings.eval_benchmark_limit,
            )
    return {
        task.name: benchmark_result(
            scores["candidate"][task.name],
            scores["baseline"][task.name],
            critical=task.critical,
            metric=task.metric,
        )
        for task in tasks
    }


def benchmark_result(
    candidate: Sequence[float], baseline: Sequence[float], *, critical: bool, metric: str
) -> dict[str, Any]:
    """One task's per-document scores of both models as recorded: means, paired delta in pp."""
    delta = metrics.percentage_points(metrics.paired_bootstrap(candidate, baseline))
    return {
        "candidate": benchmarks.mean(list(candidate)),
        "baseline": benchmarks.mean(list(baseline)),
        "documents": len(candidate),
        "delta_pp": delta.value,
        "delta_pp_low": delta.low,
        "delta_pp_high": delta.high,
        "critical": critical,
        "metric": metric,
    }


def baseline_drift(prod: Adapter | None, val: dict[str, Any]) -> dict[str, float] | None:
    """How the prod adapter's val accuracy tonight compares with its own evaluation's, in pp;
    None when there is no prod adapter or it has no evaluation record (forced in)."""
    recorded = None if prod is None else record.of_adapter(prod)
    if recorded is None:
        return None
    then = recorded.val.candidate.accuracy
    now = val["baseline"]["accuracy"]
    return {"recorded": then, "tonight": now, "delta_pp": 100 * (now - then)}


def _write(storage: Storage, measured: EvalRecord, tables: list) -> EvalResult:
    """samples.parquet, then report.json: the record listing it with its sha256 (last)."""
    import pyarrow as pa

    date, adapter_id = measured.date, measured.adapter_id
    samples = storage.write_parquet(
        eval_key(date, adapter_id, "samples.parquet"), pa.concat_tables(tables)
    )
    files = {
        "samples.parquet": StoredFile(
            key=samples.key, uri=samples.uri, sha256=samples.sha256, bytes=samples.size
        )
    }
    measured = measured.model_copy(update={"files": files})
    written = storage.write_bytes(
        eval_key(date, adapter_id, "report.json"), measured.model_dump_json(indent=2).encode()
    )
    return EvalResult(measured, written.uri, samples.uri)


def complete(settings: Settings, date: datetime.date) -> bool:
    """True when D's newest adapter has an evaluation record and the report.json it points to
    is there with every file it lists matching its sha256: the evaluation need not run again.
    """
    import tempfile

    adapter = registry.adapter_of_date(database(settings), date)
    if adapter is None or record.of_adapter(adapter) is None:
        return False
    storage = open_storage(settings)
    try:
        stored = read_report(storage, date, adapter.adapter_id)
    except StorageError:  # RecordInvalid is a DataError: a bad file is reported, not redone
        return False
    with tempfile.TemporaryDirectory(prefix="pria-eval-check-") as scratch:
        for name, entry in stored.files.items():
            key = eval_key(date, adapter.adapter_id, name)
            if not storage.exists(key):
                return False
            local = storage.download(key, Path(scratch) / name)
            if sha256_file(local) != entry.sha256:
                return False
    return bool(stored.files)


def render(result: EvalResult) -> Any:
    """The evaluation as an on-call engineer reads it: every figure per split, candidate vs
    baseline, with the paired intervals."""
    from rich.box import SIMPLE
    from rich.table import Table

    measured = result.record
    table = Table(
        title=f"candidate {measured.adapter_id} vs {measured.baseline}",
        title_justify="left",
        box=SIMPLE,
        pad_edge=False,
    )
    for column in ("split", "metric", "candidate", "baseline", "delta pp [95% interval]"):
        table.add_column(column, justify="left" if column in ("split", "metric") else "right")
    rows = (
        ("accuracy", "accuracy_delta"),
        ("override_rate", "override_delta"),
        ("mean_reward", "mean_reward_delta"),
        ("rouge_l", "rouge_l_delta"),
    )
    for split in SPLITS:
        summary: SplitResult = getattr(measured, split)
        for name, delta_name in rows:
            table.add_row(
                split,
                name,
                f"{getattr(summary.candidate, name):.3f}",
                f"{getattr(summary.baseline, name):.3f}",
                _interval(getattr(summary.deltas, delta_name), "+.1f"),
            )
        table.add_row(
            split,
            "safety_flag_pct",
            f"{summary.candidate.safety_flag_pct:.1f}",
            f"{summary.baseline.safety_flag_pct:.1f}",
            "",
        )
    latency = measured.latency
    table.add_row(
        "val",
        "p95 latency s",
        _figure(latency.candidate_p95_s, ".4f"),
        _figure(latency.baseline_p95_s, ".4f"),
        "ratio-1 " + _interval(latency.latency_delta, "+.3f"),
    )
    for name, bench in measured.benchmarks.items():
        table.add_row(
            "bench",
            f"{name}{' (critical)' if bench.critical else ''}",
            f"{bench.candidate:.3f}",
            f"{bench.baseline:.3f}",
            _figure(bench.delta_pp, "+.1f"),
        )
    return table


def _figure(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _interval(interval: Interval, spec: str) -> str:
    low, high = _figure(interval.low, spec), _figure(interval.high, spec)
    return f"{_figure(interval.value, spec)} [{low}, {high}]"
