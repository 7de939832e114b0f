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


class GpuTier(BaseModel):
    """One row of spec section 8's tier table, plus the throughput the cost guard plans with."""

    gpu_type: str
    usd_per_gpu_hour: Annotated[float, Field(gt=0)]
    # QLoRA training throughput of the production base model on this GPU (tokens/s). Planning
    # figure until a measured one is recorded in model_registry.metrics_json by a real run.
    tokens_per_second: Annotated[float, Field(gt=0)]


# Spec section 8: Pilot 0.75 GPU-h for $1.60, Growth 1.25 GPU-h for $2.70 (A10G), Enterprise
# 2.0 GPU-h for $4.80 (L40S); the $/GPU-hour below is that table's ratio.
DEFAULT_GPU_TIERS: dict[str, GpuTier] = {
    "pilot": GpuTier(gpu_type="A10G", usd_per_gpu_hour=2.13, tokens_per_second=2_000),
    "growth": GpuTier(gpu_type="A10G", usd_per_gpu_hour=2.16, tokens_per_second=2_000),
    "enterprise": GpuTier(gpu_type="L40S", usd_per_gpu_hour=2.40, tokens_per_second=4_500),
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
        220,
        description="Pre-training steps of the tiny local base on the seeded agent's "
        "conversations (unset base_model only); 0 keeps it random-initialised.",
    )
    pii_key: SecretStr | None = Field(
        None, description="HMAC key for stable PII tokens in extracted datasets."
    )
    gpu_tier: str = "pilot"
    gpu_tiers: dict[str, GpuTier] = Field(default_factory=lambda: dict(DEFAULT_GPU_TIERS))
    nightly_budget_usd: Annotated[float, Field(gt=0)] = 150.0
    cost_alert_usd_30d: Annotated[float, Field(gt=0)] = 200.0
    endpoint_rotation_url: str | None = Field(
        None, description="Edge Function that rotates MODEL_ENDPOINT after a change of prod."
    )
    endpoint_rotation_secret: SecretStr | None = None

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
