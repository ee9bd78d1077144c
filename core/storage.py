"""Object storage: one interface, a local-folder backend and an S3 backend.

The API and the workers share sample shards, checkpoints and certificates through this
interface, and the backend is picked by a URL setting (``open_store``), so the embedded
deployment and the production one run the same code. Every key is validated once, in
the base class, so no backend can be talked into writing outside its root or prefix.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import logging
import os
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, BinaryIO, Protocol, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import tenacity
import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

__all__ = [
    "AccessDenied",
    "InvalidKey",
    "LocalStore",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "RetryPolicy",
    "RetryingStore",
    "S3Store",
    "StorageError",
    "StorageUnavailable",
    "open_store",
    "validate_key",
    "with_retries",
    "without_retries",
]

_log = logging.getLogger("expunge.storage")
_T = TypeVar("_T")

MAX_KEY_BYTES = 1024
DEFAULT_CHUNK_SIZE = 1 << 20
# S3 needs parts of at least 5 MiB; 8 MiB keeps a streamed upload's memory to a few parts.
DEFAULT_PART_SIZE = 8 << 20
# LocalStore writes its temporary files next to the target under this name prefix, so
# a key segment may not start with it (listing would otherwise hide or expose temps).
_TEMP_PREFIX = ".~tmp-"


# --------------------------------------------------------------------------- errors


class StorageError(Exception):
    """Base class of every object-storage failure."""


class ObjectNotFound(StorageError):
    """The key does not name an object."""


class InvalidKey(StorageError, ValueError):
    """The key is malformed or would escape the store's root or prefix."""


class StorageUnavailable(StorageError):
    """The storage server cannot be reached right now; the only type callers retry on."""


class AccessDenied(StorageError):
    """The server refused the credentials; retrying will not help, fixing them will."""


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows about one object.

    ``sha256`` is set by every ``put_*`` (computed while writing); ``stat`` returns it
    only when the backend recorded it at upload time, because recomputing it would mean
    reading the whole object.
    """

    key: str
    size: int
    sha256: str | None = None


# ---------------------------------------------------------------------- key checks


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a safe relative object key, else raise InvalidKey.

    Rules: relative, ``/``-separated, no empty, ``.`` or ``..`` segments, no backslashes,
    no control characters, at most 1024 UTF-8 bytes. The same rules on every backend
    mean a key that works locally also works on S3, and the reverse.
    """
    if not isinstance(key, str):
        raise InvalidKey(f"object key must be a string, not {type(key).__name__}")
    if not key:
        raise InvalidKey("object key is empty")
    try:
        encoded = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidKey(f"object key {key!r} is not valid UTF-8") from exc
    if len(encoded) > MAX_KEY_BYTES:
        raise InvalidKey(f"object key is {len(encoded)} bytes; the limit is {MAX_KEY_BYTES}")
    if "\\" in key:
        raise InvalidKey(f"object key {key!r} contains a backslash; use '/' to separate parts")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise InvalidKey(f"object key {key!r} contains a control character")
    if key.startswith("/"):
        raise InvalidKey(f"object key {key!r} is absolute; keys are relative to the store")
    for segment in key.split("/"):
        if segment == "":
            raise InvalidKey(f"object key {key!r} has an empty segment")
        if segment in (".", ".."):
            raise InvalidKey(f"object key {key!r} has a '{segment}' segment")
        if segment.startswith(_TEMP_PREFIX):
            raise InvalidKey(f"object key {key!r} uses the reserved prefix {_TEMP_PREFIX!r}")
    return key


def _validate_prefix(prefix: str, *, allow_empty: bool) -> str:
    """Normalise a folder-like prefix: '' (everything) or a valid key, trailing '/' optional."""
    if prefix in ("", "/") and allow_empty:
        return ""
    if prefix.endswith("/"):
        prefix = prefix[:-1]
    if not prefix:
        raise InvalidKey("an empty prefix is not allowed here (it would match every object)")
    return validate_key(prefix)


# ------------------------------------------------------------------- helper streams


class _SourceReadError(Exception):
    """A read from the caller's stream failed; re-raised as the original error.

    Kept apart so a local read error is not mistaken for the S3 server being down.
    """


class _HashingReader(io.RawIOBase):
    """Wraps a stream, hashing and counting bytes as they pass.

    ``read(n)`` fills up to ``n`` bytes from the source in one call, so the S3 client
    (which assembles each part by repeated reads) gets a part in one piece instead of
    concatenating many small reads.
    """

    def __init__(self, source: BinaryIO | IO[bytes]) -> None:
        super().__init__()
        self._source = source
        self.sha256 = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        chunks: list[bytes] = []
        left = size if size is not None and size >= 0 else None
        while left is None or left > 0:
            try:
                chunk = self._source.read(DEFAULT_CHUNK_SIZE if left is None else left)
            except Exception as exc:
                raise _SourceReadError(str(exc)) from exc
            if not chunk:
                break
            chunks.append(chunk)
            if left is not None:
                left -= len(chunk)
        data = b"".join(chunks)
        self.sha256.update(data)
        self.size += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _Releasable(Protocol):
    def close(self) -> None: ...


class ChunkIterator(Iterator[bytes]):
    """A streaming download that releases its file or connection when done.

    Released when exhausted, on ``close()``, on leaving a ``with`` block, or when
    garbage-collected, whichever comes first.
    """

    def __init__(
        self,
        chunks: Iterator[bytes],
        release: Iterable[_Releasable] = (),
        translate: Any = None,
    ) -> None:
        self._chunks = chunks
        self._release = list(release)
        self._translate = translate
        self._closed = False

    def __iter__(self) -> ChunkIterator:
        return self

    def __next__(self) -> bytes:
        if self._closed:
            raise StopIteration
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except Exception as exc:
            self.close()
            if self._translate is not None:
                raise self._translate(exc) from exc
            raise

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for item in self._release:
            # Releasing must never mask the error that made the caller stop reading.
            with contextlib.suppress(Exception):
                item.close()

    def __enter__(self) -> ChunkIterator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()


def _write_atomically(path: Path, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to ``path`` via a temp file in the same folder and ``os.replace``.

    Readers never see a half-written file, and a crash leaves only a temp file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _file_chunks(handle: IO[bytes], chunk_size: int) -> Iterator[bytes]:
    return iter(lambda: handle.read(chunk_size), b"")


# ------------------------------------------------------------------------ interface


class ObjectStore(ABC):
    """Keys in, bytes out. Subclasses implement the ``_``-prefixed methods only.

    The public methods validate every key first, so the backends can trust them.
    """

    def put_bytes(
        self, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Store ``data`` under ``key``, replacing any object already there."""
        validate_key(key)
        return self._put_bytes(key, bytes(data), content_type)

    def put_file(
        self, key: str, path: str | os.PathLike[str], content_type: str = "application/octet-stream"
    ) -> ObjectInfo:
        """Upload a local file without loading it into memory."""
        validate_key(key)
        return self._put_file(key, Path(path), content_type)

    def put_stream(
        self,
        key: str,
        stream: BinaryIO | IO[bytes],
        content_type: str = "application/octet-stream",
    ) -> ObjectInfo:
        """Upload a stream of unknown length in chunks; size and sha256 are computed on the way."""
        validate_key(key)
        return self._put_stream(key, stream, content_type)

    def get_bytes(self, key: str) -> bytes:
        """Read a whole object; use ``iter_chunks`` for anything large."""
        validate_key(key)
        return self._get_bytes(key)

    def iter_chunks(self, key: str, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ChunkIterator:
        """Stream an object; raises ObjectNotFound at call time, not on the first chunk."""
        validate_key(key)
        if chunk_size <= 0:
            raise ValueError("chunk_size must be positive")
        return self._iter_chunks(key, chunk_size)

    def download_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Save an object to a local file atomically (no truncated file on failure)."""
        validate_key(key)
        with self.iter_chunks(key) as chunks:
            _write_atomically(Path(path), chunks)

    def exists(self, key: str) -> bool:
        validate_key(key)
        try:
            self._stat(key)
        except ObjectNotFound:
            return False
        return True

    def stat(self, key: str) -> ObjectInfo:
        """Size (and sha256 where recorded) of an object; raises ObjectNotFound."""
        validate_key(key)
        return self._stat(key)

    def delete(self, key: str) -> None:
        """Remove an object and, on versioned S3 buckets, every version of it. Idempotent."""
        validate_key(key)
        self._delete(key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the folder ``prefix``; returns how many were removed.

        The prefix is a folder, not a string prefix: ``datasets/1`` removes
        ``datasets/1/...`` but never ``datasets/10/...``. An empty prefix is refused.
        """
        folder = _validate_prefix(prefix, allow_empty=False)
        return self._delete_prefix(folder)

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under the folder ``prefix`` (all keys for ''), in sorted order."""
        folder = _validate_prefix(prefix, allow_empty=True)
        return self._list(folder)

    # ``builtins.list`` from here on: inside this class body ``list`` is the method above.
    def list_versions(self, prefix: str = "") -> builtins.list[tuple[str, str | None]]:
        """Every stored (key, version_id) under ``prefix``; used to prove a purge left nothing."""
        folder = _validate_prefix(prefix, allow_empty=True)
        return self._list_versions(folder)

    @abstractmethod
    def check(self) -> None:
        """Raise StorageUnavailable unless the store can be used right now."""

    # Backend hooks: keys arrive validated; prefixes arrive normalised ('' or a key).
    @abstractmethod
    def _put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo: ...

    @abstractmethod
    def _put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo: ...

    @abstractmethod
    def _put_stream(
        self, key: str, stream: BinaryIO | IO[bytes], content_type: str
    ) -> ObjectInfo: ...

    @abstractmethod
    def _get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def _iter_chunks(self, key: str, chunk_size: int) -> ChunkIterator: ...

    @abstractmethod
    def _stat(self, key: str) -> ObjectInfo: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _delete_prefix(self, folder: str) -> int: ...

    @abstractmethod
    def _list(self, folder: str) -> Iterator[str]: ...

    @abstractmethod
    def _list_versions(self, folder: str) -> builtins.list[tuple[str, str | None]]: ...


# -------------------------------------------------------------------- local backend


class LocalStore(ObjectStore):
    """Objects as files under ``root``: the zero-setup embedded default."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def _inside_root(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def _path(self, key: str) -> Path:
        """Map a validated key to its file, refusing anything a symlink leads outside root."""
        path = self.root.joinpath(*key.split("/"))
        if not self._inside_root(path.resolve()):
            raise InvalidKey(f"object key {key!r} resolves outside the store root")
        return path

    def _write_path(self, key: str) -> Path:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise StorageError(
                f"cannot store {key!r}: a parent of it is already an object"
            ) from exc
        # Checked again after mkdir: a parent created or swapped meanwhile must still be ours.
        if not self._inside_root(path.parent.resolve()):
            raise InvalidKey(f"object key {key!r} resolves outside the store root")
        if path.is_dir():
            raise StorageError(f"cannot store {key!r}: it is a folder of other objects")
        return path

    def _put_chunks(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        path = self._write_path(key)
        digest = hashlib.sha256()
        size = 0

        def counted() -> Iterator[bytes]:
            nonlocal size
            source = iter(chunks)
            while True:
                try:
                    chunk = next(source)
                except StopIteration:
                    return
                except Exception as exc:
                    raise _SourceReadError(str(exc)) from exc
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        try:
            _write_atomically(path, counted())
        except _SourceReadError as exc:
            raise exc.__cause__ from None  # type: ignore[misc]
        except OSError as exc:
            raise StorageError(f"cannot write {key!r}: {exc}") from exc
        return ObjectInfo(key=key, size=size, sha256=digest.hexdigest())

    def _put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        return self._put_chunks(key, [data])

    def _put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        with path.open("rb") as handle:
            return self._put_chunks(key, _file_chunks(handle, DEFAULT_CHUNK_SIZE))

    def _put_stream(self, key: str, stream: BinaryIO | IO[bytes], content_type: str) -> ObjectInfo:
        return self._put_chunks(key, _file_chunks(stream, DEFAULT_CHUNK_SIZE))

    def _open(self, key: str) -> IO[bytes]:
        path = self._path(key)
        try:
            return path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(key) from exc

    def _get_bytes(self, key: str) -> bytes:
        with self._open(key) as handle:
            return handle.read()

    def _iter_chunks(self, key: str, chunk_size: int) -> ChunkIterator:
        handle = self._open(key)
        return ChunkIterator(_file_chunks(handle, chunk_size), release=[handle])

    def _stat(self, key: str) -> ObjectInfo:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        if not path.is_file():
            raise ObjectNotFound(key)
        return ObjectInfo(key=key, size=st.st_size)

    def _prune_empty_parents(self, path: Path) -> None:
        """Remove folders left empty by a delete, so a later key may reuse the name."""
        parent = path.parent
        while parent != self.root and self._inside_root(parent):
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def _delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir():
            return  # a folder is not an object; nothing named by this key to delete
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError):
            return
        self._prune_empty_parents(path)

    def _delete_prefix(self, folder: str) -> int:
        count = 0
        for key in list(self._list(folder)):
            self._delete(key)
            count += 1
        return count

    def _list(self, folder: str) -> Iterator[str]:
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return iter(())
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(base):
            # Symlinked folders are not followed (os.walk default), temp files are skipped.
            dirnames[:] = [d for d in dirnames if not d.startswith(_TEMP_PREFIX)]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(_TEMP_PREFIX):
                    continue
                keys.append(name if rel_dir == "." else f"{rel_dir}/{name}")
        return iter(sorted(keys))

    def _list_versions(self, folder: str) -> list[tuple[str, str | None]]:
        return [(key, None) for key in self._list(folder)]

    def check(self) -> None:
        if not self.root.is_dir():
            raise StorageUnavailable(f"store root {self.root} is missing")
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageUnavailable(f"store root {self.root} is not writable")


# ----------------------------------------------------------------------- S3 backend

# Codes that mean "not there" / "your credentials are wrong" / "try again later".
_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchObject", "NotFound", "NoSuchVersion", "ResourceNotFound"}
_DENIED_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
}
_UNAVAILABLE_CODES = {"SlowDown", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed"}
_UNAVAILABLE_STATUS = {502, 503, 504}
_NOT_IMPLEMENTED_CODES = {"NotImplemented", "MethodNotAllowed"}
_DELETE_BATCH = 1000  # the S3 limit for one multi-object delete


def _xml_code(body: str | None) -> str | None:
    """The <Code> of an S3 error body that the client could not parse as XML itself."""
    if not body:
        return None
    try:
        root = ET.fromstring(body.strip())
    except ET.ParseError:
        return None
    code = root.findtext("Code")
    return code.strip() if code else None


def _error_code(exc: Exception) -> tuple[str | None, int | None]:
    if isinstance(exc, S3Error):
        status = exc.response.status if exc.response is not None else None
        return exc.code, status
    if isinstance(exc, InvalidResponseError):
        # Some S3-compatible servers answer errors as text/xml, which minio reports as
        # "non-XML"; the status and the body's <Code> still say what happened.
        status = getattr(exc, "_code", None)
        return _xml_code(getattr(exc, "_body", None)), status if isinstance(status, int) else None
    if isinstance(exc, ServerError):
        return None, exc.status_code
    return None, None


def _is_not_implemented(exc: Exception) -> bool:
    code, status = _error_code(exc)
    return code in _NOT_IMPLEMENTED_CODES or status == 501


def _translate(exc: Exception, what: str, key: str | None = None) -> StorageError:
    """Map a minio/urllib3/socket failure to our typed errors; retry decisions hang on the type."""
    if isinstance(exc, StorageError):
        return exc
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)):
        return StorageUnavailable(f"S3 server unreachable while trying to {what}: {exc}")
    code, status = _error_code(exc)
    if code in _NOT_FOUND_CODES or (code is None and status == 404 and key is not None):
        return ObjectNotFound(key or what)
    if code in _DENIED_CODES or status == 403:
        return AccessDenied(
            f"S3 server refused the request to {what} ({code or status}); "
            "check the access key, secret key and bucket permissions"
        )
    if code in _UNAVAILABLE_CODES or status in _UNAVAILABLE_STATUS:
        return StorageUnavailable(f"S3 server busy or down while trying to {what}: {exc}")
    return StorageError(f"S3 request to {what} failed ({code or status}): {exc}")


def _http_client(connect_timeout: float, read_timeout: float, retries: int) -> urllib3.PoolManager:
    """A pool that gives up on an unreachable server in seconds rather than minutes."""
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        maxsize=10,
        retries=urllib3.Retry(
            total=retries,
            backoff_factor=0.2,
            # 500 is deliberately absent: it is usually a real error, not a blip, and
            # retrying it only delays the message.
            status_forcelist=[502, 503, 504],
        ),
    )


class S3Store(ObjectStore):
    """Objects in an S3 bucket (MinIO, AWS S3, or any S3-compatible server).

    ``prefix`` scopes the store to one folder of the bucket. ``region`` defaults to
    ``us-east-1`` (what MinIO and most S3-compatible servers use); setting it also
    spares the client a GetBucketLocation round trip that some servers do not answer.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str | None = None,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        connect_timeout: float = 3.0,
        read_timeout: float = 60.0,
        retries: int = 2,
    ) -> None:
        if part_size < 5 << 20:
            raise ValueError("part_size must be at least 5 MiB (the S3 minimum)")
        self.endpoint = endpoint
        self.bucket = bucket
        self.secure = secure
        self.prefix = _validate_prefix(prefix, allow_empty=True)
        self.part_size = part_size
        try:
            self._client = Minio(
                endpoint,
                access_key=access_key,
                secret_key=secret_key,
                secure=secure,
                region=region or "us-east-1",
                http_client=_http_client(connect_timeout, read_timeout, retries),
            )
        except ValueError as exc:
            raise ValueError(f"invalid S3 endpoint {endpoint!r}: {exc}") from exc
        self._bucket_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        scheme = "https" if self.secure else "http"
        where = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"S3Store({scheme}://{self.endpoint}/{where})"

    # -- helpers

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _folder_name(self, folder: str) -> str:
        """The S3 listing prefix for a folder ('' = the whole store)."""
        full = self._name(folder) if folder else self.prefix
        return f"{full}/" if full else ""

    def _key(self, name: str) -> str:
        return name[len(self.prefix) + 1 :] if self.prefix else name

    def _ensure_bucket(self) -> None:
        """Create the bucket on first use, so a fresh MinIO needs no setup step."""
        if self._bucket_ready:
            return
        with self._lock:
            if self._bucket_ready:
                return
            try:
                if not self._client.bucket_exists(self.bucket):
                    try:
                        self._client.make_bucket(self.bucket)
                    except S3Error as exc:
                        # Another process may have created it between the two calls.
                        if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                            raise
            except ValueError as exc:
                raise StorageError(f"invalid bucket name {self.bucket!r}: {exc}") from exc
            except Exception as exc:
                raise _translate(exc, f"open bucket {self.bucket!r}") from exc
            self._bucket_ready = True

    def _versioned(self) -> bool:
        """Whether the bucket keeps (or has kept) old versions that a purge must remove."""
        try:
            status = self._client.get_bucket_versioning(self.bucket).status
        except Exception as exc:
            if _is_not_implemented(exc):
                return False  # servers without versioning support keep one copy only
            raise _translate(exc, f"read versioning of bucket {self.bucket!r}") from exc
        return status in ("Enabled", "Suspended")

    def _remove(self, objects: list[DeleteObject], what: str) -> None:
        for start in range(0, len(objects), _DELETE_BATCH):
            batch = objects[start : start + _DELETE_BATCH]
            try:
                # remove_objects is lazy: the request is only sent while iterating.
                errors = list(self._client.remove_objects(self.bucket, batch))
            except Exception as exc:
                raise _translate(exc, what) from exc
            failed = [e for e in errors if e.code not in _NOT_FOUND_CODES]
            if failed:
                first = failed[0]
                raise StorageError(
                    f"could not {what}: {len(failed)} object(s) not deleted, "
                    f"first {first.name!r}: {first.code} {first.message}"
                )

    def _iter_objects(self, folder: str, *, versions: bool) -> Iterator[Any]:
        try:
            yield from self._client.list_objects(
                self.bucket,
                prefix=self._folder_name(folder) or None,
                recursive=True,
                include_version=versions,
            )
        except Exception as exc:
            raise _translate(exc, f"list {folder or '/'!r}") from exc

    # -- writes

    def _put(
        self,
        key: str,
        data: BinaryIO | IO[bytes],
        length: int,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self._ensure_bucket()
        try:
            self._client.put_object(
                self.bucket,
                self._name(key),
                data,  # type: ignore[arg-type]
                length,
                content_type=content_type,
                metadata=metadata,  # type: ignore[arg-type]
                part_size=self.part_size,
                # Two parts in flight at most: memory stays at a few parts per upload.
                num_parallel_uploads=2,
            )
        except _SourceReadError as exc:
            raise exc.__cause__ from None  # type: ignore[misc]
        except Exception as exc:
            raise _translate(exc, f"upload {key!r}") from exc

    def _put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        digest = hashlib.sha256(data).hexdigest()
        self._put(key, io.BytesIO(data), len(data), content_type, {"sha256": digest})
        return ObjectInfo(key=key, size=len(data), sha256=digest)

    def _put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        # Hash first (a local read is cheap next to the upload) so the digest can travel
        # as object metadata and ``stat`` can report it later.
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in _file_chunks(handle, DEFAULT_CHUNK_SIZE):
                digest.update(chunk)
        size = path.stat().st_size
        sha = digest.hexdigest()
        with path.open("rb") as handle:
            reader = _HashingReader(handle)
            self._put(key, reader, size, content_type, {"sha256": sha})  # type: ignore[arg-type]
        if reader.sha256.hexdigest() != sha:
            raise StorageError(f"{path} changed while it was being uploaded as {key!r}")
        return ObjectInfo(key=key, size=size, sha256=sha)

    def _put_stream(self, key: str, stream: BinaryIO | IO[bytes], content_type: str) -> ObjectInfo:
        reader = _HashingReader(stream)
        # length=-1: a multipart upload, one part_size part at a time.
        self._put(key, reader, -1, content_type)  # type: ignore[arg-type]
        return ObjectInfo(key=key, size=reader.size, sha256=reader.sha256.hexdigest())

    # -- reads

    def _get_response(self, key: str) -> Any:
        self._ensure_bucket()
        try:
            return self._client.get_object(self.bucket, self._name(key))
        except Exception as exc:
            raise _translate(exc, f"download {key!r}", key) from exc

    def _get_bytes(self, key: str) -> bytes:
        response = self._get_response(key)
        try:
            return bytes(response.read())
        except Exception as exc:
            raise _translate(exc, f"download {key!r}", key) from exc
        finally:
            response.close()
            response.release_conn()

    def _iter_chunks(self, key: str, chunk_size: int) -> ChunkIterator:
        response = self._get_response(key)

        class _Release:
            def close(self) -> None:
                response.close()
                response.release_conn()

        return ChunkIterator(
            response.stream(chunk_size),
            release=[_Release()],
            translate=lambda exc: _translate(exc, f"download {key!r}", key),
        )

    def _stat(self, key: str) -> ObjectInfo:
        self._ensure_bucket()
        try:
            result = self._client.stat_object(self.bucket, self._name(key))
        except Exception as exc:
            raise _translate(exc, f"stat {key!r}", key) from exc
        sha = None
        for name, value in (result.metadata or {}).items():
            if name.lower() == "x-amz-meta-sha256":
                sha = value
        return ObjectInfo(key=key, size=int(result.size or 0), sha256=sha)

    # -- deletes and listings

    def _delete(self, key: str) -> None:
        self._ensure_bucket()
        name = self._name(key)
        if self._versioned():
            # A plain delete on a versioned bucket only adds a delete marker and keeps
            # the bytes; a purge must remove every version (and the markers) by id.
            targets = [
                DeleteObject(obj.object_name, obj.version_id)
                for obj in self._iter_objects_named(name)
            ]
            self._remove(targets, f"delete every version of {key!r}")
            return
        try:
            self._client.remove_object(self.bucket, name)
        except Exception as exc:
            error = _translate(exc, f"delete {key!r}", key)
            if not isinstance(error, ObjectNotFound):
                raise error from exc

    def _iter_objects_named(self, name: str) -> Iterator[Any]:
        try:
            for obj in self._client.list_objects(
                self.bucket, prefix=name, recursive=True, include_version=True
            ):
                if obj.object_name == name:
                    yield obj
        except Exception as exc:
            raise _translate(exc, f"list versions of {name!r}") from exc

    def _delete_prefix(self, folder: str) -> int:
        self._ensure_bucket()
        versioned = self._versioned()
        keys: set[str] = set()
        targets: list[DeleteObject] = []
        for obj in self._iter_objects(folder, versions=versioned):
            if not getattr(obj, "is_delete_marker", False):
                keys.add(obj.object_name)
            targets.append(DeleteObject(obj.object_name, obj.version_id if versioned else None))
        self._remove(targets, f"delete folder {folder!r}")
        return len(keys)

    def _list(self, folder: str) -> Iterator[str]:
        self._ensure_bucket()
        # S3 lists in UTF-8 byte order, which is Python's str order: already sorted.
        for obj in self._iter_objects(folder, versions=False):
            if not obj.is_dir:
                yield self._key(obj.object_name)

    def _list_versions(self, folder: str) -> list[tuple[str, str | None]]:
        self._ensure_bucket()
        if not self._versioned():
            return [(key, None) for key in self._list(folder)]
        return sorted(
            (self._key(obj.object_name), obj.version_id)
            for obj in self._iter_objects(folder, versions=True)
        )

    def check(self) -> None:
        try:
            self._client.bucket_exists(self.bucket)
        except Exception as exc:
            raise _translate(exc, f"reach bucket {self.bucket!r}") from exc


# ------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """How long to keep trying a storage call that failed with ``StorageUnavailable``.

    ``attempts`` tries in all; between them the wait doubles from ``base_seconds`` up to
    ``max_seconds``. Only "unreachable / busy" is retried: a missing object, refused
    credentials or a bad key will not get better by waiting.
    """

    attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 8.0


class RetryingStore(ObjectStore):
    """Wraps a store so every call that can be repeated safely survives a short outage.

    Writes of bytes and files are repeatable (the same object again); a stream is only
    retried if it can be rewound. A whole download restarts from the first byte. Listing
    is read to the end inside the retry, so a listing never stops half-way. When the
    tries run out the last ``StorageUnavailable`` is raised, saying how long we tried.

    The loop is ``tenacity``'s (bounded attempts, capped exponential wait, retry decided
    by exception type), not one of ours; this class only says what to retry and how the
    final error reads.
    """

    def __init__(
        self,
        inner: ObjectStore,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.policy = policy
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"RetryingStore({self.inner!r}, attempts={self.policy.attempts})"

    def _retry(self, what: str, call: Callable[[], _T]) -> _T:
        policy = self.policy

        def log_retry(state: tenacity.RetryCallState) -> None:
            _log.warning(
                "object storage unavailable (try %d/%d) to %s; retrying in %.2fs: %s",
                state.attempt_number,
                policy.attempts,
                what,
                state.upcoming_sleep,
                state.outcome.exception() if state.outcome else None,
            )

        def give_up(state: tenacity.RetryCallState) -> _T:
            exc = state.outcome.exception() if state.outcome else None
            raise StorageUnavailable(
                f"gave up after {state.attempt_number} tries over {state.idle_for:.1f}s "
                f"to {what}: {exc}"
            ) from exc

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StorageUnavailable),
            stop=tenacity.stop_after_attempt(max(policy.attempts, 1)),
            wait=tenacity.wait_exponential(
                multiplier=policy.base_seconds, exp_base=2, min=0, max=policy.max_seconds
            ),
            sleep=lambda seconds: self._sleep(seconds),  # looked up per call: tests swap it
            before_sleep=log_retry,
            retry_error_callback=give_up,
        )
        return retrying(call)

    def check(self) -> None:
        self._retry("check the store", self.inner.check)

    def download_file(self, key: str, path: str | os.PathLike[str]) -> None:
        validate_key(key)
        self._retry(f"download {key}", lambda: self.inner.download_file(key, path))

    def _put_bytes(self, key: str, data: bytes, content_type: str) -> ObjectInfo:
        return self._retry(f"write {key}", lambda: self.inner._put_bytes(key, data, content_type))

    def _put_file(self, key: str, path: Path, content_type: str) -> ObjectInfo:
        return self._retry(f"write {key}", lambda: self.inner._put_file(key, path, content_type))

    def _put_stream(self, key: str, stream: BinaryIO | IO[bytes], content_type: str) -> ObjectInfo:
        seekable = False
        with contextlib.suppress(AttributeError, OSError, ValueError):
            seekable = bool(stream.seekable())
        if not seekable:
            return self.inner._put_stream(key, stream, content_type)
        start = stream.tell()

        def attempt() -> ObjectInfo:
            stream.seek(start)
            return self.inner._put_stream(key, stream, content_type)

        return self._retry(f"write {key}", attempt)

    def _get_bytes(self, key: str) -> bytes:
        return self._retry(f"read {key}", lambda: self.inner._get_bytes(key))

    def _iter_chunks(self, key: str, chunk_size: int) -> ChunkIterator:
        # Only the opening is retried; a failure mid-stream reaches the reader.
        return self._retry(f"read {key}", lambda: self.inner._iter_chunks(key, chunk_size))

    def _stat(self, key: str) -> ObjectInfo:
        return self._retry(f"stat {key}", lambda: self.inner._stat(key))

    def _delete(self, key: str) -> None:
        self._retry(f"delete {key}", lambda: self.inner._delete(key))

    def _delete_prefix(self, folder: str) -> int:
        return self._retry(f"delete {folder}/", lambda: self.inner._delete_prefix(folder))

    def _list(self, folder: str) -> Iterator[str]:
        keys = self._retry(f"list {folder}/", lambda: builtins.list(self.inner._list(folder)))
        return iter(keys)

    def _list_versions(self, folder: str) -> builtins.list[tuple[str, str | None]]:
        return self._retry(f"list {folder}/", lambda: self.inner._list_versions(folder))


def with_retries(store: ObjectStore, policy: RetryPolicy) -> ObjectStore:
    """``store`` behind a retry layer (never two layers: re-wrapping replaces the policy)."""
    return RetryingStore(without_retries(store), policy)


def without_retries(store: ObjectStore) -> ObjectStore:
    """The store under any retry layer: for best-effort calls that must not block."""
    return store.inner if isinstance(store, RetryingStore) else store


# ------------------------------------------------------------------------ factory

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def open_store(
    url: str,
    access_key: str | None = None,
    secret_key: str | None = None,
    region: str | None = None,
) -> ObjectStore:
    """Build the store a URL names.

    ``file:///abs/path`` or a plain path → LocalStore;
    ``s3://host:port/bucket[/prefix]?secure=true|false[&region=...]`` → S3Store.
    Credentials are passed separately, never in the URL, so the URL can be logged.
    """
    if not url:
        raise ValueError("storage URL is empty")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and url[1:2] == ":"):  # plain (or drive) path
        return LocalStore(Path(url))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL {url!r} names a remote host; use file:///absolute/path")
        if parts.query:
            raise ValueError(f"file URL {url!r} takes no query parameters")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"file URL {url!r} needs an absolute path (file:///...)")
        return LocalStore(Path(path))
    if scheme == "s3":
        return _open_s3(url, parts, access_key, secret_key, region)
    raise ValueError(
        f"unsupported storage URL scheme {parts.scheme!r} in {url!r}; use file:// or s3://"
    )


def _open_s3(
    url: str,
    parts: Any,
    access_key: str | None,
    secret_key: str | None,
    region: str | None,
) -> S3Store:
    if parts.username or parts.password:
        raise ValueError("put S3 credentials in the access/secret key settings, not in the URL")
    if not parts.hostname:
        raise ValueError(f"S3 URL {url!r} has no host; expected s3://host:port/bucket[/prefix]")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"S3 URL {url!r} has an invalid port") from exc
    path = unquote(parts.path).strip("/")
    if not path:
        raise ValueError(f"S3 URL {url!r} has no bucket; expected s3://host:port/bucket[/prefix]")
    bucket, _, prefix = path.partition("/")
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(query) - {"secure", "region"}
    if unknown:
        raise ValueError(f"S3 URL {url!r} has unknown parameters: {', '.join(sorted(unknown))}")
    secure = False
    if "secure" in query:
        value = query["secure"][-1].lower()
        if value not in _TRUE | _FALSE:
            raise ValueError(f"S3 URL {url!r}: secure must be true or false, not {value!r}")
        secure = value in _TRUE
    if "region" in query and not region:
        region = query["region"][-1] or None
    if not access_key or not secret_key:
        raise ValueError(
            f"S3 storage {url!r} needs an access key and a secret key; "
            "set both credentials (they are not read from the URL)"
        )
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    endpoint = f"{host}:{port}" if port else host
    return S3Store(
        endpoint,
        access_key,
        secret_key,
        bucket,
        secure=secure,
        region=region,
        prefix=prefix,
    )
