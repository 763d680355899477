"""A platform fake's HTTP lifecycle: serve on a free 127.0.0.1 port in a thread, stop cleanly."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class QuietHandler(BaseHTTPRequestHandler):
    """A fake's request handler: no access log, GET and POST both served by `_serve`.

    Without Nagle's algorithm, as a real server: the answer's headers and body go out as two writes,
    and on a kept-alive connection Nagle held the body back until the client's delayed ACK of the
    headers, 40 ms, so every request took 40 ms and a client with few connections was held to a
    few dozen requests a second by the fake, not by itself.
    """

    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests inspect the fake's recorded calls instead."""

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        raise NotImplementedError  # each fake answers its own platform's routes

    def body(self) -> bytes:
        """The request body, as long as Content-Length says."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""


class WideServer(ThreadingHTTPServer):
    """The stdlib server with a listen backlog of 1,024 instead of 5: when 150 chats' replies connect at
    once, a backlog of 5 resets connections Telegram would take, and a test would measure the fake."""

    request_queue_size = 1024
    daemon_threads = True


class LoopbackServer:
    """Subclasses set `_cond`, `_state` (with a `closing` flag) and build their request handler."""

    _cond: threading.Condition
    _state: Any

    def _reset_server(self) -> None:
        self._server: WideServer | None = None
        self._thread: threading.Thread | None = None

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class serving this fake."""
        raise NotImplementedError  # each fake answers its own platform's routes

    def start(self) -> Self:
        """Listen on a free 127.0.0.1 port and serve in a background thread."""
        server = WideServer(("127.0.0.1", 0), self.handler())
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Wake every long poll, stop serving and close the listening socket."""
        with self._cond:
            self._state.closing = True
            self._cond.notify_all()
        if getattr(self, "_server", None) is not None:
            assert self._server is not None
            self._server.shutdown()
            self._server.server_close()
        if getattr(self, "_thread", None) is not None:
            assert self._thread is not None
            self._thread.join(timeout=5)
        self._reset_server()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    def url(self, path: str = "") -> str:
        """The fake's address, with `path` after it."""
        return f"http://127.0.0.1:{self.port}{path}"
