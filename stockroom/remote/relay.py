"""S3 requests for a process forked after obstore was loaded.

obstore runs its requests on a Rust (tokio) runtime whose threads do not
survive ``fork()``: in a forked child, such as a PyTorch DataLoader worker
of a process that already read from an S3 remote, the first request hangs
for ever. Such a child sends its requests to a fresh interpreter started
with this module instead (``python -m stockroom.remote.relay URL LABEL
ENDPOINT TIMEOUT``), which makes them with its own runtime.

The exchange on the relay's stdin and stdout: each message is an 8-byte
big-endian length, then a pickle. A request is ``(method, args)``; a reply is
``("ok", value)``, ``("missing", message)`` or ``("error", message)``. The
relay exits when its stdin closes (its parent exited). Only the parent
that started it writes to it, so unpickling its messages is safe.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from typing import IO, Any

from stockroom.remote.objects import ObjectMissing, RemoteError

# What the relay's interpreter runs: its import path is argv[1], given explicitly.
_BOOT = (
    "import sys; sys.path[:0] = sys.argv[1].split(__import__('os').pathsep); "
    "from stockroom.remote.relay import main; sys.exit(main(sys.argv[2:]))"
)
_METHODS = frozenset({"get", "get_range", "exists", "put_new", "replace"})


def _send(out: IO[bytes], message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(len(data).to_bytes(8, "big") + data)
    out.flush()


def _receive(inp: IO[bytes]) -> Any:
    """The next message, or None at the end of the stream."""
    head = inp.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "big")
    data = inp.read(size)
    if len(data) < size:
        return None
    return pickle.loads(data)  # noqa: S301 - written by our own parent process


class Relay:
    """A child interpreter that makes one S3 remote's requests (see the module doc)."""

    def __init__(self, url: str, label: str, endpoint: str, timeout: float) -> None:
        # The relay imports this very copy of stockroom, however this process
        # found it, and then what this process can import, from absolute paths
        # only. Isolated (-I: no current directory or script folder on its
        # path, no PYTHON* variables, no user site): ``python -m`` would put
        # the current directory first, and an obstore.py in the folder a
        # training run starts from (a shared /tmp) would run as this user.
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        cwd = os.getcwd()
        path = [here] + [p for p in sys.path if p and os.path.isabs(p) and p not in (cwd, here)]
        # The request deadline travels too: the relay's requests have the same.
        self.argv = [
            sys.executable,
            "-I",
            "-c",
            _BOOT,
            os.pathsep.join(dict.fromkeys(path)),
            url,
            label,
            endpoint,
            repr(timeout),
        ]
        self.env = dict(os.environ)
        self.label = label
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def call(self, method: str, *args: Any) -> Any:
        with self._lock:  # one request at a time on the pipe
            proc = self._proc
            if proc is None or proc.poll() is not None:
                proc = self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    env=self.env,
                )
            assert proc.stdin is not None and proc.stdout is not None
            try:
                _send(proc.stdin, (method, args))
                reply = _receive(proc.stdout)
            except OSError:
                reply = None
            if reply is None:
                proc.kill()
                proc.wait()
                self._proc = None
                raise RemoteError(
                    f"stock remote {self.label}: the process that reads it for this forked process "
                    f"exited; run the command again"
                )
        kind, value = reply
        if kind == "ok":
            return value
        if kind == "missing":
            raise ObjectMissing(str(value))
        raise RemoteError(str(value))

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()


def main(argv: list[str]) -> int:
    import dataclasses

    from stockroom.remote.objects import S3Store
    from stockroom.remote.url import parse_url

    url, label, endpoint, timeout = argv
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    store: S3Store | None = None
    while (request := _receive(inp)) is not None:
        method, args = request
        try:
            if method not in _METHODS:
                raise RemoteError(f"stock remote {label}: unknown request {method!r}; run the command again")
            if store is None:
                store = S3Store(dataclasses.replace(parse_url(url), timeout=float(timeout)), label, endpoint)
            reply: tuple[str, Any] = ("ok", getattr(store, method)(*args))
        except ObjectMissing as exc:
            reply = ("missing", str(exc))
        except RemoteError as exc:
            reply = ("error", str(exc))
        except Exception as exc:  # noqa: BLE001 - every failure goes back as one line
            reply = ("error", f"stock remote {label} failed ({type(exc).__name__}); run the command again")
        _send(out, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
