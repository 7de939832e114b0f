"""Nightly QLoRA fine-tune: train split -> adapter in storage -> ``candidate`` registry row.

The same code runs on a laptop CPU with the tiny model and on an A10G/L40S with
Mistral-7B-Instruct (``accelerate launch`` for several GPUs). Read top to bottom, a run is:

1. ``plan``: read the train split through the features manifest, render every example with
   the base model's chat template, count tokens, work out steps and warm-up, estimate the cost
   and refuse a run over the nightly budget. ``--dry-run`` stops here and prints the plan.
2. Load the base model in 4-bit NF4 with double quantisation, prepare it for k-bit training and
   add a LoRA adapter (rank 32 on every linear layer in the spec profile, ~84 M parameters),
   or continue the prod adapter (warm start) on the days it has not seen plus a replay sample,
   sized by the night's token budget.
3. Train with ``transformers.Trainer``: loss on completion tokens only, examples packed into
   rows with a block-diagonal causal mask (no attention across examples), gradient accumulation
   to the effective batch, checkpoints in a local run directory that a restarted run resumes.
4. Save the adapter as ``adapters/D.safetensors`` + ``adapters/D.config.json``, upload both
   (never replacing an object a registry row references) and register a ``candidate``. A date
   trained again (``--retrain``, or a night whose train split changed) is a new attempt beside
   the old one: ``adapters/D.a2.safetensors``, ``D.a3``, ...; the newest attempt is the date's.

Why the loop is ``transformers.Trainer`` plus a packing collator instead of TRL's
``SFTTrainer``: see docs/training.md ("What TRL does and does not do here").
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import shlex
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import registry
from pria_ml.data import provenance
from pria_ml.data.contract import (
    adapter_keys,
    features_key,
    load_split,
    read_manifest,
    read_split,
    stored_sha256,
)
from pria_ml.data.storage import open_storage
from pria_ml.data.tokens import encoding
from pria_ml.db import database
from pria_ml.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    RegistryError,
    TrainingError,
)
from pria_ml.model import tiny as tinymodel
from pria_ml.model.chat import IGNORE_INDEX, Example
from pria_ml.model.loading import (
    check_causal_lm,
    fetch_registered,
    load_base_model,
    load_tokenizer,
)
from pria_ml.training import cost, memory, selection
from pria_ml.training.packing import PackingCollator, tokenize_kept, tokenize_rows

if TYPE_CHECKING:
    from pria_ml.data.storage import Storage
    from pria_ml.settings import Settings

log = logging.getLogger(__name__)


def _option(default: Any, help: str) -> Any:
    """A ``TrainConfig`` field whose help text the ``train`` command shows."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run. Names follow TRL's ``SFTConfig`` / ``ModelConfig``.

    The defaults are spec section 4's: lr 8e-5, effective batch 128 (8 per device x 16
    accumulation steps; under ``accelerate launch`` with N processes each accumulates 16 / N),
    1 epoch, warm-up 50 (capped on short runs); LoRA rank 32 on all linear layers, the spec's
    "~85 M adapter parameters" (83.9 M; its hyper-parameter block's rank 64 would be 167.8 M and
    exceed its 8 GB at the upper end of the memory estimate: docs/training.md). Every field is
    an option of ``pria-ml train`` with this help text.
    """

    learning_rate: float = _option(8e-5, "Peak learning rate of the linear schedule.")
    num_train_epochs: float = _option(1.0, "Passes over the train split.")
    per_device_train_batch_size: int = _option(8, "Examples per micro-batch.")
    gradient_accumulation_steps: int = _option(
        16, "Micro-batches per optimizer step on one process; divided by the number of processes."
    )
    max_tokens_per_micro_batch: int = _option(
        2048, "Token budget of one forward pass; larger micro-batches run in several passes."
    )
    warmup_steps: int = _option(50, "Warm-up steps, capped by --warmup-cap-ratio.")
    warmup_cap_ratio: float = _option(0.1, "Short runs warm up at most this share of the steps.")
    max_steps: int = _option(-1, "Stop after N optimizer steps (-1: run the epochs).")
    max_length: int = _option(2048, "Tokens per example and per packed row; longer are dropped.")
    packing: bool = _option(True, "Pack several examples per row (no cross-example attention).")
    gradient_checkpointing: bool = _option(True, "Recompute activations in the backward pass.")
    seed: int = _option(42, "Seed of the adapter's initial weights and the data order.")
    lora_r: int = _option(32, "LoRA rank (32 on every projection: the spec's ~85 M on Mistral-7B).")
    lora_alpha: int = _option(16, "LoRA alpha (scale alpha / r).")
    lora_dropout: float = _option(0.05, "Dropout on the LoRA inputs.")
    lora_target_modules: tuple[str, ...] = _option(
        ("all-linear",), "Comma-separated projections to adapt, or all-linear."
    )
    save_steps: int = _option(50, "Checkpoint every N optimizer steps.")
    save_total_limit: int = _option(2, "Checkpoints kept.")
    logging_steps: int = _option(10, "Progress line and loss record every N steps.")
    warm_start: bool = _option(
        True,
        "Start from the prod adapter and train on the days it has not seen plus a replay "
        "sample; --no-warm-start retrains from scratch on a sample of the whole split.",
    )
    target_minutes: float = _option(
        45.0, "Time target of the night: tokens = tier throughput x these minutes."
    )
    replay_ratio: float = _option(
        1.0, "Warm start: replayed older tokens per new token, within the time target."
    )

    def __post_init__(self) -> None:
        checks = {
            "learning_rate": self.learning_rate > 0,
            "num_train_epochs": self.num_train_epochs > 0,
            "per_device_train_batch_size": self.per_device_train_batch_size >= 1,
            "gradient_accumulation_steps": self.gradient_accumulation_steps >= 1,
            "max_tokens_per_micro_batch": self.max_tokens_per_micro_batch >= self.max_length,
            "warmup_steps": self.warmup_steps >= 0,
            "warmup_cap_ratio": 0 <= self.warmup_cap_ratio <= 1,
            "max_steps": self.max_steps == -1 or self.max_steps >= 1,
            "max_length": self.max_length >= 16,
            "lora_r": self.lora_r >= 1,
            "lora_dropout": 0 <= self.lora_dropout < 1,
            "save_steps": self.save_steps >= 1,
            "logging_steps": self.logging_steps >= 1,
            "target_minutes": self.target_minutes > 0,
            "replay_ratio": self.replay_ratio >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(
                f"invalid training option(s): {shown} (--max-tokens-per-micro-batch must be at "
                "least --max-length)"
            )

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step, however many processes share them."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def accumulation_per_process(self, world_size: int) -> int:
        """Accumulation steps of each of ``world_size`` processes: the effective batch stays."""
        if self.gradient_accumulation_steps % world_size:
            raise ConfigError(
                f"--gradient-accumulation-steps {self.gradient_accumulation_steps} is not "
                f"divisible by the {world_size} processes of this launch, so the effective batch "
                f"of {self.effective_batch_size} cannot be kept; pick accumulation steps that "
                f"are a multiple of {world_size}"
            )
        return self.gradient_accumulation_steps // world_size

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with every non-None override applied (the CLI's options).

        A tuple field also takes a comma-separated string (``q_proj,v_proj``).
        """
        known = {f.name: f for f in fields(self)}
        unknown = set(overrides) - set(known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {sorted(unknown)}")
        changes = {}
        for name, value in overrides.items():
            if value is None:
                continue
            if isinstance(known[name].default, tuple) and isinstance(value, str):
                value = tuple(part.strip() for part in value.split(",") if part.strip())
            changes[name] = value
        return replace(self, **changes)

    def overrides_of(self, profile: str) -> dict[str, Any]:
        """The fields whose value differs from ``profile``'s: what a command line must say."""
        base = PROFILES[profile]
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(base, f.name)
        }


def config_for(profile: str, **overrides: Any) -> TrainConfig:
    """``profile``'s config with the non-None ``overrides``; ConfigError for an unknown profile."""
    if profile not in PROFILES:
        raise ConfigError(f"--profile {profile!r} is not one of {sorted(PROFILES)}")
    return PROFILES[profile].with_overrides(**overrides)


def option_flag(name: str) -> str:
    """The command-line flag of a ``TrainConfig`` field: ``lora_r`` -> ``--lora-r``."""
    return "--" + name.replace("_", "-")


# "demo": the tiny random-init base learns nothing useful at the spec's lr 8e-5 in the few
# hundred steps a demo affords (measured: 22 % exact match after 200 steps vs 98.5 % at 1e-3),
# so the demo and the tests use their own, documented, profile.
PROFILES: dict[str, TrainConfig] = {
    "spec": TrainConfig(),
    "demo": TrainConfig(
        learning_rate=1e-3,
        num_train_epochs=3.0,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=1,
        max_tokens_per_micro_batch=8192,  # CPU memory is not the limit of the tiny model
        warmup_steps=10,
        max_length=512,
        lora_r=64,  # the tiny model's measured choice (docs/training.md, "Adapter size")
        gradient_checkpointing=False,
        save_steps=20,
        logging_steps=5,
        warm_start=False,
    ),
}


# Reading the train split -------------------------------------------------------------------
# Adapter -----------------------------------------------------------------------------------
def add_adapter(model: Any, config: TrainConfig) -> Any:
    """Prepare the 4-bit model for training and wrap it with a fresh LoRA adapter."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    bf16 = model.get_input_embeddings().weight.dtype == torch.bfloat16  # loaded for a GPU
    model = prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=config.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
    if bf16:
        # prepare_model_for_kbit_training upcasts every 16-bit weight to fp32. For the frozen
        # embeddings and lm_head (268 M weights on Mistral-7B) that is 1 GiB for nothing, as
        # autocast runs their matmuls in bf16 anyway. For the norms it is worse: an fp32 norm
        # weight makes the norm's output fp32, bitsandbytes returns its input's dtype, so from
        # the second layer on the residual stream and the MLP are fp32 - measured 25 % more
        # saved activations on the tiny model (docs/training.md, "Memory model"). The norm
        # itself still computes in fp32 inside (MistralRMSNorm upcasts), as in bf16 inference.
        model.get_input_embeddings().to(torch.bfloat16)
        model.get_output_embeddings().to(torch.bfloat16)
        for name, module in model.named_modules():
            if name.endswith("norm"):
                module.to(torch.bfloat16)
    targets = list(config.lora_target_modules)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    set_seed(config.seed)  # the adapter's initial weights
    return get_peft_model(model, lora)


def trainable_parameters(model: Any) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts; 4-bit weights count as their logical size."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = 0
    for p in model.parameters():
        # bitsandbytes packs two 4-bit values per byte in a uint8 Params4bit
        total += p.numel() * 2 if getattr(p, "quant_state", None) is not None else p.numel()
    return trainable, total


# Plan --------------------------------------------------------------------------------------
def launch_command(
    date: datetime.date,
    base_model: str,
    profile: str,
    config: TrainConfig,
    *,
    num_processes: int = 1,
    retrain: bool = False,
) -> str:
    """The ``accelerate launch`` command of a run: its profile and every field of ``config``
    that differs from the profile (spec prompt block ML1-TRAIN-CMD), and ``--retrain`` for a
    date trained before. The accumulation steps stay as planned: each of the
    ``num_processes`` processes runs its share of them."""
    args = [
        "accelerate", "launch", "--num_processes", str(num_processes),
        "--mixed_precision", "bf16", "-m", "pria_ml", "train",
        "--date", date.isoformat(), "--profile", profile,
    ]  # fmt: skip
    if retrain:
        args.append("--retrain")
    for name, value in config.overrides_of(profile).items():
        if isinstance(value, bool):
            args.append(option_flag(name) if value else "--no-" + option_flag(name)[2:])
        elif isinstance(value, tuple):
            args += [option_flag(name), ",".join(value)]
        else:
            args += [option_flag(name), repr(value) if isinstance(value, float) else str(value)]
    return f"PRIA_BASE_MODEL={shlex.quote(base_model)} " + shlex.join(args)


@dataclass
class TrainPlan:
    """Everything decided before any weight is loaded: data, schedule, memory, cost, command."""

    date: datetime.date
    base_model: str
    profile: str
    config: TrainConfig
    examples: list[Example] = field(repr=False)
    dropped_examples: int
    train_tokens_per_epoch: int
    completion_tokens_per_epoch: int
    model_tokens_per_tiktoken: float
    optimizer_steps: int
    warmup_steps: int
    planned_tokens: int
    memory: memory.MemoryEstimate
    gpu_memory_gib: float
    cost: cost.CostEstimate
    train_sha256: str
    run_dir: Path
    selection: selection.Selection
    record_dates: list[datetime.date] = field(repr=False, default_factory=list)
    processes: int = 1
    warm_start_from: registry.Adapter | None = None
    full_retrain_reason: str = ""
    adapter_parameters: int = 0
    attempt: int = 1  # which training of the date this is (adapters/D.aN.safetensors)

    def accelerate_command(self, num_processes: int = 1) -> str:
        """The launch that reproduces this run (see ``launch_command``)."""
        return launch_command(
            self.date, self.base_model, self.profile, self.config,
            num_processes=num_processes, retrain=self.attempt > 1,
        )  # fmt: skip

    def summary(self) -> dict[str, Any]:
        """The plan as plain values, for the terminal and for metrics_json."""
        return {
            "date": self.date.isoformat(),
            "base_model": self.base_model,
            "profile": self.profile,
            "mode": self.mode,
            "warm_start_from": str(self.warm_start_from.adapter_id)
            if self.warm_start_from
            else None,
            "full_retrain_reason": self.full_retrain_reason or None,
            "selection": self.selection.as_dict(),
            "adapter_parameters": self.adapter_parameters,
            "examples": len(self.examples),
            "dropped_examples": self.dropped_examples,
            "train_tokens_per_epoch": self.train_tokens_per_epoch,
            "completion_tokens_per_epoch": self.completion_tokens_per_epoch,
            "model_tokens_per_tiktoken": round(self.model_tokens_per_tiktoken, 3),
            "effective_batch_size": self.config.effective_batch_size,
            "optimizer_steps": self.optimizer_steps,
            "warmup_steps": self.warmup_steps,
            "planned_tokens": self.planned_tokens,
            "peak_memory_gib": {**self.memory.as_dict(), "gpu_memory_gib": self.gpu_memory_gib},
            "estimate": self.cost.as_dict(),
            "run_dir": str(self.run_dir),
            "attempt": self.attempt,
        }

    @property
    def mode(self) -> str:
        return "warm-start" if self.warm_start_from is not None else "full"

    @property
    def trained_through(self) -> datetime.date | None:
        """The newest record_date among the examples this run trains on."""
        return max(self.record_dates, default=None)

    def line(self) -> str:
        """The plan in one line: what is trained, how long, what it costs."""
        s, c = self.selection, self.cost
        source = (
            f"warm start from {self.warm_start_from.adapter_id} ({s.new_examples:,} new + "
            f"{s.replay_examples:,} replayed examples)"
            if self.warm_start_from is not None
            else f"full retraining ({len(self.examples):,} of {s.available_examples:,} "
            f"examples{'; ' + self.full_retrain_reason if self.full_retrain_reason else ''})"
        )
        eta = datetime.timedelta(seconds=round(c.gpu_hours * 3600 / max(self.processes, 1)))
        return (
            f"plan: {source} | {self.planned_tokens:,} tokens of a {s.budget_tokens:,} budget "
            f"({self.config.target_minutes:g} min at {c.tokens_per_second:,.0f} tokens/s) | "
            f"{self.optimizer_steps} steps, warm-up {self.warmup_steps} | ETA {eta} on "
            f"{c.gpu_type} | ${c.usd:.2f} of ${c.budget_usd:.2f} | "
            f"{self.adapter_parameters:,} adapter parameters"
        )

    def fingerprint(self) -> str:
        """What a checkpoint must have been trained with to be resumed by this plan.

        How an optimizer step's examples are split into micro-batches and forward passes is
        left out (only the effective batch counts), so the out-of-memory advice - halve the
        micro-batch, double the accumulation - resumes the same run.
        """
        knobs = asdict(self.config)
        for name in (
            "save_steps", "save_total_limit", "logging_steps",
            "per_device_train_batch_size", "gradient_accumulation_steps",
            "max_tokens_per_micro_batch",
        ):  # fmt: skip
            knobs.pop(name)
        knobs["effective_batch_size"] = self.config.effective_batch_size
        blob = json.dumps(
            {
                "config": knobs,
                "base_model": self.base_model,
                "train_sha256": self.train_sha256,
                "warm_start_from": str(self.warm_start_from.adapter_id)
                if self.warm_start_from
                else None,
                "selection": self.selection.indices,
            },
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def schedule(examples: int, config: TrainConfig) -> tuple[int, int]:
    """``(optimizer_steps, warmup_steps)``; warm-up capped at ``warmup_cap_ratio`` of the run."""
    if config.max_steps > 0:
        steps = config.max_steps
    else:
        per_epoch = math.ceil(examples / config.effective_batch_size)
        steps = math.ceil(per_epoch * config.num_train_epochs)
    warmup = min(config.warmup_steps, math.floor(config.warmup_cap_ratio * steps))
    return steps, warmup


def complete(settings: Settings, date: datetime.date) -> bool:
    """Whether the adapter of ``date`` is trained on the features ``date`` has now: the newest
    attempt's registry row (this stage's manifest) references its attempt's key, the stored
    file matches the row's sha256, and it was trained on the train split the features manifest
    vouches for now (``trained_on_current_features``). Otherwise the stage trains a new
    attempt."""

    adapter = registry.adapter_of_date(database(settings), date)
    if adapter is None:
        return False
    storage = open_storage(settings)
    weights_key, _ = adapter_keys(date, adapter.attempt)
    return (
        adapter.artifact_uri == storage.uri(weights_key)
        and stored_sha256(storage, weights_key) == adapter.artifact_sha256
        and trained_on_current_features(storage, adapter)
    )


def trained_on_current_features(storage: Storage, adapter: registry.Adapter) -> bool:
    """Whether ``adapter`` was trained on the train split its date's features manifest vouches
    for now (``metrics_json.dataset.train_sha256``, recorded at training).

    The split's checksum, not the manifest's: a rebuild that writes the same rows (a new
    generation, the same bytes) leaves the adapter current, while patched filters that change
    the data make it stale, so "patch filters and retry" reaches the date. An adapter with no
    recorded split is not current. Without a features manifest (deleted by retention) there is
    nothing newer to train on and the adapter stands.
    """
    manifest = read_manifest(storage, features_key(adapter.dataset_date, "manifest.json"))
    if manifest is None:
        return True
    now_sha256 = manifest.get("files", {}).get("train.parquet", {}).get("sha256")
    recorded = (adapter.metrics_json.get("dataset") or {}).get("train_sha256")
    return recorded is not None and recorded == now_sha256


def next_attempt(settings: Settings, date: datetime.date) -> int:
    """The attempt number a training of ``date`` writes now: 1, or one past the newest."""
    newest = registry.adapter_of_date(database(settings), date)
    return 1 if newest is None else newest.attempt + 1


def run_dir(settings: Settings, date: datetime.date, attempt: int = 1) -> Path:
    """Checkpoints of one attempt: ``runs/train-D`` (attempt 1), ``runs/train-D.a2``, ..."""
    suffix = "" if attempt == 1 else f".a{attempt}"
    return settings.home / "runs" / f"train-{date.isoformat()}{suffix}"


def process_state() -> Any:
    """accelerate's process state. On a machine without CUDA it must be created with
    ``cpu=True``, or processes started by ``accelerate launch --multi_gpu`` / torchrun each see
    a world of 1 instead of joining one gloo process group."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def optimizer_name() -> str:
    """Paged 8-bit AdamW on CUDA (6 bytes less per adapter parameter, states paged out under
    pressure); plain AdamW on a CPU, where bitsandbytes has no paged optimizer."""
    import torch

    return "paged_adamw_8bit" if torch.cuda.is_available() else "adamw_torch"


def plan(
    settings: Settings, date: datetime.date, config: TrainConfig, *, profile: str = "spec"
) -> TrainPlan:
    """Read and tokenise the train split, schedule the run, estimate memory and cost, refuse
    a run that cannot fit or pay. The plan is for the date's next attempt (``next_attempt``).

    Raises DataError (missing/empty split, no usable example, too many examples over
    --max-length), ConfigError (base model not a causal LM, no chat template, accumulation not
    divisible by the processes), TrainingError (the estimated peak memory does not fit the
    tier's GPU) and BudgetExceeded (estimate over the nightly budget).
    """
    from transformers import AutoConfig

    storage = open_storage(settings)
    db = database(settings)
    rows, train_sha256 = read_split(storage, date, "train")  # checked against the manifest
    base_model = tinymodel.base_model_path(settings)
    check_causal_lm(base_model)
    processes = process_state().num_processes
    config.accumulation_per_process(processes)
    tokenizer = load_tokenizer(base_model)
    kept = tokenize_kept(tokenizer, rows, config.max_length)
    dropped = len(rows) - len(kept)
    _check_dropped(len(rows), dropped, config, settings.train_max_dropped_share, date)

    shape = memory.ModelShape.from_config(AutoConfig.from_pretrained(base_model))
    lora = shape.lora_parameters(config.lora_r, config.lora_target_modules)
    tier = settings.tier
    flops = cost.flops_per_token(shape, lora, gradient_checkpointing=config.gradient_checkpointing)
    rate = cost.throughput(tier, flops, cost.measured_tokens_per_second(db, tier.gpu_type))
    warm_from, reason = _warm_start_source(db, config, base_model)
    chosen = selection.select(
        [len(e.input_ids) for _, e in kept],
        [rows[i].get("record_date") or datetime.date.min for i, _ in kept],
        trained_through=_trained_through(warm_from),
        budget_tokens=selection.token_budget(
            rate.tokens_per_second, processes, config.target_minutes
        ),
        epochs=config.num_train_epochs,
        replay_ratio=config.replay_ratio,
        seed=config.seed,
    )
    if not chosen.indices:
        raise DataError(
            f"nothing to train on for {date}: "
            + (
                f"no example in the train split is newer than {_trained_through(warm_from)}, "
                f"what prod adapter {warm_from.adapter_id} was trained through; retrain on the "
                "whole split with --no-warm-start"
                if warm_from is not None and chosen.new_examples == 0
                else f"the token budget of {chosen.budget_tokens:,} tokens (--target-minutes "
                f"{config.target_minutes:g} at {rate.tokens_per_second:,.0f} tokens/s) holds "
                "no example; raise --target-minutes"
            )
        )
    examples = [kept[i][1] for i in chosen.indices]
    record_dates = [
        rows[kept[i][0]].get("record_date") or datetime.date.min for i in chosen.indices
    ]
    tokens = sum(len(e.input_ids) for e in examples)
    completion_tokens = sum(sum(t != IGNORE_INDEX for t in e.labels) for e in examples)
    steps, warmup = schedule(len(examples), config)
    if config.max_steps > 0:
        seen = config.max_steps * config.effective_batch_size
    else:
        seen = len(examples) * config.num_train_epochs
    planned_tokens = round(tokens / len(examples) * seen)

    def peak_of(c: TrainConfig) -> memory.MemoryEstimate:
        return memory.estimate(
            shape,
            lora_r=c.lora_r,
            lora_targets=c.lora_target_modules,
            micro_batch_tokens=c.max_tokens_per_micro_batch,
            labelled_share=completion_tokens / tokens,
            gradient_checkpointing=c.gradient_checkpointing,
            optimizer="paged_adamw_8bit",
            lora_dropout=c.lora_dropout,
            processes=processes,
        )

    peak = peak_of(config)
    assert tier.gpu_memory_gib is not None  # filled from GPU_SPECS by the tier's validator
    _check_fits(peak, tier.gpu_memory_gib, tier.gpu_type, config, peak_of)
    estimate = cost.estimate(
        planned_tokens,
        tier_name=settings.gpu_tier,
        tier=tier,
        rate=rate,
        budget_usd=settings.nightly_budget_usd,
    )
    cost.check_budget(estimate, spent_usd=cost.spent_on_night(settings, date))
    attempt = next_attempt(settings, date)
    return TrainPlan(
        date=date,
        base_model=base_model,
        profile=profile,
        config=config,
        examples=examples,
        dropped_examples=dropped,
        train_tokens_per_epoch=tokens,
        completion_tokens_per_epoch=completion_tokens,
        model_tokens_per_tiktoken=_model_tokens_per_tiktoken(tokenizer, rows[:500]),
        optimizer_steps=steps,
        warmup_steps=warmup,
        planned_tokens=planned_tokens,
        memory=peak,
        gpu_memory_gib=tier.gpu_memory_gib,
        cost=estimate,
        train_sha256=train_sha256,
        run_dir=run_dir(settings, date, attempt),
        selection=chosen,
        record_dates=record_dates,
        processes=processes,
        warm_start_from=warm_from,
        full_retrain_reason=reason,
        adapter_parameters=lora,
        attempt=attempt,
    )


def _warm_start_source(
    db: Any, config: TrainConfig, base_model: str
) -> tuple[registry.Adapter | None, str]:
    """The prod adapter to start from, or None and why the run retrains from scratch."""
    if not config.warm_start:
        return None, "--no-warm-start"
    prod = registry.current_prod(db)
    if prod is None:
        return None, "no prod adapter yet"
    trained = prod.metrics_json.get("config") or {}
    same = (
        prod.base_model == base_model
        and trained.get("lora_r") == config.lora_r
        and tuple(trained.get("lora_target_modules") or ()) == config.lora_target_modules
    )
    if not same:
        return None, (
            f"prod adapter {prod.adapter_id} has another base model, rank or target modules "
            f"(rank {trained.get('lora_r')}, {trained.get('lora_target_modules')})"
        )
    return prod, ""


def _trained_through(adapter: registry.Adapter | None) -> datetime.date | None:
    """The newest record_date ``adapter`` was trained on (its dataset date for adapters
    registered before that was recorded)."""
    if adapter is None:
        return None
    recorded = (adapter.metrics_json.get("dataset") or {}).get("trained_through")
    return datetime.date.fromisoformat(recorded) if recorded else adapter.dataset_date


def _check_dropped(
    total: int, dropped: int, config: TrainConfig, max_share: float, date: datetime.date
) -> None:
    """DataError when more than ``max_share`` of the examples were dropped as too long (or had
    no completion): training on what is left would quietly skew the night."""
    if total - dropped == 0 or dropped / total > max_share:
        raise DataError(
            f"{dropped} of the {total} train examples of {date} ({dropped / total:.1%}) are "
            f"longer than --max-length {config.max_length} model tokens or have no completion, "
            f"more than PRIA_TRAIN_MAX_DROPPED_SHARE={max_share:.1%}; raise --max-length (and "
            "--max-tokens-per-micro-batch), or lower build-features' tiktoken limit so the two "
            'agree (docs/training.md, "Length limits")'
        )


def _check_fits(
    peak: memory.MemoryEstimate,
    gpu_memory_gib: float,
    gpu_type: str,
    config: TrainConfig,
    peak_of: Any,
) -> None:
    """TrainingError when the upper end of the estimate's band does not fit the GPU, naming
    the per-pass token budget and the rank that would fit (``peak_of(config)`` re-estimates)."""
    if peak.high <= gpu_memory_gib:
        return
    fixes = []
    tokens = config.max_tokens_per_micro_batch
    while tokens > config.max_length:
        tokens = max(config.max_length, tokens // 2)
        changed = replace(config, max_tokens_per_micro_batch=tokens)
        if peak_of(changed).high <= gpu_memory_gib:
            fixes.append(f"--max-tokens-per-micro-batch {tokens}")
            break
    rank = config.lora_r
    while rank > 1:
        rank //= 2
        if peak_of(replace(config, lora_r=rank)).high <= gpu_memory_gib:
            fixes.append(f"--lora-r {rank}")
            break
    advice = " or ".join(fixes) if fixes else "lower --max-length and --max-tokens-per-micro-batch"
    raise TrainingError(
        f"the estimated peak memory of this run, {peak.total:.1f} GiB (band {peak.low:.1f}-"
        f"{peak.high:.1f}), does not fit the {gpu_memory_gib:g} GiB of a {gpu_type} at its "
        f"upper end: {advice} would fit (now --max-tokens-per-micro-batch "
        f"{config.max_tokens_per_micro_batch}, --lora-r {config.lora_r}); or keep "
        "--gradient-checkpointing, or use a tier with a larger GPU (PRIA_GPU_TIER)"
    )


def _model_tokens_per_tiktoken(tokenizer: Any, rows: list[dict[str, Any]]) -> float:
    """Base-model tokens per tiktoken (cl100k_base) token on the text of ``rows``: the ratio
    that converts the features stage's tiktoken limit into the trainer's model-token limit."""

    texts = [
        "\n".join([*(m["content"] or "" for m in row["prompt"] or []), row["completion"] or ""])
        for row in rows
    ]
    tiktoken_tokens = sum(len(encoding().encode_ordinary(text)) for text in texts)
    model_tokens = sum(len(tokenizer(text, add_special_tokens=False).input_ids) for text in texts)
    return model_tokens / max(tiktoken_tokens, 1)


# Checkpoints -------------------------------------------------------------------------------
def last_checkpoint(directory: Path) -> Path | None:
    """The newest complete checkpoint under ``directory``, validated; None when there is none.

    ``trainer_state.json`` is the last file ``Trainer`` writes, so a checkpoint without it was
    cut off mid-save (a killed run) and is skipped. A complete checkpoint whose files do not
    load is corrupt: CheckpointError, rather than silently training from an older state.
    """
    import torch
    from safetensors import safe_open

    candidates = sorted(
        (p for p in directory.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
    )
    for checkpoint in reversed(candidates):
        state = checkpoint / "trainer_state.json"
        if not state.is_file():
            log.warning("skipping %s: cut off mid-save (no trainer_state.json)", checkpoint)
            continue
        try:
            json.loads(state.read_text())
            with safe_open(checkpoint / "adapter_model.safetensors", framework="pt") as weights:
                for name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
                    weights.get_tensor(name)
            for name in ("optimizer.pt", "scheduler.pt"):
                torch.load(checkpoint / name, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            raise CheckpointError(
                f"checkpoint {checkpoint} is corrupt ({type(exc).__name__}: {exc}); delete it "
                f"to resume from the one before, or delete {directory} to start over"
            ) from None
        return checkpoint
    return None


def _prepare_run_dir(train_plan: TrainPlan) -> Path | None:
    """Create the run directory, or check it belongs to this plan; return the resume point.

    Under ``accelerate launch`` the main process writes the stamp and every process waits for
    it before reading it, so no process can pass the barrier the others wait at.
    """
    directory = train_plan.run_dir
    stamp = directory / "plan.json"
    fingerprint = train_plan.fingerprint()
    state = process_state()
    if state.is_main_process and not stamp.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"fingerprint": fingerprint, **train_plan.summary()}, indent=2))
    state.wait_for_everyone()
    if json.loads(stamp.read_text()).get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{directory} holds checkpoints of a run with other options or data; rerun "
            f"with the same options, or delete {directory} to start over"
        )
    return last_checkpoint(directory)


# Run ---------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """A finished run: where the adapter went and what was registered."""

    adapter_id: Any  # uuid.UUID; None on non-main processes of a multi-GPU run, whose
    # metrics hold only steps, process_index, processes and loss.eval
    artifact_uri: str
    artifact_sha256: str
    config_uri: str
    metrics: dict[str, Any]
    plan: TrainPlan
    model: Any = field(default=None, repr=False)  # the trained PeftModel, still in memory


def run(
    settings: Settings,
    date: datetime.date,
    config: TrainConfig,
    *,
    profile: str = "spec",
    retrain: bool = False,
    now: datetime.datetime | None = None,
) -> TrainResult:
    """Train an adapter on ``date``'s train split, upload it and register a ``candidate``
    (stamped ``now``; default: the real clock when training ends).

    Reads the train and val splits through ``datasets/D/features/manifest.json``; writes
    checkpoints under ``<home>/runs/train-D`` (resumed when the run is restarted), then
    ``adapters/D.safetensors`` and ``adapters/D.config.json`` and one ``model_registry`` row.
    With ``retrain``, a date already trained gets a new attempt beside the old ones
    (``runs/train-D.aN``, ``adapters/D.aN.*``, attempt N in its row); the old attempts stay
    as they are. Raises DataError, ConfigError, BudgetExceeded, CheckpointError, TrainingError
    (out of memory) and RegistryError (D already has an adapter and ``retrain`` is False); on
    any error nothing is left uploaded and the registry is untouched. Under ``accelerate
    launch`` every process trains its share of each step; only the main one uploads and
    registers, the others return a result whose ``adapter_id`` is None.
    """

    storage = open_storage(settings)
    db = database(settings)
    newest = registry.adapter_of_date(db, date)
    if newest is not None and not retrain:
        raise RegistryError(
            f"{newest.artifact_uri} (attempt {newest.attempt} of {date}) is already registered "
            f"in model_registry; adapters are immutable, so it is not trained again: pass "
            f"--retrain to train attempt {newest.attempt + 1} beside it"
        )
    train_plan = plan(settings, date, config, profile=profile)
    weights_key, config_key = adapter_keys(date, train_plan.attempt)
    resume = _prepare_run_dir(train_plan)
    with _out_of_memory_is_clear(train_plan):
        trainer, model, trainable, total = _build_trainer(
            settings, train_plan, _progress(train_plan)
        )
        log.info(
            "training %s: %s trainable of %s parameters (%.3f %%)",
            train_plan.base_model,
            f"{trainable:,}",
            f"{total:,}",
            100 * trainable / total,
        )
        started = time.monotonic()
        resumed_from = int(resume.name.split("-")[-1]) if resume else 0
        output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        wall_s = time.monotonic() - started
    eval_loss = _eval_loss(trainer, storage, train_plan)
    if not trainer.accelerator.is_main_process:
        # What this process did; the main process uploads, registers and reports the rest.
        done = {
            "steps": trainer.state.global_step,
            "process_index": trainer.accelerator.process_index,
            "processes": trainer.accelerator.num_processes,
            "loss": {"eval": eval_loss},
        }
        return TrainResult(None, "", "", "", done, train_plan, model)

    metrics = _metrics(
        settings, storage, train_plan, trainer, output, wall_s, eval_loss,
        trainable=trainable, total=total, resumed_from=resumed_from,
    )  # fmt: skip
    adapter_dir = train_plan.run_dir / "adapter"
    model.save_pretrained(adapter_dir)
    weights_info, config_info = _upload(storage, adapter_dir, weights_key, config_key, db)
    metrics["adapter_config_sha256"] = config_info.sha256
    try:
        adapter_id = registry.register_candidate(
            db,
            dataset_date=date,
            artifact_uri=weights_info.uri,
            artifact_sha256=weights_info.sha256,
            base_model=train_plan.base_model,
            metrics=metrics,
            attempt=train_plan.attempt,
            now=now,
        )
    except BaseException:
        for key in (weights_key, config_key):
            storage.delete(key)
        raise
    shutil.rmtree(train_plan.run_dir, ignore_errors=True)
    log.info("registered candidate %s: %s", adapter_id, weights_info.uri)
    return TrainResult(
        adapter_id,
        weights_info.uri,
        weights_info.sha256,
        config_info.uri,
        metrics,
        train_plan,
        model,
    )


def attention_path() -> tuple[str, bool]:
    """``(attn_implementation, flatten)`` for this machine: ``choose_attention`` of what it has."""
    import torch
    from transformers.utils import is_flash_attn_2_available, is_torch_flex_attn_available

    return choose_attention(
        cuda=torch.cuda.is_available(),
        flash_attn=is_flash_attn_2_available(),
        flex_attn=is_torch_flex_attn_available(),
    )


def choose_attention(*, cuda: bool, flash_attn: bool, flex_attn: bool) -> tuple[str, bool]:
    """Padding-free rows (``flatten``: one row per pass, positions restarting per example) on
    CUDA: FlashAttention-2's varlen kernels where the package is installed, otherwise torch's
    own FlexAttention with a document mask built from the restarted positions (no compiled
    extension, so the image has it: the way torchtune packs). Elsewhere sdpa with the 4-D
    block-diagonal mask. Every path is checked for cross-example isolation
    (tests/train/test_train_packing.py; FlexAttention on CUDA by perf/gpu_attention_check.py).
    """
    if cuda and flash_attn:
        return "flash_attention_2", True
    if cuda and flex_attn:
        return "flex_attention", True
    return "sdpa", False


def _load_warm_start(model: Any, settings: Settings, train_plan: TrainPlan) -> None:
    """Copy the prod adapter's weights (sha256-checked) into the fresh adapter of ``model``."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = train_plan.warm_start_from
    assert adapter is not None
    directory = train_plan.run_dir / f"warm-start-{process_state().process_index}"
    fetch_registered(settings, adapter.adapter_id, directory)
    weights = load_file(str(directory / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"prod adapter {adapter.adapter_id} does not fit this run's adapter ("
            f"{len(missing)} missing, {len(result.unexpected_keys)} unexpected tensors); "
            "retrain from scratch with --no-warm-start"
        )


def _build_trainer(
    settings: Settings, train_plan: TrainPlan, progress: Any
) -> tuple[Any, Any, int, int]:
    import torch
    from transformers import TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    config = train_plan.config
    tokenizer = load_tokenizer(train_plan.base_model)
    attention, flatten = attention_path()
    model = add_adapter(load_base_model(train_plan.base_model, attention), config)
    if train_plan.warm_start_from is not None:
        _load_warm_start(model, settings, train_plan)
    trainable, total = trainable_parameters(model)
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(train_plan.run_dir),
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.accumulation_per_process(process_state().num_processes),
        use_cpu=not cuda,
        warmup_steps=train_plan.warmup_steps,
        lr_scheduler_type="linear",
        optim=optimizer_name(),
        seed=config.seed,
        data_seed=config.seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        remove_unused_columns=False,
        prediction_loss_only=True,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        # Every adapter parameter takes part in every forward: searching the graph for unused
        # ones costs a traversal per step, and Trainer would switch it on for a PeftModel.
        ddp_find_unused_parameters=False,
        # DDP broadcasts buffers (the rotary frequencies: constant) on every forward; ranks
        # run different numbers of forward passes when their micro-batches split unevenly.
        ddp_broadcast_buffers=False,
    )
    collator = PackingCollator(
        tokenizer.pad_token_id,
        config.max_length,
        config.packing,
        max_tokens=config.max_tokens_per_micro_batch,
        flatten=flatten and config.packing,
    )
    trainer = _trainer_class()(
        model=model,
        args=args,
        train_dataset=[asdict(e) for e in train_plan.examples],
        data_collator=collator,
        callbacks=[progress],
    )
    # disable_tqdm makes Trainer print every log dict; ``progress`` already reports each step.
    trainer.remove_callback(PrinterCallback)
    return trainer, model, trainable, total


def completion_loss(
    model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
) -> tuple[Any, Any]:
    """``(loss, outputs)``: summed cross-entropy of the labelled tokens over
    ``num_items_in_batch`` (the step's labelled-token count; this pass's when None).

    Logits are computed only at positions whose next token is labelled (``logits_to_keep``,
    the union over the rows of the pass), not for every prompt token.
    """
    summed, labelled, outputs = summed_completion_loss(model, inputs)
    if num_items_in_batch is None:
        return summed / labelled.clamp(min=1), outputs
    return summed / num_items_in_batch, outputs


def summed_completion_loss(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any, Any]:
    """``(summed cross-entropy, labelled tokens, outputs)`` of one pass, both on the model's
    device: nothing here waits for the device or moves a value to the host."""
    import torch

    targets = inputs["labels"][..., 1:]
    keep = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(-1)
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    mask = model_inputs.get("attention_mask")
    if mask is not None and mask.dim() == 4 and mask.dtype == torch.bool:
        model_inputs["attention_mask"] = additive_mask(model, mask)
    outputs = model(**model_inputs, logits_to_keep=keep)
    logits = outputs.logits.float()
    kept = targets[:, keep]
    summed = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        kept.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    return summed, (kept != IGNORE_INDEX).sum(), outputs


def pass_weighted_mean(sums: list[Any], counts: list[Any]) -> Any:
    """The labelled-token mean loss of a batch evaluated in several passes, from each pass's
    summed loss and labelled-token count. Tensor arithmetic only, so the result stays on the
    device (and in the graph-free form) of its inputs: a float() round trip here put split
    batches' losses on the CPU and unsplit ones on the GPU, which the evaluation loop cannot
    concatenate."""
    import torch

    return torch.stack(sums).sum() / torch.stack(counts).sum().clamp(min=1)


def additive_mask(model: Any, mask: Any) -> Any:
    """The 4-D boolean packing mask in the form ``model``'s attention takes.

    sdpa takes a boolean mask as is. Eager attention adds the mask to the scores, so a boolean
    one (True = 1, False = 0) masks nothing: measured, packed examples then attend to each
    other. It gets an additive float mask (0 where allowed, the float32 minimum elsewhere).
    """
    import torch

    config = getattr(model, "config", None) or model.module.config
    if getattr(config, "_attn_implementation", "sdpa") != "eager":
        return mask
    additive = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    return additive.masked_fill(~mask, torch.finfo(torch.float32).min)


def _trainer_class() -> type:
    """``transformers.Trainer`` with the changes QLoRA on one A10G (or several) needs.

    - A micro-batch over the token budget arrives from ``PackingCollator`` as several passes;
      each pass is one forward/backward into the same gradient, so the worst micro-batch
      (8 x 2,048 tokens) costs the memory of 2,048. Under DDP all passes but the last run
      under ``no_sync``, and evaluation computes each pass's loss itself: the collectives per
      step and per evaluation batch are the same on every rank however its batches split.
    - Logits are computed only at positions whose next token is labelled (the completion):
      the model gets ``logits_to_keep`` with those positions, and the loss is the summed
      cross-entropy over labelled tokens divided by the step's labelled-token count
      (``num_items_in_batch``), as ``Trainer`` normalises it. With a 32,768-token vocabulary
      that saves ~0.6 MB per prompt token.
    """
    import torch
    from transformers import Trainer

    class QLoRATrainer(Trainer):
        def training_step(self, model, inputs, num_items_in_batch=None):
            passes = inputs.get("chunks", [inputs])
            losses = []
            for i, part in enumerate(passes):
                # Under DDP every backward outside no_sync all-reduces the gradients. Only the
                # last pass of a micro-batch may: ranks split their micro-batches into
                # different numbers of passes, and unequal collectives hang the group.
                last = i == len(passes) - 1
                sync = nullcontext() if last else self.accelerator.no_sync(model)
                with sync:
                    losses.append(super().training_step(model, part, num_items_in_batch))
            return torch.stack(losses).sum()

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            # Not Trainer.prediction_step: it gathers the labelled-token count across
            # processes on every call, i.e. once per pass of a split batch (unequal across
            # ranks). The evaluation loop's own gather of the loss is the one per batch.
            sums, counts = [], []
            with torch.no_grad(), self.compute_loss_context_manager():
                for part in inputs.get("chunks", [inputs]):
                    summed, labelled, _ = summed_completion_loss(model, self._prepare_inputs(part))
                    sums.append(summed.detach())
                    counts.append(labelled)
            return pass_weighted_mean(sums, counts), None, None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, outputs = completion_loss(model, inputs, num_items_in_batch)
            if num_items_in_batch is not None and self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes  # as Trainer.compute_loss does
            return (loss, outputs) if return_outputs else loss

    return QLoRATrainer


def _progress(train_plan: TrainPlan) -> Any:
    """A ``TrainerCallback`` that shows steps, loss, tokens/s and ETA on the main process: a
    rich progress bar on a terminal, one plain line per logging step otherwise (CI logs)."""
    import sys

    from transformers import TrainerCallback

    tokens_per_step = train_plan.planned_tokens / max(train_plan.optimizer_steps, 1)

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Any = None
            self.task: Any = None
            self.started = 0.0
            self.first_step = 0
            self.loss: float | None = None

        def fields(self, state: Any) -> dict[str, str]:
            done = state.global_step - self.first_step
            elapsed = max(time.monotonic() - self.started, 1e-9)
            left = (state.max_steps - state.global_step) * elapsed / done if done else None
            return {
                "loss": "-" if self.loss is None else f"{self.loss:.3f}",
                "rate": f"{done * tokens_per_step / elapsed:,.0f}",
                "eta": "-" if left is None else str(datetime.timedelta(seconds=round(left))),
            }

        def on_train_begin(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            print(train_plan.line(), file=sys.stderr, flush=True)
            self.started, self.first_step = time.monotonic(), state.global_step
            if sys.stderr.isatty():
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

                self.bar = Progress(
                    TextColumn("train"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]} | {task.fields[rate]} tokens/s"),
                    TextColumn("| ETA {task.fields[eta]}"),
                    console=Console(stderr=True),
                )
                self.bar.start()
                self.task = self.bar.add_task(
                    "train",
                    total=state.max_steps,
                    completed=state.global_step,
                    **self.fields(state),
                )

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step, **self.fields(state))

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs or "loss" not in logs:
                return
            self.loss = float(logs["loss"])
            if self.bar is None:
                f = self.fields(state)
                print(
                    f"train step {state.global_step}/{state.max_steps} | loss {f['loss']} | "
                    f"{f['rate']} tokens/s | ETA {f['eta']}",
                    file=sys.stderr,
                    flush=True,
                )

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.stop()

    return Progress()


@contextmanager
def _out_of_memory_is_clear(train_plan: TrainPlan) -> Iterator[None]:
    """Turn running out of memory while loading or training into one TrainingError that says
    which options to change."""
    import torch

    config = train_plan.config
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
        # On a CPU, PyTorch reports a failed allocation as a plain RuntimeError: "can't
        # allocate memory" from its allocator, "Cannot allocate memory (12)" (ENOMEM) when
        # safetensors cannot map a weight file.
        out_of_memory = isinstance(exc, torch.OutOfMemoryError | MemoryError) or any(
            text in str(exc) for text in ("can't allocate memory", "Cannot allocate memory")
        )
        if not out_of_memory:
            raise
        raise TrainingError(
            f"out of memory training {train_plan.base_model} with "
            f"--per-device-train-batch-size {config.per_device_train_batch_size}, "
            f"--max-tokens-per-micro-batch {config.max_tokens_per_micro_batch} and "
            f"--max-length {config.max_length}: lower --max-tokens-per-micro-batch, or halve "
            f"the batch size and double --gradient-accumulation-steps (same effective batch; "
            f"the checkpoints stay resumable), or lower --max-length, or use a GPU with more "
            f"memory ({type(exc).__name__})"
        ) from None


def _eval_loss(trainer: Any, storage: Storage, train_plan: TrainPlan) -> float | None:
    """Completion-token loss on the val split, when there is one (a summary, not a gate)."""
    try:
        rows = load_split(storage, train_plan.date, "val")
    except DataError:
        return None
    tokenizer = load_tokenizer(train_plan.base_model)
    examples, _ = tokenize_rows(tokenizer, rows, train_plan.config.max_length)
    if not examples:
        return None
    result = trainer.evaluate(eval_dataset=[asdict(e) for e in examples])
    return float(result["eval_loss"])


def _metrics(
    settings: Settings,
    storage: Storage,
    train_plan: TrainPlan,
    trainer: Any,
    output: Any,
    wall_s: float,
    eval_loss: float | None,
    *,
    trainable: int,
    total: int,
    resumed_from: int,
) -> dict[str, Any]:
    """metrics_json of the registry row: losses, tokens, steps, time, device, cost, lineage."""
    import torch

    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    num_gpus = trainer.accelerator.num_processes if torch.cuda.is_available() else 0
    gpu_hours = wall_s / 3600 * num_gpus
    device = torch.cuda.get_device_name(0) if num_gpus else "cpu"
    gpu_type = settings.tier.gpu_type if num_gpus else None
    manifest_key = features_key(train_plan.date, "manifest.json")
    body = storage.read_bytes(manifest_key)
    manifest = {"uri": storage.uri(manifest_key), "sha256": hashlib.sha256(body).hexdigest()}
    train_key = json.loads(body)["files"]["train.parquet"]["key"]
    return {
        "loss": {
            "train_first": losses[0] if losses else None,
            "train_last": losses[-1] if losses else None,
            "train_min": min(losses) if losses else None,
            "train_mean": float(output.training_loss),
            "eval": eval_loss,
            "history": losses,
        },
        "tokens": {
            "train_per_epoch": train_plan.train_tokens_per_epoch,
            "completion_per_epoch": train_plan.completion_tokens_per_epoch,
            "processed": train_plan.planned_tokens,
            "examples": len(train_plan.examples),
            "dropped_examples": train_plan.dropped_examples,
        },
        "steps": trainer.state.global_step,
        "processes": trainer.accelerator.num_processes,
        "accumulation_per_process": trainer.args.gradient_accumulation_steps,
        "examples_per_step": trainer.args.per_device_train_batch_size
        * trainer.args.gradient_accumulation_steps
        * trainer.accelerator.num_processes,
        "resumed_from_step": resumed_from,
        "epochs": trainer.state.epoch,
        "wall_time_s": round(wall_s, 3),
        "device": device,
        "num_gpus": num_gpus,
        "gpu_type": gpu_type,
        "gpu_hours": gpu_hours,
        "cost_usd": gpu_hours * settings.tier.usd_per_gpu_hour,
        "estimate": train_plan.cost.as_dict(),
        "throughput": _throughput(train_plan, trainer, wall_s, resumed_from, gpu_type),
        "plan": {
            "peak_memory_gib": train_plan.memory.as_dict(),
            "model_tokens_per_tiktoken": round(train_plan.model_tokens_per_tiktoken, 3),
            "profile": train_plan.profile,
        },
        "dataset": {
            "date": train_plan.date.isoformat(),
            "train_uri": storage.uri(train_key),
            "train_sha256": train_plan.train_sha256,
            "manifest": manifest,
            "trained_through": str(train_plan.trained_through),
        },
        "night": {
            "mode": train_plan.mode,
            "warm_start_from": str(train_plan.warm_start_from.adapter_id)
            if train_plan.warm_start_from
            else None,
            "full_retrain_reason": train_plan.full_retrain_reason or None,
            **train_plan.selection.as_dict(),
        },
        "code_version": provenance.code_version(
            [
                "train.py",
                "training/packing.py",
                "model/loading.py",
                "model/chat.py",
                "model/tiny.py",
            ]
        ),
        "trainable_params": trainable,
        "total_params": total,
        "base_model": train_plan.base_model,
        "config": asdict(train_plan.config),
        "warmup_steps_used": train_plan.warmup_steps,
    }


def _throughput(
    train_plan: TrainPlan, trainer: Any, wall_s: float, resumed_from: int, gpu_type: str | None
) -> dict[str, Any]:
    """Measured tokens/s per GPU of this invocation: the figure the next estimate on this GPU
    type plans with (``cost.measured_tokens_per_second``); None on a CPU."""
    steps = trainer.state.global_step - resumed_from
    tokens = steps * train_plan.planned_tokens / max(train_plan.optimizer_steps, 1)
    processes = trainer.accelerator.num_processes
    per_process = tokens / max(wall_s, 1e-9) / processes
    return {
        "gpu_type": gpu_type,
        "tokens": round(tokens),
        "tokens_per_second": round(tokens / max(wall_s, 1e-9), 1),
        "tokens_per_second_per_gpu": round(per_process, 1) if gpu_type else None,
        "planned_tokens_per_second": train_plan.cost.tokens_per_second,
    }


def _upload(
    storage: Storage, adapter_dir: Path, weights_key: str, config_key: str, db: Any
) -> tuple[Any, Any]:
    """Upload weights then config, immutably; undo the first when the second fails.

    An object already at the key that no registry row references is a leftover of a run that
    failed after uploading: it is replaced. One that a row references is never touched.
    """

    if registry.artifact_referenced(db, storage.uri(weights_key)):
        raise RegistryError(f"{storage.uri(weights_key)} is already registered; not replacing it")
    for key in (weights_key, config_key):
        if storage.exists(key):
            log.warning("replacing unregistered leftover %s", storage.uri(key))
            storage.delete(key)
    weights = storage.upload(
        adapter_dir / "adapter_model.safetensors", weights_key, overwrite=False
    )
    try:
        config = storage.upload(adapter_dir / "adapter_config.json", config_key, overwrite=False)
    except BaseException:
        storage.delete(weights_key)
        raise
    return weights, config
