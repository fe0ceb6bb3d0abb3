"""The small object interface a stock remote needs, and its two backends.

A remote holds immutable objects under slash-separated names. Backends
offer: read a whole object, read a byte range, test for one, and write one
*create-only* (an object that exists is never replaced, so two pushers
cannot overwrite each other's objects). Every failure is a
:class:`RemoteError` with one line that names the remote and what to do;
credentials never appear in it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import secrets
import stat
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from stockroom.errors import StockroomError
from stockroom.remote.clouds import CLOUDS, Cloud, azurite_url, build_azure, build_gcs, endpoint_from_env
from stockroom.remote.url import RemoteURL, check_endpoint

if TYPE_CHECKING:
    from stockroom.remote.relay import Relay

# Names stockroom writes: lower-case hex, '=', '.', '-' and '/' between
# segments. Anything else coming from a remote is refused before use.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9=._-]{0,127}(/[a-z0-9][a-z0-9=._-]{0,127}){0,3}$")


# True in a process forked from one that had loaded obstore: obstore's runtime
# threads did not survive the fork and its requests would hang, so S3 requests
# go through a fresh interpreter (stockroom.remote.relay) instead.
_FORKED_AFTER_OBSTORE = False


def _after_fork_in_child() -> None:
    global _FORKED_AFTER_OBSTORE
    if "obstore" in sys.modules:
        _FORKED_AFTER_OBSTORE = True


os.register_at_fork(after_in_child=_after_fork_in_child)


# The most bytes read of an object whose size nothing names (a manifest, an
# index, a run record): what a remote sends is untrusted until checked, so it
# can cost at most this much memory (SPEC 6a, "a hostile remote costs nothing").
MAX_OBJECT = 256 << 20


class RemoteError(StockroomError):
    """A stock remote could not be reached, read or written."""


class ObjectMissing(RemoteError):
    """The remote has no object by that name."""


class BadObject(RemoteError):
    """The remote holds an object by that name that stockroom cannot have
    written (longer than it can be, not a regular file): it is not read."""


def mend_advice(label: str) -> str:
    """What to do about a damaged object on the remote ``label``."""
    return (
        f"a clone that has this stock can mend stock remote {label} with `stock push --repair {label}` "
        f"(`stock fsck {label}` lists what is damaged)"
    )


def check_name(name: str) -> str:
    """``name`` if it is an object name stockroom could have written, else RemoteError."""
    if not _NAME_RE.match(name) or ".." in name:
        raise RemoteError(f"refusing object name {name[:80]!r} from the remote: not one stockroom writes")
    return name


def too_large(label: str, name: str, limit: int) -> RemoteError:
    """The error for an object longer than the ``limit`` bytes it may have."""
    return BadObject(
        f"object {name} on stock remote {label} is larger than the {limit} bytes it can be; "
        f"nothing of it was used; {mend_advice(label)}"
    )


class ObjectStore(Protocol):
    """What the transfer needs from a remote."""

    label: str

    def get(self, name: str, limit: int = MAX_OBJECT) -> bytes:
        """The whole object; RemoteError when it is longer than ``limit`` bytes
        (at most ``limit`` + 1 bytes are ever read)."""
        ...

    def get_range(self, name: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (fewer where the object ends sooner)."""
        ...

    def exists(self, name: str) -> bool: ...

    def put_new(self, name: str, data: bytes) -> bool:
        """Write ``name`` unless it exists; True when this call created it."""
        ...

    def replace(self, name: str, data: bytes) -> None:
        """Write ``name`` whether or not it exists (repairs only)."""
        ...

    def clean_incoming(self) -> int:
        """Remove what interrupted writes left behind; how many."""
        ...


# Prefix of a directory remote's temporary files: an object is written whole
# under such a name, then linked into place.
INCOMING_PREFIX = ".incoming-"
# Folders of a directory remote that hold objects (and so temporary files).
_FOLDERS = ("commits", "packs")
# How a directory remote's folders and objects are opened: never through a
# symbolic link, and never waiting (a FIFO opened for reading waits for a writer).
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class DirectoryStore:
    """A remote in a directory: a shared drive, NFS, a USB disk.

    Files and folders are created with the permissions the umask allows
    (0644 and 0755 under umask 022), so teammates with other user ids can
    read them. While an object is written its temporary file is locked
    (``flock``): one left unlocked was cut short by a killed push, and
    :meth:`clean_incoming` removes it.

    A shared directory is writable by others, so what it holds is untrusted:
    folders are opened one at a time relative to the root without following
    symbolic links (nothing is read or written through a symlinked folder),
    the root must not be a symbolic link, only regular files are read (a
    FIFO, a device or a symlink is refused, and opening one never blocks),
    and no more is read than the object can have.
    """

    def __init__(self, root: Path, label: str) -> None:
        self.root = root
        self.label = label

    def _check_root(self) -> None:
        if not self.root.is_dir():
            raise RemoteError(
                f"stock remote {self.label}: directory {self.root} does not exist; create it or fix the remote"
            )

    def _refuse_link(self, where: str) -> RemoteError:
        return RemoteError(
            f"stock remote {self.label}: {where} is a symbolic link or not a folder; stockroom neither "
            f"reads nor writes through it (someone with write access to {self.root} may have put it "
            f"there): replace it with a real folder, or point the remote at the directory itself "
            f"(`stock remote set-url {self.label} PATH`)"
        )

    def _open_root(self) -> int:
        try:
            return os.open(self.root, _DIR_FLAGS)
        except FileNotFoundError:
            self._check_root()
            raise
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                if os.path.islink(self.root):
                    raise self._refuse_link(str(self.root)) from None
                raise RemoteError(
                    f"stock remote {self.label}: {self.root} is not a directory; fix the remote"
                ) from None
            raise

    def _folder(self, parts: list[str], create: bool) -> int:
        """A descriptor of the folder ``parts`` (below the root), opened one
        segment at a time without following links; made where ``create``."""
        fd = self._open_root()
        try:
            for i, seg in enumerate(parts):
                try:
                    try:
                        sub = os.open(seg, _DIR_FLAGS, dir_fd=fd)
                    except FileNotFoundError:
                        if not create:
                            raise
                        with contextlib.suppress(FileExistsError):
                            os.mkdir(seg, 0o777, dir_fd=fd)  # the umask decides (0755 under 022)
                        sub = os.open(seg, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self._refuse_link(os.path.join(self.root, *parts[: i + 1])) from None
                    raise
                os.close(fd)
                fd = sub
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _open_object(self, name: str) -> tuple[int, int]:
        """A read descriptor of object ``name`` and its size; only a regular file."""
        *parts, base = check_name(name).split("/")
        folder = self._folder(parts, create=False)
        try:
            # O_NONBLOCK: opening a FIFO would otherwise wait for a writer for ever.
            fd = os.open(base, _FILE_FLAGS, dir_fd=folder)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise self._not_regular(name) from None
            raise
        finally:
            os.close(folder)
        try:
            info = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            raise self._not_regular(name)
        return fd, info.st_size

    def _not_regular(self, name: str) -> RemoteError:
        return BadObject(
            f"object {name} on stock remote {self.label} is not a regular file (a symbolic link, a FIFO "
            f"or a device); stockroom does not read it; {mend_advice(self.label)}"
        )

    def _os_error(self, exc: OSError, doing: str) -> RemoteError:
        """One line naming the remote and the fix, never a raw ``[Errno N]``."""
        where = f"stock remote {self.label} ({self.root})"
        if exc.errno == errno.EROFS:
            return RemoteError(
                f"{where} is on a read-only file system; remount it read-write or push to another "
                f"remote (`stock push OTHER`, `stock remote set-url {self.label} URL`)"
            )
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return RemoteError(
                f"{where} is full (no space left while {doing}); nothing half-written was left there: "
                f"free space on it, then run the command again"
            )
        if exc.errno in (errno.EACCES, errno.EPERM):
            return RemoteError(
                f"{where}: permission denied while {doing}; ask the owner of {self.root} for access "
                f"or point the remote elsewhere (`stock remote set-url {self.label} URL`)"
            )
        return RemoteError(
            f"{where}: {exc.strerror or type(exc).__name__} while {doing}; check it and run again"
        )

    def get(self, name: str, limit: int = MAX_OBJECT) -> bytes:
        try:
            fd, size = self._open_object(name)
        except FileNotFoundError:
            raise ObjectMissing(f"stock remote {self.label} has no object {name}") from None
        except OSError as exc:
            raise self._os_error(exc, f"reading {name}") from None
        try:
            if size > limit:
                raise too_large(self.label, name, limit)
            # At most one byte more than the file says: a file that grows while
            # it is read is seen to be longer, and memory stays bounded.
            with open(fd, "rb", closefd=False) as f:
                data = f.read(size + 1)
        except OSError as exc:
            raise self._os_error(exc, f"reading {name}") from None
        finally:
            os.close(fd)
        if len(data) > limit:
            raise too_large(self.label, name, limit)
        return data

    def get_range(self, name: str, start: int, end: int) -> bytes:
        try:
            fd, size = self._open_object(name)
        except FileNotFoundError:
            raise ObjectMissing(f"stock remote {self.label} has no object {name}") from None
        except OSError as exc:
            raise self._os_error(exc, f"reading {name}") from None
        try:
            # Never more than the file holds (an index may name any length).
            want = max(0, min(end, size) - start)
            return os.pread(fd, want, start) if want else b""
        except OSError as exc:
            raise self._os_error(exc, f"reading {name}") from None
        finally:
            os.close(fd)

    def exists(self, name: str) -> bool:
        *parts, base = check_name(name).split("/")
        try:
            folder = self._folder(parts, create=False)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._os_error(exc, f"looking for {name}") from None
        try:
            os.stat(base, dir_fd=folder, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise self._os_error(exc, f"looking for {name}") from None
        finally:
            os.close(folder)

    def put_new(self, name: str, data: bytes) -> bool:
        if self.exists(name):
            return False
        try:
            return self._write(name, data, replace=False)
        except OSError as exc:
            raise self._os_error(exc, f"writing {name}") from None

    def replace(self, name: str, data: bytes) -> None:
        """Write ``name`` whether or not it exists (``stock push --repair``)."""
        try:
            self._write(name, data, replace=True)
        except OSError as exc:
            raise self._os_error(exc, f"writing {name}") from None

    def _write(self, name: str, data: bytes, replace: bool) -> bool:
        *parts, base = check_name(name).split("/")
        folder = self._folder(parts, create=True)
        try:
            return self._write_in(folder, base, data, replace)
        finally:
            os.close(folder)

    def _write_in(self, folder: int, base: str, data: bytes, replace: bool) -> bool:
        at = {"src_dir_fd": folder, "dst_dir_fd": folder}
        for _ in range(3):
            # Written whole under a temporary name, then linked into place: a
            # link never replaces an existing file, so the first writer wins and
            # a reader never sees half an object. os.open with 0o666 lets the
            # umask decide the mode (mkstemp would make every object 0600).
            tmp = f"{INCOMING_PREFIX}{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666, dir_fd=folder)
            try:
                with contextlib.suppress(OSError):  # no locks here: the file is only not cleaned
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                if replace:
                    os.replace(tmp, base, **at)
                    return True
                try:
                    os.link(tmp, base, **at, follow_symlinks=False)
                except FileExistsError:
                    return False
                except FileNotFoundError:
                    # A cleaner took it in the instant between creating and
                    # locking it: write it again.
                    continue
                except OSError:
                    # File systems without hard links (some network shares):
                    # best effort, a rename never exposes a partial object.
                    with contextlib.suppress(FileNotFoundError):
                        os.stat(base, dir_fd=folder, follow_symlinks=False)
                        return False
                    os.replace(tmp, base, **at)
                    return True
                return True
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=folder)
        raise RemoteError(f"stock remote {self.label}: could not write {base}; run the command again")

    def clean_incoming(self) -> int:
        """Remove temporary files that an interrupted push left behind (no
        writer holds their lock); how many were removed. Symlinks and
        symlinked folders are left alone."""
        removed = 0
        for folder in _FOLDERS:
            where = self.root / folder
            if where.is_symlink() or not where.is_dir():
                continue
            try:
                entries = list(os.scandir(where))
            except OSError:
                continue
            for entry in entries:
                if not entry.name.startswith(INCOMING_PREFIX) or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW)
                except OSError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    if os.fstat(fd).st_ino == os.stat(entry.path, follow_symlinks=False).st_ino:
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    continue  # a push is writing it now, or it is gone already
                finally:
                    os.close(fd)
        return removed


class S3Store:
    """A remote on object storage through obstore: S3 and S3-compatible
    (``s3://``), Azure Blob (``az://``) and Google Cloud Storage (``gs://``);
    what differs between them is in :mod:`stockroom.remote.clouds`."""

    def __init__(self, url: RemoteURL, label: str, endpoint: str = "") -> None:
        self.label = label
        self.prefix = url.path
        self.bucket = url.bucket
        self.timeout = url.timeout
        self._cloud = CLOUDS[url.kind]
        self._relay: Relay | None = None
        if _FORKED_AFTER_OBSTORE:
            from stockroom.remote.relay import Relay

            _usable_endpoint(label, endpoint, warn=False, cloud=self._cloud)

            self._relay = Relay(str(url), label, endpoint, url.timeout)
            return
        try:
            from obstore.store import S3Store as ObS3Store
        except ImportError:
            raise RemoteError(
                f"{url.kind}:// remotes need the obstore package: pip install 'stockroom[s3]'"
            ) from None
        endpoint = _usable_endpoint(label, endpoint, cloud=self._cloud)
        if url.kind == "az" and not endpoint:
            # With AZURE_STORAGE_USE_EMULATOR on, object_store reads the
            # emulator's address itself: it gets the same check.
            _usable_endpoint(label, azurite_url(), cloud=self._cloud, source="AZURITE_BLOB_STORAGE_URL")
        # Deadlines (stock.timeout, SPEC 6a): a remote that accepts a
        # connection and never answers fails a request after ``timeout``
        # seconds without a byte (read_timeout, which a stalled upload
        # trips too); a request with no deadline left is not retried
        # (retry_timeout under the timeout); the overall limit only stops a
        # remote that trickles bytes for ever.
        options: Any = {
            "connect_timeout": timedelta(seconds=min(url.timeout, 5.0)),
            "read_timeout": timedelta(seconds=url.timeout),
            "timeout": timedelta(seconds=max(120.0, 4 * url.timeout)),
        }
        retry: Any = {"max_retries": 2, "retry_timeout": timedelta(seconds=url.timeout / 2)}
        if url.kind != "s3":
            build = build_azure if url.kind == "az" else build_gcs
            try:
                self._store = build(url.bucket, endpoint, options, retry)
            except Exception as exc:  # noqa: BLE001 - obstore raises several kinds; all become one line
                # A missing account name, an unreadable credentials file:
                # only the kind is shown, never the message (it may quote them).
                raise RemoteError(
                    f"stock remote {label}: cannot set up the {url.kind}:// client ({type(exc).__name__}); "
                    f"{self._cloud.credentials}"
                ) from None
            return
        config: Any = {}
        if endpoint:
            config["endpoint"] = endpoint
            if endpoint.lower().startswith("http://"):
                config["allow_http"] = True
        if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            config["region"] = "us-east-1"
        kwargs: dict[str, Any] = {}
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            provider = _profile_credentials()
            if provider is not None:
                kwargs["credential_provider"] = provider
        self._store = ObS3Store(
            url.bucket, config=config, client_options=options, retry_config=retry, **kwargs
        )

    def _key(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _fail(self, exc: BaseException, name: str) -> RemoteError:
        from obstore import exceptions as obe

        if isinstance(exc, (obe.NotFoundError, FileNotFoundError)):
            if self._names_no_bucket(str(exc)) or self._no_bucket():
                return self._bucket_missing()
            return ObjectMissing(f"stock remote {self.label} has no object {name}")
        if isinstance(exc, (obe.PermissionDeniedError, obe.UnauthenticatedError)):
            return self._denied()
        # obstore's messages can hold request details: only the kind is shown.
        text = str(exc)
        if (
            "403" in text
            or "Forbidden" in text
            or "InvalidAccessKeyId" in text
            or "SignatureDoesNotMatch" in text
        ):
            return self._denied()
        if self._names_no_bucket(text):
            return self._bucket_missing()
        if "TimedOut" in text or "kind: Timeout" in text or "timed out" in text:
            return RemoteError(
                f"stock remote {self.label} did not answer within {self.timeout:g} s (stock.timeout); "
                f"check the network and the endpoint, then run the command again"
            )
        return RemoteError(
            f"stock remote {self.label} is unreachable or failed ({type(exc).__name__}); "
            f"check the network and the endpoint, then run the command again"
        )

    def _denied(self) -> RemoteError:
        return RemoteError(
            f"stock remote {self.label}: access denied; {self._cloud.credentials} "
            f"and the {self._cloud.bucket_word}'s permissions"
        )

    def _names_no_bucket(self, text: str) -> bool:
        return any(code in text for code in self._cloud.no_bucket_codes)

    def _bucket_missing(self) -> RemoteError:
        word = self._cloud.bucket_word
        return RemoteError(
            f"stock remote {self.label}: no such {word} {self.bucket!r}; create it or fix the URL "
            f"(`stock remote set-url {self.label} {self._cloud.scheme}://{word.upper()}/PREFIX`)"
        )

    def _no_bucket(self) -> bool:
        """After a 404 (a HEAD has no body to tell): whether the bucket itself is missing."""
        import obstore

        try:
            obstore.list(self._store, prefix=self.prefix or None, chunk_size=1).collect()
        except Exception as exc:  # noqa: BLE001 - only the bucket's absence matters here
            return self._names_no_bucket(str(exc)) or "does not exist" in str(exc)
        return False

    def get(self, name: str, limit: int = MAX_OBJECT) -> bytes:
        if self._relay is not None:
            return bytes(self._relay.call("get", name, limit))
        import obstore

        try:
            result = obstore.get(self._store, self._key(name))
            # The size the response declares is checked before its body is
            # read: the client sizes its buffer from it, and a hostile
            # Content-Length would abort the process (a failed allocation).
            if int(result.meta["size"]) > limit:
                raise too_large(self.label, name, limit)
            data = bytes(result.bytes())
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - obstore raises several kinds; all become one line
            raise self._fail(exc, name) from None
        if len(data) > limit:
            raise too_large(self.label, name, limit)
        return data

    def get_range(self, name: str, start: int, end: int) -> bytes:
        if self._relay is not None:
            return bytes(self._relay.call("get_range", name, start, end))
        if end <= start:
            return b""
        import obstore

        try:
            result = obstore.get(self._store, self._key(name), options={"range": (start, end)})
            got = result.range
            if got[0] != start or not start <= got[1] <= end:
                raise RemoteError(
                    f"stock remote {self.label} answered a read of {name} with other bytes than asked "
                    f"for; nothing of it was used; check the endpoint, or {mend_advice(self.label)}"
                )
            data = bytes(result.bytes())
            if len(data) > end - start:
                raise too_large(self.label, name, end - start)
            return data
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - obstore raises several kinds; all become one line
            if "InvalidRange" in str(exc) or "416 Range Not Satisfiable" in str(exc):
                # The object ends before ``start`` (a truncated object): no
                # bytes there, as a file read past its end gives; the caller
                # checks the length and names the object.
                return b""
            raise self._fail(exc, name) from None

    def exists(self, name: str) -> bool:
        if self._relay is not None:
            return bool(self._relay.call("exists", name))
        import obstore
        from obstore import exceptions as obe

        try:
            obstore.head(self._store, self._key(name))
            return True
        except (obe.NotFoundError, FileNotFoundError) as exc:
            if self._names_no_bucket(str(exc)):
                raise self._bucket_missing() from None
            return False
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - obstore raises several kinds; all become one line
            raise self._fail(exc, name) from None

    def put_new(self, name: str, data: bytes) -> bool:
        if self._relay is not None:
            return bool(self._relay.call("put_new", name, data))
        import obstore
        from obstore import exceptions as obe

        try:
            obstore.put(self._store, self._key(name), data, mode="create")
            return True
        except (obe.AlreadyExistsError, obe.PreconditionError, FileExistsError):
            return False
        except RemoteError:
            raise
        except Exception as exc:  # noqa: BLE001 - obstore raises several kinds; all become one line
            raise self._fail(exc, name) from None

    def replace(self, name: str, data: bytes) -> None:
        if self._relay is not None:
            self._relay.call("replace", name, data)
            return
        import obstore

        try:
            obstore.put(self._store, self._key(name), data, mode="overwrite")
        except Exception as exc:  # noqa: BLE001 - obstore raises several kinds; all become one line
            raise self._fail(exc, name) from None

    def clean_incoming(self) -> int:
        # A put is atomic on an object store: nothing half-written is visible.
        return 0


_WARNED_HTTP: set[str] = set()


def _usable_endpoint(
    label: str, endpoint: str, warn: bool = True, cloud: Cloud = CLOUDS["s3"], source: str = ""
) -> str:
    """The endpoint to use (the remote's, else the cloud's variable such as
    ``AWS_ENDPOINT_URL``), checked each time it is used: ``.stockremotes`` and
    the environment can be edited by hand, and a URL obstore cannot take
    would crash it. Plain ``http://`` to another machine sends the requests
    (the session token included) in clear: a warning says so, once per
    process. ``source`` names an environment variable ``endpoint`` came from."""
    from stockroom.remote.url import is_loopback

    if not source:
        source = f"the endpoint of stock remote {label}"
        if not endpoint:
            endpoint, source = endpoint_from_env(cloud)
    if not endpoint:
        return ""
    try:
        check_endpoint(endpoint)
    except ValueError as exc:
        fix = (
            f"fix it in .stockremotes or .git/config (stockremote.{label}.endpoint)"
            if source.startswith("the endpoint")
            else f"fix or unset {source}"
        )
        raise RemoteError(f"{source} is unusable: {exc}; {fix}") from None
    if warn and endpoint.lower().startswith("http://") and not is_loopback(endpoint):
        if label not in _WARNED_HTTP:
            _WARNED_HTTP.add(label)
            host = urlsplit(endpoint).hostname
            sys.stderr.write(
                f"stock: warning: stock remote {label} uses plain http:// to {host}: requests and "
                f"{cloud.exposed} travel unencrypted; use an https:// endpoint\n"
            )
    return endpoint


def _profile_credentials() -> Any:
    """A credential provider reading the AWS profile files, when boto3 is here.

    obstore reads the environment, web identity and instance roles itself;
    named profiles (``~/.aws/credentials``, ``AWS_PROFILE``) need boto3.
    """
    if not (os.environ.get("AWS_PROFILE") or Path("~/.aws/credentials").expanduser().exists()):
        return None
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        return None
    try:
        return Boto3CredentialProvider(boto3.Session())
    except Exception:  # noqa: BLE001 - no usable profile: the default chain applies
        return None


def open_store(url: RemoteURL, label: str, endpoint: str = "") -> ObjectStore:
    """The backend for ``url``; ``label`` names the remote in messages."""
    if url.kind in CLOUDS:
        return S3Store(url, label, endpoint)
    return DirectoryStore(Path(url.path), label)
