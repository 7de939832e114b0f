"""The base model's weights, pinned to a commit and verified: downloaded once, then read from
the Hugging Face cache (``HF_HOME``, the Fly volume in production) on every later night.

``PRIA_BASE_MODEL`` names a hub repository and ``PRIA_BASE_MODEL_REVISION`` one of its commits.
The first load downloads that commit's weights, tokenizer and configs (nothing else: not the
duplicate ``consolidated.safetensors`` Mistral also publishes) and checks every file against
the name the cache stores it under, which is its content hash (sha256 for large files, the git
blob sha1 for small ones). A verified snapshot is stamped, so later nights only check that each
file is still the blob that was verified, without reading 14.5 GB again. A download cut off by
a killed machine leaves no stamp and is resumed and verified by the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from pathlib import Path

from pria_ml.errors import ArtifactMismatch, ConfigError
from pria_ml.settings import Settings

log = logging.getLogger(__name__)

# What training and evaluation read; the rest of a repository is never downloaded.
ALLOW = ["*.json", "*.safetensors", "tokenizer*"]
IGNORE = ["consolidated*", "original/*"]
_CHUNK = 1 << 20


def base_model_source(settings: Settings) -> str:
    """What ``from_pretrained`` should load for ``PRIA_BASE_MODEL`` (set): a local directory
    as it is; a hub id pinned to ``PRIA_BASE_MODEL_REVISION`` as its verified snapshot
    directory in the Hugging Face cache (downloaded on first use); a hub id without a
    revision (local mode only: production refuses to start without one) as the id."""

    name = settings.base_model
    assert name is not None
    directory = Path(name).expanduser()
    if directory.is_dir():
        return str(directory)
    if settings.base_model_revision is None:
        return name
    return str(pinned_snapshot(name, settings.base_model_revision))


def pinned_snapshot(repo_id: str, revision: str) -> Path:
    """The snapshot of ``repo_id`` at commit ``revision`` in the Hugging Face cache, downloaded
    when it is not complete there, and verified. Raises ConfigError (cannot be downloaded, or
    not complete while offline) and ArtifactMismatch (a file is not the one published)."""

    snapshot = _cached_snapshot(repo_id, revision)
    if snapshot is not None and _stamp_holds(snapshot, revision):
        return snapshot
    if snapshot is None or not _complete(snapshot):
        snapshot = _download(repo_id, revision)
    files = verify_snapshot(snapshot)
    _write_stamp(snapshot, revision, files)
    log.info("verified %s@%s: %d files", repo_id, revision, len(files))
    return snapshot


def _cached_snapshot(repo_id: str, revision: str) -> Path | None:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        path = snapshot_download(
            repo_id, revision=revision, local_files_only=True, allow_patterns=ALLOW,
            ignore_patterns=IGNORE,
        )  # fmt: skip
    except (LocalEntryNotFoundError, FileNotFoundError):
        return None
    return Path(path)


def _download(repo_id: str, revision: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    log.info("downloading %s@%s into the Hugging Face cache (once)", repo_id, revision)
    try:
        path = Path(
            snapshot_download(
                repo_id, revision=revision, allow_patterns=ALLOW, ignore_patterns=IGNORE
            )
        )
    except (HfHubHTTPError, LocalEntryNotFoundError, OSError) as exc:
        raise ConfigError(
            f"cannot download PRIA_BASE_MODEL={repo_id!r} at PRIA_BASE_MODEL_REVISION="
            f"{revision}: {exc} (check the id and commit, HF_TOKEN for a gated model, and "
            "that the hub is reachable; offline, the snapshot must already be in HF_HOME)"
        ) from None
    if path.name != revision:
        raise ConfigError(f"{repo_id} resolved to {path.name}, not the pinned commit {revision}")
    if not _complete(path):
        raise ConfigError(
            f"{repo_id}@{revision} in {path} is incomplete (a config, a tokenizer and every "
            "safetensors shard are needed): a download cut off while offline, or a repository "
            "without them; run again with the hub reachable to finish it"
        )
    return path


def _complete(snapshot: Path) -> bool:
    """A config, a tokenizer, and every weight shard the index names (a cut-off download
    misses some)."""
    if not (snapshot / "config.json").is_file() or not any(snapshot.glob("tokenizer*")):
        return False
    index = snapshot / "model.safetensors.index.json"
    if index.is_file():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        return all((snapshot / shard).is_file() for shard in shards)
    return any(snapshot.glob("*.safetensors"))


def verify_snapshot(snapshot: Path) -> dict[str, str]:
    """``{file: blob}`` of every file of ``snapshot`` after checking each one's content
    against its blob name in the cache: a 64-digit name is the file's sha256 (large files), a
    40-digit one its git blob sha1. ArtifactMismatch names the first file that differs."""

    files = {}
    for link in sorted(p for p in snapshot.rglob("*") if p.is_file()):
        blob = link.resolve()
        expected = blob.name
        if len(expected) == 64:
            actual = _digest(blob, hashlib.sha256())
        elif len(expected) == 40:
            actual = _digest(blob, hashlib.sha1(usedforsecurity=False), git_blob=True)
        else:
            raise ArtifactMismatch(
                f"{link} is not stored as a Hugging Face cache blob ({blob}), so it cannot be "
                "verified: download the model into HF_HOME through pria-ml"
            )
        if actual != expected:
            raise ArtifactMismatch(
                f"{link} does not match its published hash ({actual} != {expected}): the "
                f"download was corrupted; delete {blob} and run again to download it again"
            )
        files[link.relative_to(snapshot).as_posix()] = expected
    return files


def _digest(path: Path, digest, *, git_blob: bool = False) -> str:
    if git_blob:
        digest.update(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(snapshot: Path, revision: str) -> Path:
    return snapshot.parent.parent / f"pria-verified-{revision}.json"


def _stamp_holds(snapshot: Path, revision: str) -> bool:
    """Whether the snapshot is still exactly what was verified: every stamped file resolves to
    its verified blob with the blob's size, and no file was added."""
    stamp = _stamp_path(snapshot, revision)
    if not stamp.is_file():
        return False
    recorded = json.loads(stamp.read_text())
    files = {p.relative_to(snapshot).as_posix(): p for p in snapshot.rglob("*") if p.is_file()}
    if set(files) != set(recorded["files"]):
        return False
    for name, path in files.items():
        blob = path.resolve()
        if blob.name != recorded["files"][name]["blob"]:
            return False
        if blob.stat().st_size != recorded["files"][name]["size"]:
            return False
    return True


def _write_stamp(snapshot: Path, revision: str, files: dict[str, str]) -> None:
    stamp = _stamp_path(snapshot, revision)
    body = {
        "revision": revision,
        "files": {
            name: {"blob": blob, "size": (snapshot / name).resolve().stat().st_size}
            for name, blob in files.items()
        },
    }
    tmp = stamp.with_name(f".{stamp.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True))
    os.replace(tmp, stamp)
