"""Remote URLs: a directory (plain path or ``file://``), ``s3://bucket/prefix``,
``az://container/prefix`` or ``gs://bucket/prefix``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# Query parameters that would carry a secret in a URL.
_SECRET_PARAMS = {
    "secret",
    "secret_access_key",
    "aws_secret_access_key",
    "password",
    "token",
    "session_token",
}
# ``stock.timeout`` when it is not set (SPEC 6a), and the most a hook waits.
DEFAULT_TIMEOUT = 30.0
HOOK_TIMEOUT = 10.0
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# Azure container names: 3 to 63 lower-case letters, digits and single hyphens.
_CONTAINER_RE = re.compile(r"^(?!.*--)[a-z0-9][a-z0-9\-]{1,61}[a-z0-9]$")
# Google Cloud Storage also allows underscores (dotted names may be longer,
# but those need domain verification: not worth the special case).
_GCS_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9._\-]{1,61}[a-z0-9]$")
# The object-store schemes, each with its bucket check and word for a bucket.
_CLOUD_SCHEMES = {
    "s3": (_BUCKET_RE, "bucket"),
    "az": (_CONTAINER_RE, "container"),
    "gs": (_GCS_BUCKET_RE, "bucket"),
}
_SCHEMES = ("file", *_CLOUD_SCHEMES)


@dataclass(frozen=True)
class RemoteURL:
    """A parsed remote location: ``kind`` is ``"dir"``, ``"s3"``, ``"az"`` or ``"gs"``."""

    kind: str
    path: str  # the directory (dir) or the key prefix inside the bucket or container
    bucket: str = ""
    # Seconds a request may go without an answer (``stock.timeout``; see
    # stockroom.remote.config.request_timeout): part of how to reach the
    # remote, so every store opened from it, in any process, has a deadline.
    timeout: float = DEFAULT_TIMEOUT

    def __str__(self) -> str:
        if self.kind != "dir":
            return f"{self.kind}://{self.bucket}/{self.path}".rstrip("/")
        return self.path


def parse_url(url: str, base: Path | None = None) -> RemoteURL:
    """Parse ``url``; a relative directory is taken relative to ``base``.

    Raises ValueError (one line, with the fix) for URLs stockroom cannot use,
    and for any URL that carries credentials: those belong in the cloud's
    credential chain (environment, profile, instance role or managed
    identity), never in a URL that may end up in a tracked file or in output.
    """
    url = url.strip()
    if not url:
        raise ValueError(
            "the remote URL is empty; give a directory, s3://bucket/prefix, az://container/prefix or gs://bucket/prefix"
        )
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme and len(scheme) > 1 and scheme not in _SCHEMES:
        raise ValueError(
            f"unsupported remote URL scheme {scheme!r}; use a directory, file:///path, s3://bucket/prefix, "
            "az://container/prefix or gs://bucket/prefix"
        )
    if scheme in _SCHEMES and (parts.username or parts.password or "@" in parts.netloc):
        raise ValueError(
            "the remote URL holds credentials; remove them (the URL is stored and shown) and use the "
            "cloud's credential chain instead (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or an AWS profile; "
            "AZURE_STORAGE_ACCOUNT_KEY; GOOGLE_APPLICATION_CREDENTIALS)"
        )
    if scheme in _SCHEMES and parts.fragment:
        raise ValueError(
            "the remote URL has a '#' fragment, which stockroom does not use (and which may hold a "
            "secret); remove it"
        )
    if scheme in _SCHEMES and parts.query:
        if any(k.lower() in _SECRET_PARAMS for k in parse_qs(parts.query)) or scheme == "az":
            # An Azure query is most likely a SAS token (sig=...).
            raise ValueError(
                "the remote URL holds a secret in its query; remove it and use the cloud's credential chain "
                "(a SAS token goes in AZURE_STORAGE_SAS_TOKEN)"
            )
        raise ValueError("the remote URL has a query string, which stockroom does not use; remove it")
    if scheme in _CLOUD_SCHEMES:
        bucket = parts.netloc
        pattern, word = _CLOUD_SCHEMES[scheme]
        if not pattern.match(bucket):
            raise ValueError(f"{bucket!r} is not a valid {word} name; use {scheme}://{word}/prefix")
        prefix = parts.path.strip("/")
        if any(seg in ("", ".", "..") for seg in prefix.split("/")) and prefix:
            raise ValueError(
                f"the {scheme} prefix has empty, '.' or '..' segments; use {scheme}://{word}/some/prefix"
            )
        return RemoteURL(scheme, prefix, bucket)
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError("file:// URLs name a local path: use file:///absolute/path")
        path = parts.path
    else:
        path = url
    p = Path(os.path.expanduser(path))
    if not p.is_absolute():
        p = (base or Path.cwd()) / p
    # Normalised, not resolved: a root that is a symbolic link (one that a
    # teammate could point elsewhere) stays visible, and the directory store
    # refuses it rather than writing wherever it points.
    return RemoteURL("dir", os.path.normpath(p))


_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` (an S3 endpoint URL) when stockroom can use it, else
    ValueError with one line and the fix: only ``http://`` or ``https://``
    with a host, and no credentials, query or fragment (they would be stored
    in a tracked file and shown, and the client library does not expect them)."""
    try:
        parts = urlsplit(endpoint)
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise ValueError(
            f"the endpoint {redact(endpoint)!r} is not a URL; give http(s)://HOST[:PORT]"
        ) from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "the endpoint must be an http:// or https:// URL with a host (http(s)://HOST[:PORT])"
        )
    if parts.username or parts.password or "@" in parts.netloc:
        raise ValueError("the endpoint URL holds credentials; remove them and use the AWS credential chain")
    if parts.query or parts.fragment or "?" in endpoint or "#" in endpoint:
        raise ValueError(
            "the endpoint URL has a query or a '#' fragment (which may hold a secret); remove it and use "
            "the AWS credential chain"
        )
    if any(ord(c) < 33 or ord(c) == 127 for c in endpoint):
        raise ValueError("the endpoint URL holds spaces or control characters; fix it")
    return endpoint


def is_loopback(endpoint: str) -> bool:
    """Whether ``endpoint``'s host is this machine (plain http is fine there)."""
    host = (urlsplit(endpoint).hostname or "").lower()
    return host in _LOOPBACK or host.startswith("127.")


def redact(text: str) -> str:
    """``text`` with anything that looks like ``user:secret@``, a query or a
    fragment in a URL removed (each may carry a secret)."""
    text = re.sub(r"(://)[^/@\s]*@", r"\1***@", text)
    return re.sub(r"(://[^\s?#]*)[?#]\S*", r"\1?***", text)
