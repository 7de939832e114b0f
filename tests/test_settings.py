from pathlib import Path

import pytest
from pydantic import ValidationError

from pria_ml.settings import Settings, redact_url


def test_defaults_run_anywhere(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.home == (tmp_path / ".pria").resolve()
    assert settings.storage_url == (tmp_path / ".pria" / "storage").as_uri()
    assert settings.database_url is None
    assert settings.gpu_tier == "pilot"
    assert settings.nightly_budget_usd == 150.0


def test_env_file_beats_defaults_env_beats_file_kwargs_beat_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text(
        "PRIA_SPARK_MASTER=spark://from-dotenv:7077\nPRIA_GPU_TIER=growth\n"
    )
    assert Settings().spark_master == "spark://from-dotenv:7077"
    monkeypatch.setenv("PRIA_SPARK_MASTER", "spark://from-env:7077")
    settings = Settings()
    assert settings.spark_master == "spark://from-env:7077"
    assert settings.gpu_tier == "growth"  # still from .env: precedence is per field
    assert Settings(spark_master="local[2]").spark_master == "local[2]"


def test_nested_gpu_tier_override_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRIA_GPU_TIERS__PILOT__USD_PER_GPU_HOUR", "3.5")
    monkeypatch.setenv("PRIA_GPU_TIERS__PILOT__GPU_TYPE", "A10G")
    monkeypatch.setenv("PRIA_GPU_TIERS__PILOT__TOKENS_PER_SECOND", "1800")
    assert Settings().tier.usd_per_gpu_hour == 3.5


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = Settings(
        database_url="postgresql://pria:hunter2@db.internal:5432/pria",
        pii_key="super-secret-pii-key",
        s3_secret_access_key="aws-secret-value",
        endpoint_rotation_secret="rotation-secret",
    )
    for secret in ("hunter2", "super-secret-pii-key", "aws-secret-value", "rotation-secret"):
        assert secret not in repr(settings) and secret not in str(settings)


def test_unknown_storage_scheme_is_rejected() -> None:
    with pytest.raises(ValidationError, match="file:// or s3://"):
        Settings(storage_url="gs://bucket/x")


def test_unknown_gpu_tier_names_the_setting() -> None:
    with pytest.raises(ValidationError, match="PRIA_GPU_TIER"):
        Settings(gpu_tier="h100-cluster")


def test_redact_url_keeps_everything_but_the_password() -> None:
    assert (
        redact_url("postgresql://u:p@h:1/d?sslmode=require")
        == "postgresql://u:***@h:1/d?sslmode=require"
    )
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
