"""The base model pinned to a commit: read from the Hugging Face cache at that commit, every file
verified against its content hash once, a corrupted or incomplete download refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import huggingface_hub.constants
import pytest
from hub_cache import REPO_ID, install_snapshot

from pria_ml.errors import ArtifactMismatch, ConfigError
from pria_ml.model import loading, weights
from pria_ml.model import tiny as tinymodel
from pria_ml.settings import Settings


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hugging Face cache of this test's own (HF_HOME/hub)."""
    cache = tmp_path / "hf" / "hub"
    cache.mkdir(parents=True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return cache


def test_a_pinned_hub_model_loads_from_its_verified_snapshot(
    hub: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    snapshot, commit = install_snapshot(hub, tiny_model_dir)
    settings = Settings(home=tmp_path, base_model=REPO_ID, base_model_revision=commit)

    assert tinymodel.base_model_path(settings) == str(snapshot)
    stamp = json.loads((snapshot.parent.parent / f"pria-verified-{commit}.json").read_text())
    assert set(stamp["files"]) == {p.name for p in snapshot.iterdir()}
    assert loading.load_tokenizer(str(snapshot)).chat_template  # the files are the model's
    # A second night trusts the stamp: same path, nothing read again.
    assert tinymodel.base_model_path(settings) == str(snapshot)


def test_a_corrupted_weight_file_is_refused_by_name(hub: Path, tiny_model_dir: Path) -> None:
    snapshot, commit = install_snapshot(hub, tiny_model_dir)
    blob = (snapshot / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(ArtifactMismatch, match=r"model\.safetensors does not match its published"):
        weights.pinned_snapshot(REPO_ID, commit)


def test_a_file_changed_after_verification_is_verified_again(
    hub: Path, tiny_model_dir: Path
) -> None:
    snapshot, commit = install_snapshot(hub, tiny_model_dir)
    weights.pinned_snapshot(REPO_ID, commit)
    blob = (snapshot / "config.json").resolve()
    blob.write_text(blob.read_text() + " ")  # another size: the stamp no longer holds
    with pytest.raises(ArtifactMismatch, match=r"config\.json does not match"):
        weights.pinned_snapshot(REPO_ID, commit)


def test_a_commit_not_in_the_cache_offline_is_a_clear_error(hub: Path, tiny_model_dir) -> None:
    install_snapshot(hub, tiny_model_dir)
    with pytest.raises(ConfigError, match="PRIA_BASE_MODEL_REVISION=" + "0" * 40):
        weights.pinned_snapshot(REPO_ID, "0" * 40)


def test_a_cut_off_download_is_not_taken_for_a_model(hub: Path, tiny_model_dir: Path) -> None:
    snapshot, commit = install_snapshot(hub, tiny_model_dir)
    (snapshot / "model.safetensors").unlink()  # killed before the weights landed
    with pytest.raises(ConfigError, match="is incomplete"):
        weights.pinned_snapshot(REPO_ID, commit)


def test_the_revision_is_a_commit_not_a_branch() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="not a commit hash"):
        Settings(base_model_revision="main")
