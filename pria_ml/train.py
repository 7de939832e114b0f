"""Nightly QLoRA fine-tune: train split -> adapter in storage -> ``candidate`` registry row.

The same code runs on a laptop CPU with the tiny model and on an A10G/L40S with
Mistral-7B-Instruct (``accelerate launch`` for several GPUs). Read top to bottom, a run is:

1. ``plan``: read ``datasets/D/features/train.parquet``, render every example with the base
   model's chat template, count tokens, work out steps and warm-up, estimate the cost and refuse
   a run over the nightly budget. ``--dry-run`` stops here and prints the plan.
2. Load the base model in 4-bit NF4 with double quantisation, prepare it for k-bit training and
   add a LoRA adapter (rank 64 on every linear layer by default).
3. Train with ``transformers.Trainer``: loss on completion tokens only, examples packed into
   rows with a block-diagonal causal mask (no attention across examples), gradient accumulation
   to the effective batch, checkpoints in a local run directory that a restarted run resumes.
4. Save the adapter as ``adapters/D.safetensors`` + ``adapters/D.config.json``, upload both
   (never replacing an object a registry row references) and register a ``candidate``.

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
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import cost, provenance
from pria_ml.contract import adapter_keys, features_key
from pria_ml.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    RegistryError,
    StorageError,
    TrainingError,
)
from pria_ml.loading import check_causal_lm, load_base_model, load_tokenizer
from pria_ml.packing import IGNORE_INDEX, Example, PackingCollator, tokenize_rows

if TYPE_CHECKING:
    from pria_ml.settings import Settings
    from pria_ml.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a run. Names follow TRL's ``SFTConfig`` / ``ModelConfig``.

    The defaults are spec section 4's: lr 8e-5, effective batch 128 (8 per device x 16
    accumulation steps on one GPU), 1 epoch, warm-up 50, LoRA rank 64 on all linear layers.
    """

    learning_rate: float = 8e-5
    num_train_epochs: float = 1.0
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 16
    warmup_steps: int = 50
    # Short runs cap the warm-up at this share of the optimizer steps (see docs/training.md).
    warmup_cap_ratio: float = 0.1
    max_steps: int = -1
    max_length: int = 2048
    packing: bool = True
    gradient_checkpointing: bool = True
    seed: int = 42
    lora_r: int = 64
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("all-linear",)
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 10

    def __post_init__(self) -> None:
        checks = {
            "learning_rate": self.learning_rate > 0,
            "num_train_epochs": self.num_train_epochs > 0,
            "per_device_train_batch_size": self.per_device_train_batch_size >= 1,
            "gradient_accumulation_steps": self.gradient_accumulation_steps >= 1,
            "warmup_steps": self.warmup_steps >= 0,
            "warmup_cap_ratio": 0 <= self.warmup_cap_ratio <= 1,
            "max_steps": self.max_steps == -1 or self.max_steps >= 1,
            "max_length": self.max_length >= 16,
            "lora_r": self.lora_r >= 1,
            "lora_dropout": 0 <= self.lora_dropout < 1,
            "save_steps": self.save_steps >= 1,
            "logging_steps": self.logging_steps >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
            raise ConfigError(f"invalid training option(s): {shown}")

    @property
    def effective_batch_size(self) -> int:
        """Examples per optimizer step on one process (times the number of GPUs)."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with every non-None override applied (the CLI's options)."""
        known = {f.name for f in fields(self)}
        unknown = set(overrides) - known
        if unknown:
            raise ConfigError(f"unknown training option(s): {sorted(unknown)}")
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


# "demo": the tiny random-init base learns nothing useful at the spec's lr 8e-5 in the few
# hundred steps a demo affords (measured: 22 % exact match after 200 steps vs 98.5 % at 1e-3,
# docs/decisions.md), so the demo and the tests use their own, documented, profile.
PROFILES: dict[str, TrainConfig] = {
    "spec": TrainConfig(),
    "demo": TrainConfig(
        learning_rate=1e-3,
        num_train_epochs=3.0,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=1,
        warmup_steps=10,
        max_length=512,
        gradient_checkpointing=False,
        save_steps=20,
        logging_steps=5,
    ),
}


# Reading the train split -------------------------------------------------------------------
def load_split(storage: Storage, date: datetime.date, split: str) -> list[dict[str, Any]]:
    """Rows (``prompt``, ``completion``) of a feature split; DataError when missing or empty."""
    key = features_key(date, f"{split}.parquet")
    if not storage.exists(key):
        raise DataError(
            f"no {split} split at {storage.uri(key)}: run `pria-ml build-features --date {date}`"
        )
    try:
        table = storage.read_parquet(key)
    except StorageError as exc:
        raise DataError(f"cannot read the {split} split {storage.uri(key)}: {exc}") from exc
    missing = {"prompt", "completion"} - set(table.column_names)
    if missing:
        raise DataError(
            f"{storage.uri(key)} lacks column(s) {sorted(missing)} (see docs/data-contract.md)"
        )
    if table.num_rows == 0:
        raise DataError(f"the {split} split {storage.uri(key)} has no rows; nothing to train on")
    return table.select(["prompt", "completion"]).to_pylist()


# Adapter -----------------------------------------------------------------------------------
def add_adapter(model: Any, config: TrainConfig) -> Any:
    """Prepare the 4-bit model for training and wrap it with a fresh LoRA adapter."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import set_seed

    model = prepare_model_for_kbit_training(
        model, use_gradient_checkpointing=config.gradient_checkpointing
    )
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


LINEAR_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_parameter_count(
    model_config: Any, r: int, targets: tuple[str, ...] = ("all-linear",)
) -> int:
    """LoRA parameters of a Mistral/Llama-shaped model: r x (in + out) per adapted projection.

    ``all-linear`` means every projection in a decoder layer (PEFT leaves ``lm_head`` out). For
    Mistral-7B (hidden 4096, intermediate 14336, 32 layers, 8 KV heads of 128) a layer has
    r x 81,920 adapter parameters, so rank 64 is 167,772,160 (~168 M) and rank 32 is
    83,886,080 (~84 M): the spec's "~85 M" matches rank 32, not its own rank 64.
    """
    hidden = model_config.hidden_size
    head_dim = getattr(model_config, "head_dim", None) or hidden // model_config.num_attention_heads
    kv = model_config.num_key_value_heads * head_dim
    q = model_config.num_attention_heads * head_dim
    inter = model_config.intermediate_size
    shapes = {
        "q_proj": (hidden, q),
        "k_proj": (hidden, kv),
        "v_proj": (hidden, kv),
        "o_proj": (q, hidden),
        "gate_proj": (hidden, inter),
        "up_proj": (hidden, inter),
        "down_proj": (inter, hidden),
    }
    chosen = LINEAR_PROJECTIONS if "all-linear" in targets else targets
    per_layer = sum(r * sum(shapes[name]) for name in chosen)
    return per_layer * model_config.num_hidden_layers


# Plan --------------------------------------------------------------------------------------
@dataclass
class TrainPlan:
    """Everything decided before any weight is loaded: data, schedule, cost, the command."""

    date: datetime.date
    base_model: str
    config: TrainConfig
    examples: list[Example] = field(repr=False)
    dropped_examples: int
    train_tokens_per_epoch: int
    completion_tokens_per_epoch: int
    optimizer_steps: int
    warmup_steps: int
    planned_tokens: int
    cost: cost.CostEstimate
    train_sha256: str
    run_dir: Path

    def accelerate_command(self, num_processes: int = 1) -> str:
        """The equivalent multi-GPU launch (spec prompt block ML1-TRAIN-CMD)."""
        c = self.config
        args = [
            "accelerate", "launch", "--num_processes", str(num_processes),
            "--mixed_precision", "bf16", "-m", "pria_ml", "train",
            "--date", self.date.isoformat(),
            "--learning-rate", f"{c.learning_rate:g}",
            "--num-train-epochs", f"{c.num_train_epochs:g}",
            "--per-device-train-batch-size", str(c.per_device_train_batch_size),
            "--gradient-accumulation-steps", str(c.gradient_accumulation_steps),
            "--warmup-steps", str(c.warmup_steps),
            "--max-length", str(c.max_length),
            "--lora-r", str(c.lora_r),
            "--lora-alpha", str(c.lora_alpha),
            "--lora-dropout", f"{c.lora_dropout:g}",
            "--lora-target-modules", ",".join(c.lora_target_modules),
            "--seed", str(c.seed),
        ]  # fmt: skip
        if c.max_steps > 0:
            args += ["--max-steps", str(c.max_steps)]
        return f"PRIA_BASE_MODEL={shlex.quote(self.base_model)} " + shlex.join(args)

    def summary(self) -> dict[str, Any]:
        """The plan as plain values, for the terminal and for metrics_json."""
        return {
            "date": self.date.isoformat(),
            "base_model": self.base_model,
            "examples": len(self.examples),
            "dropped_examples": self.dropped_examples,
            "train_tokens_per_epoch": self.train_tokens_per_epoch,
            "completion_tokens_per_epoch": self.completion_tokens_per_epoch,
            "effective_batch_size": self.config.effective_batch_size,
            "optimizer_steps": self.optimizer_steps,
            "warmup_steps": self.warmup_steps,
            "planned_tokens": self.planned_tokens,
            "estimate": self.cost.as_dict(),
            "run_dir": str(self.run_dir),
        }

    def fingerprint(self) -> str:
        """What a checkpoint must have been trained with to be resumed by this plan."""
        knobs = asdict(self.config)
        for name in ("save_steps", "save_total_limit", "logging_steps"):
            knobs.pop(name)
        blob = json.dumps(
            {"config": knobs, "base_model": self.base_model, "train_sha256": self.train_sha256},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def schedule(examples: int, config: TrainConfig, world_size: int = 1) -> tuple[int, int]:
    """``(optimizer_steps, warmup_steps)``; warm-up capped at ``warmup_cap_ratio`` of the run."""
    if config.max_steps > 0:
        steps = config.max_steps
    else:
        per_epoch = math.ceil(examples / (config.effective_batch_size * world_size))
        steps = math.ceil(per_epoch * config.num_train_epochs)
    warmup = min(config.warmup_steps, math.floor(config.warmup_cap_ratio * steps))
    return steps, warmup


def run_dir(settings: Settings, date: datetime.date) -> Path:
    return settings.home / "runs" / f"train-{date.isoformat()}"


def plan(settings: Settings, date: datetime.date, config: TrainConfig) -> TrainPlan:
    """Read and tokenise the train split, schedule the run, estimate and guard its cost.

    Raises DataError (missing/empty split, no usable example), ConfigError (base model not a
    causal LM, no chat template) and BudgetExceeded (estimate over the nightly budget).
    """
    from accelerate import PartialState

    from pria_ml import tinymodel
    from pria_ml.storage import open_storage

    storage = open_storage(settings)
    rows = load_split(storage, date, "train")
    train_sha256 = hashlib.sha256(
        storage.read_bytes(features_key(date, "train.parquet"))
    ).hexdigest()
    base_model = tinymodel.base_model_path(settings)
    check_causal_lm(base_model)
    tokenizer = load_tokenizer(base_model)
    examples, dropped = tokenize_rows(tokenizer, rows, config.max_length)
    if not examples:
        raise DataError(
            f"none of the {len(rows)} train examples of {date} fits --max-length "
            f"{config.max_length} with a non-empty completion"
        )
    tokens = sum(len(e.input_ids) for e in examples)
    world_size = PartialState().num_processes
    steps, warmup = schedule(len(examples), config, world_size)
    if config.max_steps > 0:
        seen = config.max_steps * config.effective_batch_size * world_size
    else:
        seen = len(examples) * config.num_train_epochs
    planned_tokens = round(tokens / len(examples) * seen)
    estimate = cost.estimate(
        planned_tokens,
        tier_name=settings.gpu_tier,
        tier=settings.tier,
        budget_usd=settings.nightly_budget_usd,
    )
    cost.check_budget(estimate)
    return TrainPlan(
        date=date,
        base_model=base_model,
        config=config,
        examples=examples,
        dropped_examples=dropped,
        train_tokens_per_epoch=tokens,
        completion_tokens_per_epoch=sum(sum(t != IGNORE_INDEX for t in e.labels) for e in examples),
        optimizer_steps=steps,
        warmup_steps=warmup,
        planned_tokens=planned_tokens,
        cost=estimate,
        train_sha256=train_sha256,
        run_dir=run_dir(settings, date),
    )


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
    """Create the run directory, or check it belongs to this plan; return the resume point."""
    directory = train_plan.run_dir
    stamp = directory / "plan.json"
    fingerprint = train_plan.fingerprint()
    if stamp.is_file():
        recorded = json.loads(stamp.read_text()).get("fingerprint")
        if recorded != fingerprint:
            raise CheckpointError(
                f"{directory} holds checkpoints of a run with other options or data; rerun "
                f"with the same options, or delete {directory} to start over"
            )
        return last_checkpoint(directory)
    from accelerate import PartialState

    state = PartialState()
    if state.is_main_process:  # under accelerate launch, one writer
        directory.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps({"fingerprint": fingerprint, **train_plan.summary()}, indent=2))
    state.wait_for_everyone()
    return None


# Run ---------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """A finished run: where the adapter went and what was registered."""

    adapter_id: Any  # uuid.UUID; None on non-main processes of a multi-GPU run
    artifact_uri: str
    artifact_sha256: str
    config_uri: str
    metrics: dict[str, Any]
    plan: TrainPlan
    model: Any = field(default=None, repr=False)  # the trained PeftModel, still in memory


def run(settings: Settings, date: datetime.date, config: TrainConfig) -> TrainResult:
    """Train an adapter on ``date``'s train split, upload it and register a ``candidate``.

    Reads ``datasets/D/features/{train,val}.parquet``; writes checkpoints under
    ``<home>/runs/train-D`` (resumed when the run is restarted), then ``adapters/D.safetensors``
    and ``adapters/D.config.json`` and one ``model_registry`` row. Raises DataError,
    ConfigError, BudgetExceeded, CheckpointError, TrainingError (out of memory) and
    RegistryError (the adapter for D is already registered); on any error nothing is left
    uploaded and the registry is untouched.
    """
    from pria_ml import registry
    from pria_ml.db import database
    from pria_ml.storage import open_storage

    storage = open_storage(settings)
    db = database(settings)
    weights_key, config_key = adapter_keys(date)
    if registry.artifact_referenced(db, storage.uri(weights_key)):
        raise RegistryError(
            f"{storage.uri(weights_key)} is already registered in model_registry; adapters "
            f"are immutable, so the {date} adapter is not trained again"
        )
    train_plan = plan(settings, date, config)
    resume = _prepare_run_dir(train_plan)
    with _out_of_memory_is_clear(train_plan):
        trainer, model, trainable, total = _build_trainer(train_plan)
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
        return TrainResult(None, "", "", "", {}, train_plan)

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


def _build_trainer(train_plan: TrainPlan) -> tuple[Any, Any, int, int]:
    import torch
    from transformers import Trainer, TrainingArguments

    config = train_plan.config
    tokenizer = load_tokenizer(train_plan.base_model)
    model = add_adapter(load_base_model(train_plan.base_model), config)
    trainable, total = trainable_parameters(model)
    print(f"trainable params: {trainable:,} || all params: {total:,}")
    cuda = torch.cuda.is_available()
    args = TrainingArguments(
        output_dir=str(train_plan.run_dir),
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        warmup_steps=train_plan.warmup_steps,
        lr_scheduler_type="linear",
        optim="adamw_torch",
        seed=config.seed,
        data_seed=config.seed,
        bf16=cuda and torch.cuda.is_bf16_supported(),
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        remove_unused_columns=False,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=[asdict(e) for e in train_plan.examples],
        data_collator=PackingCollator(tokenizer.pad_token_id, config.max_length, config.packing),
    )
    return trainer, model, trainable, total


@contextmanager
def _out_of_memory_is_clear(train_plan: TrainPlan) -> Iterator[None]:
    """Turn running out of memory while loading or training into one TrainingError that says
    which options to change."""
    import torch

    config = train_plan.config
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
        # On a CPU, PyTorch reports a failed allocation as a plain RuntimeError.
        out_of_memory = isinstance(exc, torch.OutOfMemoryError | MemoryError) or (
            "can't allocate memory" in str(exc)
        )
        if not out_of_memory:
            raise
        raise TrainingError(
            f"out of memory training {train_plan.base_model} with "
            f"--per-device-train-batch-size {config.per_device_train_batch_size} and "
            f"--max-length {config.max_length}: halve the batch size and double "
            f"--gradient-accumulation-steps (same effective batch), or lower --max-length, "
            f"or use a GPU with more memory ({type(exc).__name__})"
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
    manifest_key = features_key(train_plan.date, "manifest.json")
    manifest = None
    if storage.exists(manifest_key):
        manifest = {
            "uri": storage.uri(manifest_key),
            "sha256": hashlib.sha256(storage.read_bytes(manifest_key)).hexdigest(),
        }
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
        "resumed_from_step": resumed_from,
        "epochs": trainer.state.epoch,
        "wall_time_s": round(wall_s, 3),
        "device": device,
        "num_gpus": num_gpus,
        "gpu_type": settings.tier.gpu_type if num_gpus else None,
        "gpu_hours": gpu_hours,
        "cost_usd": gpu_hours * settings.tier.usd_per_gpu_hour,
        "estimate": train_plan.cost.as_dict(),
        "dataset": {
            "date": train_plan.date.isoformat(),
            "train_uri": storage.uri(features_key(train_plan.date, "train.parquet")),
            "train_sha256": train_plan.train_sha256,
            "manifest": manifest,
        },
        "code_version": provenance.code_version(
            ["train.py", "packing.py", "loading.py", "chat.py", "tinymodel.py"]
        ),
        "trainable_params": trainable,
        "total_params": total,
        "base_model": train_plan.base_model,
        "config": asdict(train_plan.config),
        "warmup_steps_used": train_plan.warmup_steps,
    }


def _upload(
    storage: Storage, adapter_dir: Path, weights_key: str, config_key: str, db: Any
) -> tuple[Any, Any]:
    """Upload weights then config, immutably; undo the first when the second fails.

    An object already at the key that no registry row references is a leftover of a run that
    failed after uploading: it is replaced. One that a row references is never touched.
    """
    from pria_ml import registry

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
