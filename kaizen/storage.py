"""Object store: one interface over a local folder (embedded default) and S3/Minio (cluster).

Keys are ``/``-separated paths such as ``models/fraud-detector/20261123T1700-ab12cd34/model.keras``.
Versioned keys are written once: a second write to the same key is refused, so nothing that
was published is ever overwritten. Writes are atomic: a reader never sees half an object.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from kaizen.fileio import write_bytes_atomic


class StorageError(RuntimeError):
    """An object store operation failed."""


class KeyExistsError(StorageError):
    """A write to a versioned key that already holds an object."""


class KeyNotFoundError(StorageError, KeyError):
    """A read of a key that holds no object."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative object key, else raise ``ValueError``."""
    if not key or key.startswith("/") or "\\" in key:
        raise ValueError(f"invalid object key {key!r}: expected a relative '/'-separated path")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}: '.', '..' and empty parts are not allowed")
    return key


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def new_version(content_hash: str | None = None, now: datetime | None = None) -> str:
    """A sortable version id: UTC timestamp plus a short content hash when given."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{content_hash[:12]}" if content_hash else stamp


class ObjectStore(ABC):
    """What every backend provides. ``overwrite=False`` makes a key write-once."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> str:
        """Store ``data`` at ``key`` atomically; return the object's URI.

        Raises:
            KeyExistsError: ``overwrite`` is false and ``key`` already holds an object.
        """

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Return the object at ``key``. Raises ``KeyNotFoundError`` when there is none."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the keys under ``prefix`` in sorted order."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """Where ``key`` lives, for people and for other tools."""

    def put_file(self, key: str, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
        return self.put_bytes(key, Path(path).read_bytes(), overwrite=overwrite)

    def get_file(self, key: str, path: str | os.PathLike[str]) -> Path:
        """Copy the object at ``key`` to ``path`` (atomically) and return the path."""
        return write_bytes_atomic(path, self.get_bytes(key))


class LocalObjectStore(ObjectStore):
    """A folder on disk. Atomic via write-to-temp then rename; write-once via ``link``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).absolute()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*PurePosixPath(validate_key(key)).parts)

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> str:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            write_bytes_atomic(target, data)
            return self.uri(key)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                # link() fails if the target exists: an atomic create-if-absent, even
                # against a concurrent writer of the same key.
                os.link(tmp_name, target)
            except FileExistsError:
                raise KeyExistsError(
                    f"refusing to overwrite versioned key {key!r} in {self.root}: "
                    "it already holds an object"
                ) from None
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise KeyNotFoundError(f"no object at key {key!r} in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        keys = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        yield from sorted(keys)

    def uri(self, key: str) -> str:
        return self._path(key).as_uri()


def open_store(settings: object | None = None) -> ObjectStore:
    """The object store the settings select (``KAIZEN_STORAGE_BACKEND``)."""
    from kaizen.settings import Settings, load_settings

    resolved = settings if isinstance(settings, Settings) else load_settings()
    if resolved.storage_backend == "local":
        return LocalObjectStore(resolved.object_store_dir)
    raise StorageError(f"unsupported storage backend {resolved.storage_backend!r}")
