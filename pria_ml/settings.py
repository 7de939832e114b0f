"""One settings object for the whole pipeline, built once and passed down.

Values come from, in order of precedence: keyword arguments, ``PRIA_*`` environment variables,
a ``.env`` file in the working directory, then the defaults below. The defaults run anywhere
(embedded PostgreSQL, local storage, a tiny local base model); production sets URLs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Dense (no sparsity) bf16 tensor-core peak and memory of the GPUs the tiers use; see
# docs/training.md ("Throughput from FLOPs") for where each figure comes from.
GPU_SPECS: dict[str, tuple[float, float]] = {  # gpu_type: (peak bf16 TFLOPS, memory GiB)
    "A10G": (70.0, 22.0),
    "A10": (125.0, 22.0),
    "L40S": (362.0, 44.5),
    "A100-80GB": (312.0, 79.0),
    "H100": (989.0, 79.0),
}


class GpuTier(BaseModel):
    """One row of spec section 8's tier table, plus what the pre-flight checks plan with."""

    gpu_type: str
    usd_per_gpu_hour: Annotated[float, Field(gt=0)]
    peak_bf16_tflops: Annotated[float, Field(gt=0)] | None = Field(
        None, description="Dense bf16 tensor-core peak; unset takes GPU_SPECS[gpu_type]."
    )
    gpu_memory_gib: Annotated[float, Field(gt=0)] | None = Field(
        None, description="GPU memory usable by PyTorch; unset takes GPU_SPECS[gpu_type]."
    )
    planning_mfu: Annotated[float, Field(gt=0, le=1)] = Field(
        0.30, description="Model FLOPs utilisation assumed until a run on this tier is measured."
    )
    tokens_per_second: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description="Fixed QLoRA throughput; unset derives it from FLOPs, then from measured runs.",
    )

    @model_validator(mode="after")
    def _known_gpu(self) -> GpuTier:
        spec = GPU_SPECS.get(self.gpu_type)
        if spec is None and (self.peak_bf16_tflops is None or self.gpu_memory_gib is None):
            raise ValueError(
                f"gpu_type {self.gpu_type!r} is not one of {sorted(GPU_SPECS)}: set its "
                "peak_bf16_tflops and gpu_memory_gib in the tier"
            )
        if spec is not None:
            self.peak_bf16_tflops = self.peak_bf16_tflops or spec[0]
            self.gpu_memory_gib = self.gpu_memory_gib or spec[1]
        return self


# Spec section 8: Pilot 0.75 GPU-h for $1.60, Growth 1.25 GPU-h for $2.70 (A10G), Enterprise
# 2.0 GPU-h for $4.80 (L40S); the $/GPU-hour below is that table's ratio.
DEFAULT_GPU_TIERS: dict[str, GpuTier] = {
    "pilot": GpuTier(gpu_type="A10G", usd_per_gpu_hour=2.13),
    "growth": GpuTier(gpu_type="A10G", usd_per_gpu_hour=2.16),
    "enterprise": GpuTier(gpu_type="L40S", usd_per_gpu_hour=2.40),
}


class Settings(BaseSettings):
    """Every knob of pria-ml. Field ``x`` is set by the environment variable ``PRIA_X``."""

    model_config = SettingsConfigDict(
        env_prefix="PRIA_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    home: Path = Field(
        Path(".pria"),
        description="State directory: embedded database, local storage, tiny model.",
    )
    database_url: SecretStr | None = Field(
        None, description="Registry PostgreSQL URL; unset starts an embedded PostgreSQL."
    )
    source_database_url: SecretStr | None = Field(
        None,
        description="Source (read-replica) PostgreSQL URL; unset uses the embedded server.",
    )
    db_retry_deadline_s: Annotated[float, Field(ge=0)] = Field(
        60.0,
        description="How long a lost database connection is retried (a restart, a failover) "
        "before the command fails with DatabaseUnavailable; 0 tries once.",
    )
    storage_url: str | None = Field(
        None, description="Object storage root, file:// or s3://; unset is <home>/storage."
    )
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (Supabase storage); unset is AWS."
    )
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    spark_master: str = "local[*]"
    spark_driver_memory: str = "2g"
    base_model: str | None = Field(
        None,
        description="Hub id or local directory of the base model; unset builds a tiny local one.",
    )
    tiny_pretrain_steps: Annotated[int, Field(ge=0)] = Field(
        0,
        description="Pre-training steps of the tiny local base built on first use (unset "
        "base_model only); 0 keeps it random-initialised. The demo and `model build-tiny` "
        "pre-train 220 steps unless this is set.",
    )
    pii_key: SecretStr | None = Field(
        None, description="HMAC key for stable PII pseudonyms in extracted datasets."
    )
    extract_workers: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Processes that run PII detection during extract; unset uses every core.",
    )
    gpu_tier: str = "pilot"
    gpu_tiers: dict[str, GpuTier] = Field(default_factory=lambda: dict(DEFAULT_GPU_TIERS))
    nightly_budget_usd: Annotated[float, Field(gt=0)] = 150.0
    cost_alert_usd_30d: Annotated[float, Field(gt=0)] = 200.0
    gpu_machine: bool = Field(
        False,
        description="This process runs on a GPU machine booted for the night (Fly): nightly "
        "records the machine's seconds from boot to exit x the tier's rate as the night's cost.",
    )
    gpu_machine_gpus: Annotated[int, Field(ge=1)] = Field(
        1, description="GPUs the night's GPU machine bills for (PRIA_GPU_MACHINE)."
    )
    spot_check_max_failure_share: Annotated[float, Field(ge=0, le=1)] = Field(
        0.2,
        description="Share of a week's spot-checked conversations that may be wrong or unsafe; "
        "a week over it blocks promotion until acknowledged (pria-ml spot-check ack).",
    )
    train_max_dropped_share: Annotated[float, Field(ge=0, le=1)] = Field(
        0.02,
        description="Share of train examples a night may drop as too long before it fails.",
    )
    endpoint_rotation_url: str | None = Field(
        None, description="Edge Function that rotates MODEL_ENDPOINT after a change of prod."
    )
    endpoint_rotation_secret: SecretStr | None = None
    safety_classifier: str | None = Field(
        None,
        description="Directory of a Hugging Face text-classification model used as the safety "
        "classifier; unset uses the offline default (privacy detectors + alt-profanity-check).",
    )
    benchmarks_dir: Path | None = Field(
        None, description="Directory of lm-eval task files (*.json); unset uses benchmarks/."
    )
    eval_max_samples: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Evaluate at most this many samples per split (unset: all of them)."
    )
    eval_batch_size: Annotated[int, Field(ge=1)] = Field(
        16, description="Prompts per batch in evaluation's greedy generation."
    )
    eval_latency_prompts: Annotated[int, Field(ge=4)] = Field(
        64, description="Val prompts timed for the paired latency comparison."
    )
    eval_latency_repeats: Annotated[int, Field(ge=1)] = Field(
        3, description="Timed generations per prompt and model (the median is kept)."
    )
    eval_benchmark_limit: Annotated[int, Field(ge=1)] | None = Field(
        None, description="Run at most this many documents per benchmark task (unset: all)."
    )
    slack_webhook_url: SecretStr | None = Field(
        None, description="Slack incoming webhook of #ml-ops; unset sends no notifications."
    )
    metrics_textfile_dir: Path | None = Field(
        None,
        description="Directory of node exporter's textfile collector; nightly writes *.prom there.",
    )
    pushgateway_url: str | None = Field(
        None, description="Prometheus Pushgateway the nightly pushes its metrics to; unset: none."
    )

    @field_validator("storage_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("file", "s3"):
            raise ValueError(f"{value!r} must start with file:// or s3://")
        return value

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if self.storage_url is None:
            self.storage_url = (self.home / "storage").as_uri()
        if self.gpu_tier not in self.gpu_tiers:
            raise ValueError(
                f"gpu_tier {self.gpu_tier!r} is not one of {sorted(self.gpu_tiers)} "
                "(set PRIA_GPU_TIER or add the tier to PRIA_GPU_TIERS)"
            )
        return self

    @property
    def tier(self) -> GpuTier:
        return self.gpu_tiers[self.gpu_tier]

    @property
    def tiny_model_dir(self) -> Path:
        """Where the embedded-default tiny base model is built when ``base_model`` is unset."""
        return self.home / "models" / "tiny-mistral"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (user, host and path kept)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
