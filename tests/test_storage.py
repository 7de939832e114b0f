import hashlib
import threading
from pathlib import Path

import pyarrow as pa
import pytest

from pria_ml.data.storage import LocalStorage, S3Storage, Storage, open_storage
from pria_ml.errors import ObjectExists, StorageError
from pria_ml.settings import Settings


@pytest.fixture(params=["file", "s3"])
def storage(request: pytest.FixtureRequest) -> Storage:
    fixture = "settings" if request.param == "file" else "s3_settings"
    return open_storage(request.getfixturevalue(fixture))


def test_backend_follows_the_url(settings: Settings, s3_settings: Settings) -> None:
    assert isinstance(open_storage(settings), LocalStorage)
    assert isinstance(open_storage(s3_settings), S3Storage)


def test_bytes_round_trip_with_checksum(storage: Storage) -> None:
    info = storage.write_bytes("datasets/2026-11-24/manifest.json", b'{"rows": 3}')
    assert info.uri == storage.uri("datasets/2026-11-24/manifest.json")
    assert info.size == 11
    assert info.sha256 == hashlib.sha256(b'{"rows": 3}').hexdigest()
    assert storage.read_bytes("datasets/2026-11-24/manifest.json") == b'{"rows": 3}'
    assert storage.exists("datasets/2026-11-24/manifest.json")
    assert storage.list("datasets/") == ["datasets/2026-11-24/manifest.json"]
    storage.delete("datasets/2026-11-24/manifest.json")
    assert not storage.exists("datasets/2026-11-24/manifest.json")


def test_parquet_round_trip(storage: Storage) -> None:
    table = pa.table({"record_date": pa.array([1, 2, 3], pa.int32()), "text": ["a", "b", None]})
    storage.write_parquet("datasets/d/raw.parquet", table)
    assert storage.read_parquet("datasets/d/raw.parquet").equals(table)
    assert storage.read_parquet("datasets/d/raw.parquet", columns=["text"]).column_names == ["text"]


def test_immutable_write_refuses_to_replace(storage: Storage) -> None:
    storage.write_bytes("adapters/2026-11-24.safetensors", b"v1", overwrite=False)
    with pytest.raises(ObjectExists, match="already exists"):
        storage.write_bytes("adapters/2026-11-24.safetensors", b"v2", overwrite=False)
    assert storage.read_bytes("adapters/2026-11-24.safetensors") == b"v1"


def test_missing_object_is_a_clear_error(storage: Storage) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        storage.read_bytes("datasets/nope/raw.parquet")
    with pytest.raises(StorageError, match="does not exist"):
        storage.read_parquet("datasets/nope/raw.parquet")


@pytest.mark.parametrize("key", ["", "/abs", "../escape", "a/../../b", "dir/"])
def test_keys_stay_inside_the_root(settings: Settings, key: str) -> None:
    with pytest.raises(StorageError, match="invalid storage key"):
        open_storage(settings).write_bytes(key, b"x")


def test_readers_never_see_a_partial_object(storage: Storage) -> None:
    """A reader racing a writer sees either a whole old version or a whole new one."""
    versions = [bytes([i]) * (2 << 20) for i in range(1, 6)]
    storage.write_bytes("big.bin", versions[0])
    seen: list[bytes] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            seen.append(storage.read_bytes("big.bin"))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for version in versions[1:]:
            storage.write_bytes("big.bin", version)
    finally:
        done.set()
        thread.join()
    assert seen
    assert all(blob in versions for blob in seen)


def test_failed_write_leaves_nothing_behind(settings: Settings, tmp_path: Path) -> None:
    storage = open_storage(settings)
    storage.write_bytes("datasets/d/raw.parquet", b"old")

    class Exploding:
        def __init__(self) -> None:
            self.calls = 0

        def read(self, size: int) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("disk vanished mid-copy")
            return b"x" * size

    source = tmp_path / "source.bin"
    source.write_bytes(b"y" * (4 << 20))
    import pria_ml.data.storage as storage_module

    original_open = Path.open

    def open_exploding(self: Path, mode: str = "r", *args, **kwargs):
        handle = original_open(self, mode, *args, **kwargs)
        if self == source:
            exploding = Exploding()
            handle.read = exploding.read  # type: ignore[method-assign]
        return handle

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(storage_module.Path, "open", open_exploding)
        with pytest.raises(OSError, match="disk vanished"):
            storage.upload(source, "datasets/d/raw.parquet")
    assert storage.read_bytes("datasets/d/raw.parquet") == b"old"
    assert storage.list("datasets/d/") == ["datasets/d/raw.parquet"]
    leftovers = [p.name for p in (tmp_path / "storage" / "datasets" / "d").iterdir()]
    assert leftovers == ["raw.parquet"]


def test_unreachable_bucket_probe_names_the_settings(s3_settings: Settings) -> None:
    broken = s3_settings.model_copy(update={"storage_url": "s3://no-such-bucket-here/x"})
    with pytest.raises(StorageError, match="PRIA_STORAGE_URL"):
        open_storage(broken).probe()
