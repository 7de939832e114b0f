"""Object storage addressed by URL: ``file://`` (default ``<home>/storage``) or ``s3://``.

Keys are POSIX-style relative paths such as ``datasets/2026-11-24/raw.parquet``. Every write is
atomic: a reader sees the old object, or the complete new one, never a partial file. Local writes
go to a temporary name in the same directory and are renamed into place; S3 objects only become
visible when a PUT (or multipart upload) completes. ``overwrite=False`` makes a write fail with
``ObjectExists`` instead of replacing an object, which is how immutable artifacts are protected.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from urllib.request import url2pathname

from pria_ml.errors import ConfigError, ObjectExists, StorageError

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.fs

    from pria_ml.settings import Settings

_CHUNK = 1 << 20


@dataclass(frozen=True)
class ObjectInfo:
    """What a write produced: where it is and what it contains."""

    key: str
    uri: str
    sha256: str
    size: int


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_key(key: str) -> str:
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or key.endswith("/"):
        raise StorageError(f"invalid storage key {key!r}: use a relative path like 'a/b.parquet'")
    return str(path)


class Storage:
    """Operations common to every backend; subclasses move bytes."""

    url: str

    def uri(self, key: str) -> str:
        return f"{self.url.rstrip('/')}/{_check_key(key)}"

    # Backend primitives -------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def upload(self, local_path: Path, key: str, *, overwrite: bool = True) -> ObjectInfo:
        """Copy a local file to ``key`` atomically."""
        raise NotImplementedError

    def download(self, key: str, local_path: Path) -> Path:
        """Copy ``key`` to ``local_path`` (atomically on the local side)."""
        raise NotImplementedError

    def list(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix``, sorted."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def probe(self) -> str:
        """Check the storage root is reachable; return a one-line description or raise."""
        raise NotImplementedError

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        """A pyarrow filesystem and the root path inside it, for streaming reads."""
        raise NotImplementedError

    # Built on the primitives ----------------------------------------------------------------
    def write_bytes(self, key: str, data: bytes, *, overwrite: bool = True) -> ObjectInfo:
        with _scratch_file() as path:
            path.write_bytes(data)
            return self.upload(path, key, overwrite=overwrite)

    def read_bytes(self, key: str) -> bytes:
        with _scratch_file() as path:
            return self.download(key, path).read_bytes()

    def write_parquet(self, key: str, table: pa.Table, *, overwrite: bool = True) -> ObjectInfo:
        """Write ``table`` as one Parquet object (zstd), atomically."""
        import pyarrow.parquet as pq

        with _scratch_file() as path:
            pq.write_table(table, path, compression="zstd")
            return self.upload(path, key, overwrite=overwrite)

    def read_parquet(self, key: str, columns: list[str] | None = None) -> pa.Table:
        import pyarrow.parquet as pq

        filesystem, root = self.arrow_filesystem()
        location = f"{root}/{_check_key(key)}" if root else _check_key(key)
        try:
            return pq.read_table(location, filesystem=filesystem, columns=columns)
        except FileNotFoundError as exc:
            raise StorageError(f"{self.uri(key)} does not exist") from exc
        except OSError as exc:
            raise StorageError(f"cannot read Parquet {self.uri(key)}: {exc}") from exc


@contextlib.contextmanager
def _scratch_file() -> Iterator[Path]:
    handle, name = tempfile.mkstemp(prefix="pria-")
    os.close(handle)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


class LocalStorage(Storage):
    """``file://`` storage rooted at a directory."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.root = Path(url2pathname(urlsplit(url).path))

    def path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def upload(self, local_path: Path, key: str, *, overwrite: bool = True) -> ObjectInfo:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        digest, size = hashlib.sha256(), 0
        try:
            with Path(local_path).open("rb") as src, tmp.open("xb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            if overwrite:
                os.replace(tmp, target)
            else:
                try:
                    os.link(tmp, target)  # atomic create-if-absent
                except FileExistsError:
                    raise ObjectExists(
                        f"{self.uri(key)} already exists and is immutable; "
                        "write under a new key or pass --force where the command offers it"
                    ) from None
        finally:
            tmp.unlink(missing_ok=True)
        _fsync_dir(target.parent)
        return ObjectInfo(key=key, uri=self.uri(key), sha256=digest.hexdigest(), size=size)

    def download(self, key: str, local_path: Path) -> Path:
        source = self.path(key)
        if not source.is_file():
            raise StorageError(f"{self.uri(key)} does not exist")
        LocalStorage(Path(local_path).parent.as_uri()).upload(source, Path(local_path).name)
        return Path(local_path)

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        return sorted(
            path.relative_to(self.root).as_posix()
            for path in base.rglob("*")
            if path.is_file() and not path.name.endswith(".tmp")
        )

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def probe(self) -> str:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"storage root {self.root} is not writable: {exc}") from exc
        if not os.access(self.root, os.W_OK):
            raise StorageError(f"storage root {self.root} is not writable")
        return f"local directory {self.root}"

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        import pyarrow.fs

        return pyarrow.fs.LocalFileSystem(), self.root.as_posix()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class S3Storage(Storage):
    """``s3://bucket/prefix`` storage; a custom endpoint serves Supabase storage or tests."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        parts = urlsplit(url)
        if not parts.netloc:
            raise ConfigError(f"storage URL {url!r} names no bucket: use s3://bucket/prefix")
        self.url = url.rstrip("/")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self._client = None

    @property
    def client(self):
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                config=Config(
                    # Supabase storage and most S3-compatible servers need path-style URLs.
                    s3={"addressing_style": "path" if self.endpoint_url else "auto"},
                    retries={"max_attempts": 5, "mode": "standard"},
                ),
            )
        return self._client

    def _object_key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._object_key(key))
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"cannot stat {self.uri(key)}: {exc}") from exc
        return True

    def upload(self, local_path: Path, key: str, *, overwrite: bool = True) -> ObjectInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        local_path = Path(local_path)
        sha256 = sha256_file(local_path)
        extra = {"Metadata": {"sha256": sha256}}
        if not overwrite:
            # Conditional create: S3 rejects the PUT if the key exists (HTTP 412).
            extra["IfNoneMatch"] = "*"
        try:
            with local_path.open("rb") as body:
                self.client.put_object(
                    Bucket=self.bucket, Key=self._object_key(key), Body=body, **extra
                )
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise ObjectExists(
                    f"{self.uri(key)} already exists and is immutable; write under a new key"
                ) from None
            raise StorageError(f"cannot write {self.uri(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot write {self.uri(key)}: {exc}") from exc
        return ObjectInfo(key=key, uri=self.uri(key), sha256=sha256, size=local_path.stat().st_size)

    def download(self, key: str, local_path: Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        local_path = Path(local_path)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = local_path.with_name(f".{local_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            self.client.download_file(self.bucket, self._object_key(key), str(tmp))
            os.replace(tmp, local_path)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                raise StorageError(f"{self.uri(key)} does not exist") from None
            raise StorageError(f"cannot read {self.uri(key)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot read {self.uri(key)}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return local_path

    def list(self, prefix: str = "") -> list[str]:
        root = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        keys = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=root + prefix):
            keys.extend(item["Key"][len(root) :] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._object_key(key))

    def probe(self) -> str:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(
                f"bucket {self.bucket!r} at {self.endpoint_url or 'AWS'} is not reachable: {exc} "
                "(check PRIA_STORAGE_URL, PRIA_S3_ENDPOINT_URL and the S3 credentials)"
            ) from exc
        return f"bucket {self.bucket} at {self.endpoint_url or 'AWS S3'}"

    def arrow_filesystem(self) -> tuple[pyarrow.fs.FileSystem, str]:
        import pyarrow.fs

        options = {"region": self.region}
        if self.access_key_id:
            options["access_key"] = self.access_key_id
            options["secret_key"] = self.secret_access_key
        if self.endpoint_url:
            endpoint = urlsplit(self.endpoint_url)
            options["endpoint_override"] = endpoint.netloc
            options["scheme"] = endpoint.scheme or "https"
        root = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return pyarrow.fs.S3FileSystem(**options), root


def open_storage(settings: Settings) -> Storage:
    """The storage backend ``settings.storage_url`` points at."""
    url = settings.storage_url
    assert url is not None  # resolved by Settings
    if url.startswith("file://"):
        return LocalStorage(url)
    secret = settings.s3_secret_access_key
    return S3Storage(
        url,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
    )
