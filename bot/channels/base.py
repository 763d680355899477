"""What every channel shares: the `Channel` protocol the composition root (bot/run.py) relies on, and
`ChannelBase`, the lifecycle, typing indicator, webhook URL, token redaction and "cosmetic" calls that
Telegram and Zalo would otherwise each write again. Plus the text splitting both platforms need.

A channel translates at the edge and nothing more: it turns its platform's updates into `Incoming`s,
hands them to the dispatcher, renders the replies, and raises storage.errors' ChannelError subclasses
for its platform's failures. It never registers itself anywhere: bot/run.py starts it and puts its
sender, fetcher and upload limit where the dispatcher and the outbox find them.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Self

import httpx

from bot.web import WebhookServer, WebRequest, WebResponse
from bot.workers import Began
from handlers.types import Media, Reply
from storage.models import User

if TYPE_CHECKING:
    from bot.app import App
    from bot.claims import Claims

log = logging.getLogger("schoolbot.channels")

# A "bad request" naming one of these means the chat is gone for good, not that the message was wrong
# (Telegram's and Zalo's descriptions).
GONE_WORDS = (
    "chat not found",
    "user not found",
    "peer_id_invalid",
    "chat_id is empty",
    "user is deactivated",
)


class Channel(Protocol):
    """A running platform connection, as bot/run.py sees it."""

    failed: asyncio.Event  # set when the channel stopped on its own (a revoked token)

    @property
    def name(self) -> str:
        """The channel's name: users' `channel`, the dispatcher's and the outbox's key."""
        ...

    @property
    def upload_limit(self) -> int | None:
        """Bytes of a file the bot may send a user here (None: no limit)."""
        ...

    async def __aenter__(self) -> Self:
        """Start taking updates."""
        ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop taking updates, finish those in hand, close the connections."""
        ...

    async def stop_taking(self) -> None:
        """Stop taking updates and finish those in hand; the connections stay open (the outbox's last
        sends go through them) until `__aexit__`."""
        ...

    async def send_to_user(self, user: User, replies: list[Reply]) -> str | None:
        """The outbox's sender: deliver replies to a user who is not writing; raises ChannelError. A
        channel that can edit its messages gives back the id of the last one sent (else None)."""
        ...

    async def fetch(self, media: Media) -> bytes:
        """Download a file a user sent; raises FetchError or TooLarge."""
        ...


class WebhookConfig(Protocol):
    """The two settings a webhook URL is made of (read-only: the settings are frozen)."""

    @property
    def webhook_url(self) -> str:
        """The public base URL."""
        ...

    @property
    def url_path(self) -> str:
        """The path the platform posts to."""
        ...


POOL_WAIT = 30.0  # seconds a request may wait for a free connection (connections) before failing


def pool_limits(connections: int) -> httpx.Limits:
    """Up to `connections` requests in flight (telegram.connections: Telegram is 200 ms away from
    Vietnam, so each connection carries about five requests a second), all kept open while idle (for
    httpx's five seconds): a new connection to Telegram costs a TLS handshake, three round trips. On
    bot.channels.sockets an idle connection costs nothing while other requests come and go."""
    return httpx.Limits(max_connections=connections, max_keepalive_connections=connections)


class Gate:
    """At most `connections` requests to a platform at once; the rest wait their turn here, in front of
    httpx's connection pool rather than inside it (httpcore looks at every request waiting in the pool
    each time one starts or ends: with hundreds of replies waiting, that cost more CPU than sending).
    A request that waits POOL_WAIT seconds without a turn fails with `TimeoutError`."""

    def __init__(self, connections: int) -> None:
        self.turns = asyncio.Semaphore(connections)

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold one of the connections for the block."""
        if self.turns.locked():
            async with asyncio.timeout(POOL_WAIT):
                await self.turns.acquire()
        else:
            await self.turns.acquire()
        try:
            yield
        finally:
            self.turns.release()


def verify_secret(given: str, expected: str) -> bool:
    """A webhook's secret header, compared in constant time; never true for an empty secret."""
    return bool(expected) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def webhook_url(config: WebhookConfig) -> str:
    """The public URL the platform calls: `webhook_url`, ending in /`url_path`."""
    base = config.webhook_url.rstrip("/")
    path = config.url_path.strip("/")
    return base if not path or base.endswith("/" + path) else f"{base}/{path}"


class ChannelBase(ABC):
    """Lifecycle (`async with channel:` is start/stop), typing indicator, token redaction, cosmetic calls.

    A subclass sets `name`, `upload_limit` and `token_loggers`, calls `__init__` with its token and
    typing delays, and writes `start`, `stop_taking`, `stop` and `typing`.
    """

    name: ClassVar[str]
    upload_limit: ClassVar[int | None]
    # Loggers whose records can carry the token. A logger's own filters see only the records made
    # on it, hence the list.
    token_loggers: ClassVar[tuple[str, ...]]
    # Whether it sends the writer's replies itself and then settles their standby rows, or hands them
    # over (`Outbox.settle`, `Outbox.hand_over`): the dispatcher writes the rows only then.
    settles_replies: ClassVar[bool] = False
    app: App
    claims: Claims | None  # PostgreSQL: the shared inbox this worker takes from; else None
    server: WebhookServer | None  # webhook mode: the server the platform posts to

    def __init__(self, token: str, typing_after: float, typing_every: float) -> None:
        self.typing_after = typing_after
        self.typing_every = max(typing_every, 0.1)
        self.failed = asyncio.Event()
        self.redactor = TokenRedactor(token)
        for name in self.token_loggers:
            logging.getLogger(name).addFilter(self.redactor)

    async def listen(self, config: Any, on_webhook: Callable[[WebRequest], Awaitable[WebResponse]]) -> None:
        """Serve `on_webhook` at the config's listen, port and url_path (bot/web.py, which also answers
        /healthz and /metrics), before the platform is told where to post."""
        self.server = WebhookServer(
            config.listen, config.port, {config.url_path: on_webhook}, probes=self.app.probes
        )
        await self.server.start()

    async def resume(self) -> None:
        """At start: the updates stored and not handled (a crash, a stop), first, in their order (on
        PostgreSQL: this worker starts taking from the shared inbox, where they wait)."""
        if self.claims is not None:
            self.claims.start()
            return
        await self.app.outbox.send_left(self.name, self.send_to_user)  # a killed process's replies first
        waiting = await self.app.dispatcher.waiting(self.name)
        if waiting:
            self.log.info("%d update(s) stored before the start are handled now", len(waiting))
        for row, payload in waiting:
            await self.requeue(row, payload)

    @abstractmethod
    async def send_to_user(self, user: User, replies: list[Reply]) -> str | None:
        """Deliver messages to a user who is not writing now (the outbox's sender)."""

    @abstractmethod
    async def requeue(self, row: int, payload: dict[str, Any]) -> None:
        """Queue a stored update for handling again (`resume`)."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @abstractmethod
    async def start(self) -> None:
        """Connect and start taking updates."""

    @abstractmethod
    async def stop_taking(self) -> None:
        """Stop taking updates and finish those in hand; the connections stay open for the outbox."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop taking updates (`stop_taking`) and close the connections."""

    @abstractmethod
    async def typing(self, chat_id: str) -> None:
        """One "typing..." action; a failure only costs the indicator."""

    def release_loggers(self) -> None:
        """Take the token filter off the loggers again (at stop)."""
        for name in self.token_loggers:
            logging.getLogger(name).removeFilter(self.redactor)

    def redact(self, text: str) -> str:
        """`text` without the bot token."""
        return self.redactor.redact(text)

    async def cosmetic(self, what: str, call: Awaitable[Any]) -> None:
        """Run a call whose failure must never stop the bot: log a warning instead."""
        try:
            await call
        except Exception as exc:
            self.log.warning("could not %s: %s", what, self.redact(f"{type(exc).__name__}: {exc}"))

    @property
    def log(self) -> logging.Logger:
        """The channel's logger."""
        return logging.getLogger(f"schoolbot.{self.name}")

    async def with_typing(
        self, chat_id: str, work: Awaitable[list[Reply]], began: Began | None = None
    ) -> list[Reply]:
        """Await `work`; show "typing..." once it has run `typing_after` seconds and then every
        `typing_every`. With `began`, the time counts from when the update's own work began, not
        while it waits its turn (bot/workers.py `Began`)."""
        task = asyncio.ensure_future(work)
        try:
            wait = self.typing_after
            while True:
                if wait > 0:
                    await asyncio.wait({task}, timeout=wait)
                if task.done():
                    break
                running = began.running_for() if began is not None else self.typing_after
                if running < self.typing_after:  # in line, or only just begun
                    wait = self.typing_after - running
                    continue
                await self.typing(chat_id)
                wait = self.typing_every
        finally:
            if not task.done():
                task.cancel()
        return task.result()


# ---- text --------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Parts of at most `limit`, cut at line breaks (a line longer than that is cut at a space)."""
    if utf16_len(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        while utf16_len(line) > limit:
            if current:
                parts.append(current)
                current = ""
            cut = _cut_at(line, limit)
            parts.append(line[:cut])
            line = line[cut:].lstrip(" ")
        joined = f"{current}\n{line}" if current else line
        if utf16_len(joined) > limit:
            parts.append(current)
            current = line
        else:
            current = joined
    if current:
        parts.append(current)
    return [p for p in parts if p.strip()]


def _cut_at(line: str, limit: int) -> int:
    units = 0
    end = len(line)
    for index, ch in enumerate(line):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            end = index
            break
    space = line.rfind(" ", 0, end)
    return space if space > end // 2 else end


# ---- secrets -----------------------------------------------------------------------------------


class TokenRedactor(logging.Filter):
    """Replaces the bot token in log records (httpx logs request URLs, which carry it)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        secret = token.partition(":")[2]
        self.secrets = [s for s in (token, secret) if len(s) >= 8]

    def redact(self, text: str) -> str:
        """`text` with the token replaced."""
        for secret in self.secrets:
            text = text.replace(secret, "<token>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message (and traceback text) when it contains the token."""
        if not self.secrets:
            return True
        message = record.getMessage()
        if any(s in message for s in self.secrets):
            record.msg, record.args = self.redact(message), None
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            if any(s in text for s in self.secrets):
                record.exc_text = self.redact(text)
        return True
