"""A model directory laid out in a Hugging Face cache as ``snapshot_download`` leaves it, so the
production loading path (hub id + commit, offline from the cache on the volume) runs on the tiny
model: ``blobs/`` named by content hash (sha256 for weights, the git blob sha1 otherwise),
``snapshots/<commit>/`` linking to them, ``refs/main`` naming the commit. Imported by name (the
module name is unique across the test folders)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

REPO_ID = "pria-rehearsal/tiny-mistral"


def blob_name(path: Path) -> str:
    data = path.read_bytes()
    if path.suffix == ".safetensors":  # stored in LFS on the hub: named by sha256
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data, usedforsecurity=False).hexdigest()


def install_snapshot(hub_cache: Path, model_dir: Path, repo_id: str = REPO_ID) -> tuple[Path, str]:
    """Lay ``model_dir``'s files into ``hub_cache`` (``$HF_HOME/hub``) as commit of ``repo_id``;
    return the snapshot directory and the commit (a hash of the file list, 40 hex digits)."""
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    blobs = {p.name: blob_name(p) for p in files}
    listing = "".join(f"{name} {blob}\n" for name, blob in sorted(blobs.items()))
    commit = hashlib.sha1(listing.encode(), usedforsecurity=False).hexdigest()
    repo = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in files:
        blob = repo / "blobs" / blobs[path.name]
        blob.write_bytes(path.read_bytes())
        link = snapshot / path.name
        link.unlink(missing_ok=True)
        os.symlink(os.path.relpath(blob, snapshot), link)
    (repo / "refs" / "main").write_text(commit)
    return snapshot, commit
