"""A TCP relay on 127.0.0.1 for the S3 tests: counts bytes, and stands in
for a server that stops and starts again.

A test that stops its S3 server and starts it again must not start the new
one on the old port: once closed, that port is anyone's on a shared machine
(another process's listener, or the local end of an outgoing connection), a
process forked while the old server ran still holds its listening socket,
and moto's ``ThreadedMotoServer.start`` waits for ever when its bind fails
(a CI run hung there). The relay's own port stays bound for as long as the
relay lives; the server behind it comes and goes on ports of its own.
"""

from __future__ import annotations

import socket
import struct
import threading


class TcpRelay:
    """Relays each connection to ``127.0.0.1:upstream``; counts what comes back.

    With no upstream (:meth:`cut`), a connection is reset as soon as it is
    accepted (a client sees its connection reset right after it connected,
    much as a stopped server's port refuses it), and the connections already
    relayed are closed.
    """

    def __init__(self, upstream: int | None) -> None:
        self.upstream = upstream
        self.down = 0  # bytes relayed from the server to its clients
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def point(self, upstream: int) -> None:
        """Relay new connections to ``upstream`` from now on."""
        with self._lock:
            self.upstream = upstream

    def cut(self) -> None:
        """Relay nothing: reset new connections, close the open ones."""
        with self._lock:
            self.upstream = None
            # Under the lock: a pump closes a socket only after taking it out of
            # _open under the lock, so none of these is closed (its fd reused) yet.
            for s in self._open:
                _shut(s)
            self._open = set()

    def close(self) -> None:
        self.cut()
        # shutdown first: it wakes the thread blocked in accept(); close alone may not.
        _shut(self.sock)
        self.sock.close()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return  # closed
            with self._lock:
                upstream = self.upstream
            try:
                if upstream is None:
                    raise ConnectionRefusedError
                server = socket.create_connection(("127.0.0.1", upstream), timeout=10)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                # cut() may have run while this connected: it must not outlive it.
                live = self.upstream == upstream
                if live:
                    self._open.update((client, server))
            if not live:
                _reset(client)
                _reset(server)
                continue
            pumps = [2]  # the pump that ends last closes both sockets
            threading.Thread(target=self._pump, args=(client, server, False, pumps), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True, pumps), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, count: bool, pumps: list[int]) -> None:
        try:
            while data := src.recv(65536):
                if count:
                    with self._lock:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
                pumps[0] -= 1
                last = pumps[0] == 0
            _shut(src)
            _shut(dst)  # wakes the other pump
            if last:  # closed only once no thread uses them (a closed fd's number is reused)
                src.close()
                dst.close()


def _shut(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _reset(s: socket.socket) -> None:
    """Close ``s`` with a reset, as a port nobody listens on answers (SO_LINGER 0)."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()
