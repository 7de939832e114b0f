"""One settings object for the whole pipeline, built once and passed down.

Values come from, in order of precedence: keyword arguments, ``PRIA_*`` environment variables,
a ``.env`` file in the working directory, then the defaults below. The defaults run anywhere
(embedded PostgreSQL, local storage, a tiny local base model); production sets URLs.

Production fails closed: in production mode (``PRIA_MODE=production``, or a registry database
URL that is not a local socket) every setting in ``PRODUCTION_REQUIRED`` must be set explicitly,
or ``missing_for_production`` names it and every command refuses to start (exit 2).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, PrivateAttr, SecretStr, field_validator, model_validator
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
    fly_gpu_kind: str | None = Field(
        None, description="The Fly Machines API gpu_kind of this GPU (deploy/fly/machine.py)."
    )
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


# Spec section 8's tiers, read from the table the Fly machine's GPU kind also comes from.
GPU_TIERS_FILE = Path(__file__).parent / "assets" / "gpu_tiers.toml"
DEFAULT_GPU_TIERS: dict[str, GpuTier] = {
    name: GpuTier(**row) for name, row in tomllib.loads(GPU_TIERS_FILE.read_text()).items()
}

# What production cannot run without, by field: an unset one would silently fall back to a
# laptop default (local storage, the tiny model, no pseudonym key, no endpoint rotation).
PRODUCTION_REQUIRED = (
    "database_url",
    "storage_url",
    "base_model",
    "base_model_revision",
    "pii_key",
    "endpoint_rotation_url",
    "endpoint_rotation_secret",
)
Mode = Literal["local", "production"]
_COMMIT = re.compile(r"[0-9a-f]{40}")


class Settings(BaseSettings):
    """Every knob of pria-ml. Field ``x`` is set by the environment variable ``PRIA_X``."""

    model_config = SettingsConfigDict(
        env_prefix="PRIA_",
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
    )

    mode: Mode | None = Field(
        None,
        description="production: every setting of PRODUCTION_REQUIRED must be set; local: "
        "embedded defaults. Unset: production when database_url is set and is not a local "
        "socket (the embedded server's kind of URL), local otherwise.",
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
    base_model_revision: str | None = Field(
        None,
        description="Commit hash of the hub repository the base model is pinned to; the "
        "weights are downloaded once into HF_HOME at that commit and verified.",
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

    @field_validator("base_model_revision")
    @classmethod
    def _commit_hash(cls, value: str | None) -> str | None:
        if value is not None and not _COMMIT.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a commit hash (40 lowercase hex digits): pin the base model to "
                "a commit of its hub repository, not a branch or tag"
            )
        return value

    _defaulted: set[str] = PrivateAttr(default_factory=set)

    @model_validator(mode="after")
    def _resolve(self) -> Settings:
        self.home = self.home.expanduser().resolve()
        if self.storage_url is None:
            self.storage_url = (self.home / "storage").as_uri()
            self._defaulted.add("storage_url")
        if self.gpu_tier not in self.gpu_tiers:
            raise ValueError(
                f"gpu_tier {self.gpu_tier!r} is not one of {sorted(self.gpu_tiers)} "
                "(set PRIA_GPU_TIER or add the tier to PRIA_GPU_TIERS)"
            )
        return self

    @property
    def deployment(self) -> Mode:
        """The mode in force: ``mode`` when set, otherwise production whenever the registry
        database is a configured server that is not reached through a local socket."""
        if self.mode is not None:
            return self.mode
        if self.database_url is None:
            return "local"
        return "local" if _local_socket(self.database_url.get_secret_value()) else "production"

    def missing_for_production(self) -> list[str]:
        """The ``PRIA_*`` variables production needs that are not set; empty in local mode."""
        if self.deployment != "production":
            return []
        missing = []
        for name in PRODUCTION_REQUIRED:
            value = getattr(self, name)
            if name == "storage_url" and name in self._defaulted:
                value = None if value == (self.home / "storage").as_uri() else value
            if value is None:
                missing.append(f"PRIA_{name.upper()}")
        return missing

    @property
    def tier(self) -> GpuTier:
        return self.gpu_tiers[self.gpu_tier]

    @property
    def tiny_model_dir(self) -> Path:
        """Where the embedded-default tiny base model is built when ``base_model`` is unset."""
        return self.home / "models" / "tiny-mistral"


def _local_socket(url: str) -> bool:
    """Whether a PostgreSQL URL reaches its server through a Unix socket (``host=/dir`` or a
    host that is a path), as the embedded server is reached; TCP, loopback included, is not:
    a tunnel to a production database is a loopback address too."""
    from urllib.parse import parse_qs

    parts = urlsplit(url)
    hosts = parse_qs(parts.query).get("host", []) + ([parts.hostname] if parts.hostname else [])
    return bool(hosts) and all(host.startswith("/") for host in hosts)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (user, host and path kept)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
