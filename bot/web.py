"""A small HTTP server for platform webhooks (and a health check), on tornado.

Tornado comes with python-telegram-bot's webhooks extra. Endpoints are plain async functions of a
`WebRequest` returning a `WebResponse`, so a channel never sees tornado: the Zalo channel's webhook
is one; `GET /health` answers `{"ok": true}` for a reverse proxy or a monitor. Given `probes`, it
also answers `GET /healthz` (the process and its database: 200, or 503 saying what is wrong) and
`GET /metrics` (Prometheus text format, bot/metrics.py).

    server = WebhookServer("127.0.0.1", 8444, {"/zalo": on_zalo})
    await server.start()
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler

log = logging.getLogger("schoolbot.web")

MAX_BODY = 1_048_576  # platform updates are a few kilobytes; refuse anything larger


@dataclass(frozen=True)
class WebRequest:
    """One request as an endpoint sees it: method, headers (lower-case names) and raw body."""

    method: str
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class WebResponse:
    """What to answer: an HTTP status and a JSON body."""

    status: int
    payload: dict[str, Any] = field(default_factory=dict)


Endpoint = Callable[[WebRequest], Awaitable[WebResponse]]


@dataclass(frozen=True)
class Probes:
    """What /healthz and /metrics read: the database's fault (None: it answers), run on a thread; the
    metrics in Prometheus' text format, with its content type."""

    database_fault: Callable[[], str | None]
    metrics: Callable[[], bytes]
    metrics_type: str


class _Route(RequestHandler):
    """Hands POSTs to an endpoint; anything else is 405."""

    endpoint: Endpoint

    def initialize(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def post(self) -> None:
        headers = {name.lower(): value for name, value in self.request.headers.get_all()}
        request = WebRequest(self.request.method or "POST", headers, self.request.body or b"")
        try:
            answer = await self.endpoint(request)
        except Exception:
            log.exception("webhook endpoint %s failed", self.request.path)
            answer = WebResponse(500, {"message": "Internal Server Error"})
        self._send(answer)

    def _send(self, answer: WebResponse) -> None:
        self.set_status(answer.status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(answer.payload))


class _Health(RequestHandler):
    """GET /health: the process is up and serving."""

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"ok": True}))


class _Healthz(RequestHandler):
    """GET /healthz: the process is up and its database answers (200), or 503 with the reason."""

    probes: Probes

    def initialize(self, probes: Probes) -> None:
        self.probes = probes

    async def get(self) -> None:
        try:
            fault = await asyncio.to_thread(self.probes.database_fault)
        except Exception as exc:  # a probe never fails the server; it reports
            fault = type(exc).__name__
        self.set_status(200 if fault is None else 503)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps({"ok": fault is None, "database": fault or "ok"}))


class _Metrics(RequestHandler):
    """GET /metrics: the Prometheus text format (the database's figures read on a thread)."""

    probes: Probes

    def initialize(self, probes: Probes) -> None:
        self.probes = probes

    async def get(self) -> None:
        body = await asyncio.to_thread(self.probes.metrics)
        self.set_header("Content-Type", self.probes.metrics_type)
        self.finish(body)


class WebhookServer:
    """Listens on `listen:port` and routes each path to its endpoint (and /healthz, /metrics)."""

    def __init__(
        self, listen: str, port: int, routes: Mapping[str, Endpoint], probes: Probes | None = None
    ) -> None:
        self.listen = listen
        self.port = port
        handlers: list[Any] = [(r"/health", _Health)]
        if probes is not None:
            handlers += [
                (r"/healthz", _Healthz, {"probes": probes}),
                (r"/metrics", _Metrics, {"probes": probes}),
            ]
        for path, endpoint in routes.items():
            handlers.append(("/" + path.strip("/"), _Route, {"endpoint": endpoint}))
        self.application = Application(handlers, log_function=_quiet_access_log)
        self._server: HTTPServer | None = None

    async def start(self) -> None:
        """Bind and serve (on the running event loop)."""
        # No xheaders: nothing reads the client's address, and tornado would check X-Forwarded-For's
        # (a getaddrinfo) on every POST.
        server = HTTPServer(self.application, max_body_size=MAX_BODY)
        server.listen(self.port, address=self.listen)
        self._server = server
        log.info("webhook server listening on %s:%s", self.listen, self.port)

    async def stop(self) -> None:
        """Stop accepting connections and close the open ones."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()
        await server.close_all_connections()

    @property
    def running(self) -> bool:
        """Whether it is serving."""
        return self._server is not None


def _quiet_access_log(handler: RequestHandler) -> None:
    """One debug line per request; refusals (4xx) at info, so a probe or a wrong secret is visible."""
    status = handler.get_status()
    level = logging.INFO if 400 <= status < 500 else logging.DEBUG
    log.log(level, "%s %s -> %d", handler.request.method, handler.request.path, status)
