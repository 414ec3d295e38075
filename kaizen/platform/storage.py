"""Object store: one interface over a local folder (embedded default) and S3/Minio (cluster).

Keys are ``/``-separated paths such as ``models/fraud-detector/20261123T1700-ab12cd34/model.keras``.
Versioned keys are written once: a second write to the same key is refused, so nothing that
was published is ever overwritten. Writes are atomic: a reader never sees half an object.

The S3 backend (``S3ObjectStore``) adds what a network store needs: write-once through the
conditional write ``If-None-Match: *`` (checked by the server, so two writers racing on one
key cannot both win), the sha256 of every object in its user metadata and verified on read,
bounded retries with exponential backoff on connection errors, TLS on by default, and
credentials kept out of every log line, repr and error message.
"""

from __future__ import annotations

import functools
import hashlib
import io
import logging
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from pydantic import SecretStr

from kaizen.platform import minio_adapter
from kaizen.platform.fileio import atomic_path, write_bytes_atomic
from kaizen.platform.redaction import redact_text, redact_uri

if TYPE_CHECKING:
    from minio import Minio
    from minio.error import S3Error

    from kaizen.platform.settings import Settings

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

# User metadata holding each object's sha256 (sent as the x-amz-meta-sha256 header).
SHA256_METADATA = "sha256"
_SHA256_HEADER = f"x-amz-meta-{SHA256_METADATA}"
MIN_PART_SIZE = 5 * 1024 * 1024  # S3's smallest allowed part (all but the last)
DEFAULT_PART_SIZE = 64 * 1024 * 1024
_READ_CHUNK = 1 << 20
# Server answers that mean "try again later", as opposed to "this request is wrong".
_RETRYABLE_S3_CODES = frozenset(
    {"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown"}
)
_CREDENTIAL_S3_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
)


class StorageError(RuntimeError):
    """An object store operation failed."""


class KeyExistsError(StorageError):
    """A write to a versioned key that already holds an object."""


class StorageUnavailableError(StorageError):
    """The object store could not be reached within the bounded retries."""


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

    def put_stream(
        self, key: str, stream: BinaryIO, *, length: int, sha256: str, overwrite: bool = False
    ) -> str:
        """Store ``length`` bytes read from ``stream`` at ``key``; return the object's URI.

        The bytes are checked against ``sha256`` before the object becomes visible, so a
        stream that fails, ends early, runs long or delivers other bytes leaves nothing at
        ``key``. This default reads the whole stream into memory; backends that can send
        it in parts (S3) override it.

        Args:
            key: where the object goes.
            stream: a binary file-like object positioned at the first byte to store.
            length: how many bytes to read from ``stream``.
            sha256: hex sha256 the bytes must have.
            overwrite: replace an existing object instead of refusing.

        Raises:
            KeyExistsError: ``overwrite`` is false and ``key`` already holds an object.
            StorageError: the stream failed, was shorter or longer than ``length``, or its
                bytes do not match ``sha256``.
        """
        validate_key(key)
        data = b"".join(_read_parts(stream, key, length, max(length, 1)))
        _check_declared_sha256(key, sha256, sha256_bytes(data))
        return self.put_bytes(key, data, overwrite=overwrite)

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


def _read_parts(stream: BinaryIO, key: str, length: int, part_size: int) -> Iterator[bytes]:
    """Yield ``length`` bytes of ``stream`` in parts of ``part_size`` (the last may be shorter).

    The check that the stream holds no more than ``length`` bytes happens before the last
    part is yielded, so a caller that commits after the last part never commits a stream
    whose length was misdeclared.
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    done = 0
    while True:
        want = min(part_size, length - done)
        part = bytearray()
        while len(part) < want:
            try:
                chunk = stream.read(want - len(part))
            except Exception as error:
                raise StorageError(
                    f"reading the data for key {key!r} failed after {done + len(part)} of "
                    f"{length} bytes ({type(error).__name__}: {error}); nothing was written "
                    "to the key"
                ) from error
            if not chunk:
                raise StorageError(
                    f"the data for key {key!r} ended after {done + len(part)} of the declared "
                    f"{length} bytes; nothing was written to the key"
                )
            part += chunk
        done += len(part)
        if done == length:
            if stream.read(1):
                raise StorageError(
                    f"the data for key {key!r} is longer than the declared {length} bytes; "
                    "nothing was written to the key"
                )
            yield bytes(part)
            return
        yield bytes(part)


def _check_declared_sha256(key: str, expected: str, got: str) -> None:
    if got != expected:
        raise StorageError(
            f"the data for key {key!r} does not match its declared sha256: expected "
            f"{expected}, got {got}; nothing was written to the key"
        )


def _secret_value(value: str | SecretStr) -> str:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class S3ObjectStore(ObjectStore):
    """An S3 bucket (Minio on a cluster, AWS S3, moto in tests) through the ``minio`` client.

    Same interface and semantics as ``LocalObjectStore``, plus:

    - Write-once is enforced by the server: ``overwrite=False`` sends ``If-None-Match: *``
      on the request that makes the object visible (PutObject, or CompleteMultipartUpload
      for objects larger than ``part_size``), so of two racing writers exactly one wins.
      minio-py 7.2's public ``put_object`` turns every extra header into user metadata
      (``x-amz-meta-if-none-match``, which the server ignores), so writes go through the
      client's request layer, reached through :mod:`kaizen.platform.minio_adapter`.
    - Every object carries its sha256 in user metadata (``x-amz-meta-sha256``); reads
      verify it and refuse an object without it or with other bytes.
    - Objects larger than ``part_size`` are sent as a multipart upload that only becomes
      visible when completed; any failure midway aborts it, and a process that dies
      midway leaves only invisible parts (a bucket lifecycle rule
      ``AbortIncompleteMultipartUpload`` reclaims them on a real cluster).
    - Connection errors, timeouts and the server's "slow down"/5xx answers are retried
      ``attempts`` times in total with exponential backoff (``backoff_s``, then twice that,
      ...), then ``StorageUnavailableError`` names the endpoint and the attempts.
    - Credentials live only inside the client; they never appear in the repr, in log
      lines or in error messages (messages are scrubbed of them as a last line of defence).
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str | SecretStr,
        secret_key: str | SecretStr,
        *,
        secure: bool = True,
        region: str | None = None,
        attempts: int = 4,
        backoff_s: float = 0.5,
        create_bucket: bool = False,
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 120.0,
    ) -> None:
        """Open (no network traffic unless ``create_bucket``) a store over one bucket.

        Args:
            endpoint: ``host:port`` of the S3 API, without a scheme (TLS is ``secure``).
            bucket: the bucket holding every object of this store.
            access_key: S3 access key.
            secret_key: S3 secret key.
            secure: use TLS (on by default; turn off only for a local development server).
            region: bucket region; ``None`` asks the server once.
            attempts: how many times a request is tried before giving up (>= 1).
            backoff_s: wait before the second attempt; doubled before each later one.
            create_bucket: create the bucket now if it does not exist.
            part_size: objects larger than this go up as a multipart upload in parts of
                this size (S3 needs at least 5 MiB).
            connect_timeout_s: TCP/TLS connect timeout per request.
            read_timeout_s: timeout waiting for the server per request.

        Raises:
            ValueError: an argument is out of range or malformed (endpoint, bucket name).
            UnsupportedLibraryVersionError: the installed minio is not a version
                :mod:`kaizen.platform.minio_adapter` was written for.
        """
        import certifi
        import urllib3
        from minio import Minio

        minio_adapter.check_version()
        if not endpoint or "://" in endpoint or "/" in endpoint or "@" in endpoint:
            raise ValueError(
                f"S3 endpoint must be host:port without a scheme, path or credentials (TLS is "
                f"chosen by secure=..., the keys by access_key/secret_key), got "
                f"{redact_uri(endpoint)!r}"
            )
        minio_adapter.validate_bucket_name(bucket)
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if backoff_s < 0:
            raise ValueError(f"backoff_s must be >= 0, got {backoff_s}")
        if part_size < MIN_PART_SIZE:
            raise ValueError(
                f"part_size must be >= {MIN_PART_SIZE} bytes (S3's minimum), got {part_size}"
            )
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.region = region
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.part_size = part_size
        access, secret = _secret_value(access_key), _secret_value(secret_key)
        # Kept only to scrub them from messages; SecretStr shows '**********' if printed.
        self._secrets = tuple(SecretStr(value) for value in (access, secret) if len(value) >= 4)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=10,
            cert_reqs="CERT_REQUIRED",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            # Our own loop below is the single, bounded retry policy; urllib3's default
            # retries would multiply it and hide how many attempts were made.
            retries=False,
        )
        self._client: Minio = Minio(
            endpoint,
            access_key=access,
            secret_key=secret,
            secure=secure,
            region=region,
            http_client=http,
        )
        if create_bucket:
            self.ensure_bucket()

    def __repr__(self) -> str:
        return (
            f"S3ObjectStore(endpoint={self.endpoint!r}, bucket={self.bucket!r}, "
            f"secure={self.secure})"
        )

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}"

    @property
    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.endpoint_url}"

    def _redact(self, text: str) -> str:
        return redact_text(text, (secret.get_secret_value() for secret in self._secrets))

    def _call(
        self,
        action: str,
        request: Callable[[], _T],
        transient: list[BaseException] | None = None,
    ) -> _T:
        """Run ``request`` with bounded retries on connection errors; return its result.

        Args:
            action: what the request does, for messages ("write 'a/b'").
            request: one attempt; it must be safe to repeat.
            transient: if given, every retried error is appended, so a caller can tell
                that an earlier attempt may have reached the server.

        Raises:
            StorageUnavailableError: every attempt failed with a retryable error.
            StorageError: a TLS handshake failed or the server's answer was unreadable.
            S3Error: the server refused the request (the caller translates it).
        """
        import urllib3
        from minio.error import InvalidResponseError, S3Error, ServerError

        started = time.monotonic()
        last: BaseException | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return request()
            except urllib3.exceptions.SSLError as error:
                # A certificate or protocol mismatch does not heal by retrying.
                raise StorageError(
                    self._redact(
                        f"TLS connection to {self.endpoint_url} failed during {action}: {error}. "
                        "If the endpoint serves plain HTTP (a local development server), "
                        "open the store with secure=False (KAIZEN_S3_SECURE=false)"
                    )
                ) from error
            except S3Error as error:
                if error.code not in _RETRYABLE_S3_CODES:
                    raise
                last = error
            except InvalidResponseError as error:
                raise StorageError(
                    self._redact(f"{action} failed at {self._where}: unexpected answer: {error}")
                ) from error
            except (
                ServerError,
                urllib3.exceptions.HTTPError,
                ConnectionError,
                TimeoutError,
            ) as error:
                last = error
            if transient is not None:
                transient.append(last)
            if attempt < self.attempts:
                delay = self.backoff_s * 2 ** (attempt - 1)
                _log.warning(
                    "object store %s: %s failed (attempt %d of %d, %s); retrying in %.2fs",
                    self.endpoint_url,
                    action,
                    attempt,
                    self.attempts,
                    self._redact(f"{type(last).__name__}: {last}"),
                    delay,
                )
                time.sleep(delay)
        elapsed = time.monotonic() - started
        raise StorageUnavailableError(
            self._redact(
                f"object store at {self.endpoint_url} is unavailable: {action} failed after "
                f"{self.attempts} attempts in {elapsed:.1f}s; last error: "
                f"{type(last).__name__}: {last}. Check that the server is running and that "
                f"the endpoint and the TLS setting (secure={self.secure}) are right"
            )
        ) from last

    def _translate(self, error: S3Error, action: str, key: str | None) -> StorageError:
        """Our exception for a refusal from the server."""
        if error.code in ("NoSuchKey", "NotFound") and key is not None:
            return KeyNotFoundError(f"no object at key {key!r} in {self._where}")
        if error.code == "NoSuchBucket":
            return StorageError(
                f"bucket {self.bucket!r} does not exist at {self.endpoint_url}: create it "
                "(for example `mc mb`) or open the store with create_bucket=True"
            )
        if error.code in _CREDENTIAL_S3_CODES:
            return StorageError(
                self._redact(
                    f"{action} refused by {self._where} ({error.code}: {error.message}); check "
                    "the access key, the secret key and the bucket policy"
                )
            )
        return StorageError(
            self._redact(f"{action} failed at {self._where}: {error.code}: {error.message}")
        )

    def _exists_error(self, key: str) -> KeyExistsError:
        return KeyExistsError(
            f"refusing to overwrite versioned key {key!r} in {self._where}: it already holds "
            "an object (the conditional write If-None-Match: * was refused)"
        )

    def _stat(self, key: str) -> dict[str, str] | None:
        """The metadata headers of the object at ``key`` (lower-cased); ``None`` if absent."""
        from minio.error import S3Error

        try:
            stat = self._call(
                f"check {key!r}", functools.partial(self._client.stat_object, self.bucket, key)
            )
        except S3Error as error:
            if error.code in ("NoSuchKey", "NotFound"):
                return None
            raise self._translate(error, f"check {key!r}", key) from error
        return {name.lower(): str(value) for name, value in (stat.metadata or {}).items()}

    def _stored_sha256(self, key: str) -> str | None:
        """The sha256 recorded on the object at ``key``; ``None`` if it has none or is absent."""
        metadata = self._stat(key)
        return None if metadata is None else metadata.get(_SHA256_HEADER)

    def _committed(
        self, key: str, sha256: str, error: S3Error, retried: list[BaseException]
    ) -> bool:
        """Whether a write that the server refused had in fact landed on an earlier attempt.

        A retried request whose first attempt reached the server but lost its answer comes
        back as "already exists" (If-None-Match) or "no such upload" (multipart completed).
        Only then, and only if the stored object is ours byte for byte, is it a success.
        """
        return (
            bool(retried)
            and error.code in ("PreconditionFailed", "NoSuchUpload")
            and self._stored_sha256(key) == sha256
        )

    def _object_headers(self, sha256: str) -> dict[str, str]:
        return {"Content-Type": "application/octet-stream", _SHA256_HEADER: sha256}

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist; safe against a concurrent creator."""
        from minio.error import S3Error

        if self._call("check bucket", functools.partial(self._client.bucket_exists, self.bucket)):
            return
        try:
            self._call(
                "create bucket",
                functools.partial(self._client.make_bucket, self.bucket, location=self.region),
            )
        except S3Error as error:
            if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._translate(error, "create bucket", None) from error

    def put_bytes(self, key: str, data: bytes, *, overwrite: bool = False) -> str:
        return self.put_stream(
            key, io.BytesIO(data), length=len(data), sha256=sha256_bytes(data), overwrite=overwrite
        )

    def put_file(self, key: str, path: str | os.PathLike[str], *, overwrite: bool = False) -> str:
        """Stream the file at ``path`` to ``key`` (multipart when large); return the URI.

        The file is hashed first and its bytes are hashed again as they are sent, so a file
        that changes during the upload is refused instead of stored under a wrong checksum.
        """
        source = Path(path)
        digest = sha256_file(source)
        with source.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            return self.put_stream(key, handle, length=size, sha256=digest, overwrite=overwrite)

    def put_stream(
        self, key: str, stream: BinaryIO, *, length: int, sha256: str, overwrite: bool = False
    ) -> str:
        validate_key(key)
        if length <= self.part_size:
            data = b"".join(_read_parts(stream, key, length, max(length, 1)))
            _check_declared_sha256(key, sha256, sha256_bytes(data))
            self._put_single(key, data, sha256, overwrite)
        else:
            self._put_multipart(key, stream, length, sha256, overwrite)
        return self.uri(key)

    def _put_single(self, key: str, data: bytes, sha256: str, overwrite: bool) -> None:
        from minio.error import S3Error

        headers = self._object_headers(sha256)
        if not overwrite:
            headers["If-None-Match"] = "*"
        retried: list[BaseException] = []

        def put() -> None:
            minio_adapter.put_object(self._client, self.bucket, key, data, headers)

        try:
            self._call(f"write {key!r}", put, retried)
        except S3Error as error:
            if self._committed(key, sha256, error, retried):
                return
            if error.code == "PreconditionFailed":
                raise self._exists_error(key) from None
            raise self._translate(error, f"write {key!r}", key) from error

    def _put_multipart(
        self, key: str, stream: BinaryIO, length: int, sha256: str, overwrite: bool
    ) -> None:
        from minio.error import S3Error

        # Fail before sending gigabytes; the conditional completion below is what makes
        # write-once hold against a writer racing us after this check.
        if not overwrite and self._stored_sha256(key) is not None:
            raise self._exists_error(key)
        action = f"write {key!r}"
        try:
            upload_id = self._call(
                f"start multipart upload of {key!r}",
                functools.partial(
                    minio_adapter.create_multipart_upload,
                    self._client,
                    self.bucket,
                    key,
                    self._object_headers(sha256),
                ),
            )
        except S3Error as error:
            raise self._translate(error, action, key) from error
        try:
            digest = hashlib.sha256()
            parts: list[tuple[int, str]] = []
            for number, data in enumerate(_read_parts(stream, key, length, self.part_size), 1):
                digest.update(data)
                etag = self._call(
                    f"upload part {number} of {key!r}",
                    functools.partial(
                        minio_adapter.upload_part,
                        self._client,
                        self.bucket,
                        key,
                        data,
                        upload_id,
                        number,
                    ),
                )
                parts.append((number, etag))
            _check_declared_sha256(key, sha256, digest.hexdigest())
            self._complete_multipart(key, upload_id, parts, sha256, overwrite)
        except BaseException:
            self._abort_multipart(key, upload_id)
            raise

    def _complete_multipart(
        self, key: str, upload_id: str, parts: list[tuple[int, str]], sha256: str, overwrite: bool
    ) -> None:
        from minio.error import S3Error

        headers = {} if overwrite else {"If-None-Match": "*"}
        retried: list[BaseException] = []

        def complete() -> None:
            minio_adapter.complete_multipart_upload(
                self._client, self.bucket, key, upload_id, parts, headers
            )

        try:
            self._call(f"complete multipart upload of {key!r}", complete, retried)
        except S3Error as error:
            if self._committed(key, sha256, error, retried):
                return
            if error.code == "PreconditionFailed":
                raise self._exists_error(key) from None
            raise self._translate(error, f"write {key!r}", key) from error

    def _abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._call(
                f"abort multipart upload of {key!r}",
                functools.partial(
                    minio_adapter.abort_multipart_upload, self._client, self.bucket, key, upload_id
                ),
            )
        except Exception as error:
            # The object never became visible; only its parts remain until a lifecycle
            # rule reclaims them. The original error matters more than this one.
            _log.warning(
                "could not abort the multipart upload of %r in %s (%s); its parts stay "
                "invisible until the bucket's lifecycle rule removes them",
                key,
                self._where,
                self._redact(f"{type(error).__name__}: {error}"),
            )

    def _verify(self, key: str, expected: str | None, got: str) -> None:
        if expected is None:
            raise StorageError(
                f"object {key!r} in {self._where} has no sha256 metadata ({_SHA256_HEADER}), "
                "so its integrity cannot be checked; it was not written by Kaizen's object store"
            )
        if expected != got:
            raise StorageError(
                f"checksum mismatch for key {key!r} in {self._where}: expected sha256 "
                f"{expected} (recorded when it was written), got {got}; the object is corrupt "
                "or was changed outside Kaizen"
            )

    def get_bytes(self, key: str) -> bytes:
        """Return the object at ``key`` after checking its sha256.

        Raises:
            KeyNotFoundError: there is no object at ``key``.
            StorageError: the object has no sha256 metadata or its bytes do not match it.
        """
        from minio.error import S3Error

        validate_key(key)

        def read() -> tuple[bytes, str | None]:
            response = self._client.get_object(self.bucket, key)
            try:
                return response.read(), response.headers.get(_SHA256_HEADER)
            finally:
                response.close()
                response.release_conn()

        try:
            data, expected = self._call(f"read {key!r}", read)
        except S3Error as error:
            raise self._translate(error, f"read {key!r}", key) from error
        self._verify(key, expected, sha256_bytes(data))
        return data

    def get_file(self, key: str, path: str | os.PathLike[str]) -> Path:
        """Stream the object at ``key`` to ``path`` (atomically, sha256 checked); return it."""
        from minio.error import S3Error

        validate_key(key)
        target = Path(path)

        def download() -> None:
            response = self._client.get_object(self.bucket, key)
            try:
                # atomic_path drops the temporary file if the checksum check raises.
                with atomic_path(target) as tmp, tmp.open("wb") as handle:
                    digest = hashlib.sha256()
                    for chunk in response.stream(_READ_CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
                    handle.flush()
                    self._verify(key, response.headers.get(_SHA256_HEADER), digest.hexdigest())
            finally:
                response.close()
                response.release_conn()

        try:
            self._call(f"read {key!r}", download)
        except S3Error as error:
            raise self._translate(error, f"read {key!r}", key) from error
        return target

    def exists(self, key: str) -> bool:
        validate_key(key)
        return self._stat(key) is not None

    def list(self, prefix: str = "") -> Iterator[str]:
        from minio.error import S3Error

        def names() -> list[str]:
            listed = self._client.list_objects(self.bucket, prefix=prefix or None, recursive=True)
            return [item.object_name for item in listed if item.object_name]

        try:
            keys = self._call(f"list {prefix!r}", names)
        except S3Error as error:
            raise self._translate(error, f"list {prefix!r}", None) from error
        # S3 lists in UTF-8 byte order; sorting again makes the promise independent of it.
        yield from sorted(key for key in keys if not key.endswith("/"))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{validate_key(key)}"


def open_store(settings: Settings) -> ObjectStore:
    """The object store ``settings.storage_backend`` selects (``KAIZEN_STORAGE_BACKEND``).

    Args:
        settings: platform settings, read by the entry point.
    """
    if settings.storage_backend == "local":
        return LocalObjectStore(settings.object_store_dir)
    if settings.storage_backend == "s3":
        return S3ObjectStore(
            settings.s3_endpoint,
            settings.s3_bucket,
            settings.s3_access_key,
            settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
    raise StorageError(f"unsupported storage backend {settings.storage_backend!r}")
