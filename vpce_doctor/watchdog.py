"""One deadline per request. A socket timeout bounds each recv, not the request: a server dripping a byte a second
would hold the run for ever. The watchdog shuts the request's sockets down when its whole time is up, and says so."""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Callable, Iterable, Optional


class Watchdog:
    """`with Watchdog(seconds, lambda: sockets) as dog:` ... `dog.fired.is_set()`: the answer was cut short."""

    def __init__(self, seconds: float, sockets: Callable[[], Iterable[Optional[socket.socket]]]) -> None:
        self.fired = threading.Event()
        self._sockets = sockets
        self._timer = threading.Timer(seconds, self._abort)
        self._timer.daemon = True

    def __enter__(self) -> Watchdog:
        self._timer.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._timer.cancel()

    def _abort(self) -> None:
        self.fired.set()  # before the shutdown: the reader must see why its socket died
        for sock in self._sockets():
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
