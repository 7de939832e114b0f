"""Stage completeness as a contract: output is complete exactly when its manifest exists and
every file it lists matches the recorded sha256; consumers refuse anything else, and a rebuild
switches from the old files to the new ones in one step."""

import datetime as dt
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pria_ml import extract, features
from pria_ml.data.contract import (
    dataset_key,
    features_key,
    manifest_complete,
    mismatches,
    read_verified,
    write_manifest,
)
from pria_ml.data.storage import LocalStorage
from pria_ml.errors import ArtifactMismatch, DataError
from pria_ml.settings import Settings

DATE = dt.date(2026, 11, 24)


@pytest.fixture
def storage(tmp_path) -> LocalStorage:
    return LocalStorage((tmp_path / "storage").as_uri())


def publish_raw(storage: LocalStorage, body: bytes = b"raw-bytes") -> dict:
    info = storage.write_bytes(dataset_key(DATE, "raw.parquet"), body)
    manifest = {"files": {"raw.parquet": {"sha256": info.sha256, "bytes": info.size}}}
    write_manifest(storage, dataset_key(DATE, "manifest.json"), manifest)
    return manifest


def test_output_is_complete_only_with_a_manifest_whose_files_match(storage) -> None:
    manifest_key = dataset_key(DATE, "manifest.json")
    storage.write_bytes(dataset_key(DATE, "raw.parquet"), b"raw-bytes")
    assert not manifest_complete(storage, manifest_key)  # files without a manifest
    publish_raw(storage)
    assert manifest_complete(storage, manifest_key)
    storage.write_bytes(dataset_key(DATE, "raw.parquet"), b"changed behind its back")
    assert "raw.parquet has sha256" in mismatches(storage, manifest_key)[0]
    storage.delete(dataset_key(DATE, "raw.parquet"))
    assert mismatches(storage, manifest_key) == [
        f"{storage.uri('datasets/2026-11-24/raw.parquet')} is missing"
    ]


def test_consumers_refuse_a_file_its_manifest_does_not_vouch_for(storage, tmp_path) -> None:
    publish_raw(storage)
    path, sha256 = read_verified(
        storage, dataset_key(DATE, "manifest.json"), "raw.parquet", tmp_path
    )
    assert path.read_bytes() == b"raw-bytes" and len(sha256) == 64
    storage.write_bytes(dataset_key(DATE, "raw.parquet"), b"half-rewritten")
    with pytest.raises(ArtifactMismatch, match="changed after its manifest was written"):
        read_verified(storage, dataset_key(DATE, "manifest.json"), "raw.parquet", tmp_path)
    storage.delete(dataset_key(DATE, "manifest.json"))
    with pytest.raises(ArtifactMismatch, match="manifest.json is missing"):
        read_verified(storage, dataset_key(DATE, "manifest.json"), "raw.parquet", tmp_path)


def test_build_features_reads_raw_parquet_only_through_extracts_manifest(tmp_path) -> None:
    settings = Settings(home=tmp_path, storage_url=(tmp_path / "storage").as_uri())
    storage = LocalStorage(settings.storage_url)
    storage.write_bytes(dataset_key(DATE, "raw.parquet"), b"no manifest vouches for me")
    with pytest.raises(DataError, match="run `pria-ml extract --date 2026-11-24` first"):
        features.build(settings, DATE)
    publish_raw(storage)
    storage.write_bytes(dataset_key(DATE, "raw.parquet"), b"tampered")
    with pytest.raises(ArtifactMismatch, match="raw.parquet has sha256"):
        features.build(settings, DATE)
    assert not extract.complete(settings, DATE)


def split_files(tmp_path, marker: int) -> dict:
    paths = {}
    for name in features.SPLITS:
        paths[name] = tmp_path / f"{name}-{marker}.parquet"
        pq.write_table(pa.table({"marker": [marker]}), paths[name])
    return paths


def card(date, paths, generation, raw_sha256="0" * 64) -> dict:
    from pria_ml.data.storage import sha256_file

    files = {
        f"{name}.parquet": {
            "key": features_key(date, f"{generation}/{name}.parquet"),
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
        }
        for name, path in paths.items()
    }
    return {"generation": generation, "files": files, "input": {"sha256": raw_sha256}}


def test_a_features_rebuild_switches_from_old_to_new_files_in_one_step(storage, tmp_path) -> None:
    manifest_key = features_key(DATE, "manifest.json")
    first = card(DATE, split_files(tmp_path, 1), "gen-1")
    features.publish(storage, DATE, split_files(tmp_path, 1), first)
    reader_saw = json.loads(storage.read_bytes(manifest_key))  # a reader mid-way through

    second = card(DATE, split_files(tmp_path, 2), "gen-2")
    features.publish(storage, DATE, split_files(tmp_path, 2), second)
    # The reader that read the old manifest still finds every old file intact...
    for entry in reader_saw["files"].values():
        assert pq.read_table(storage.path(entry["key"]))["marker"][0].as_py() == 1
    # ...and the manifest now vouches for the new build only.
    assert manifest_complete(storage, manifest_key)
    for name in features.SPLITS:
        path, _ = read_verified(storage, manifest_key, f"{name}.parquet", tmp_path / "read")
        assert pq.read_table(path)["marker"][0].as_py() == 2

    features.publish(
        storage, DATE, split_files(tmp_path, 3), card(DATE, split_files(tmp_path, 3), "gen-3")
    )
    generations = {
        key.split("/")[3] for key in storage.list(features_key(DATE, "")) if key.count("/") == 4
    }
    assert generations == {"gen-2", "gen-3"}  # older builds are removed, the previous one kept


def test_a_rebuild_named_before_the_previous_one_is_kept(storage, tmp_path) -> None:
    """Generation names carry the build's time; a clock that went back (another host, a moved
    test clock) must not make pruning delete the build that was just published."""
    for marker, name in ((1, "20261203T010000-a"), (2, "20261204T010000-b")):
        files = split_files(tmp_path, marker)
        features.publish(storage, DATE, files, card(DATE, files, name))
    files = split_files(tmp_path, 3)
    features.publish(storage, DATE, files, card(DATE, files, "20251203T010000-c"))
    generations = {
        key.split("/")[3] for key in storage.list(features_key(DATE, "")) if key.count("/") == 4
    }
    assert generations == {"20261204T010000-b", "20251203T010000-c"}
    assert manifest_complete(storage, features_key(DATE, "manifest.json"))


def test_features_are_stale_once_raw_parquet_is_extracted_again(storage, tmp_path) -> None:
    settings = Settings(home=tmp_path, storage_url=storage.url)
    raw = publish_raw(storage)
    paths = split_files(tmp_path, 1)
    features.publish(
        storage, DATE, paths, card(DATE, paths, "gen-1", raw["files"]["raw.parquet"]["sha256"])
    )
    assert features.complete(settings, DATE)
    publish_raw(storage, b"a new extract")
    assert not features.complete(settings, DATE)
