"""The Zalo channel: Zalo's Bot Platform over httpx, translating updates and replies only.

Wire details, and what is uncertain about them, are in docs/zalo-bot-api.md. In short: a
Telegram-like HTTP API at `<base_url>/bot<token>/<method>`, one update per `getUpdates` call (HTTP
408 when idle, nothing acknowledged, so consumed updates may come back), or a webhook whose body is
wrapped (`{"ok": true, "result": {...}}`) or flat (`{"event_name": ..., "message": ...}`) and whose
only credential is the `X-Bot-Api-Secret-Token` header. No buttons: choices are numbered lines, as
on the console (the same numbers the dispatcher stores). Texts are 1-2,000 characters. Photos come
as URLs, downloaded here; video and documents never reach a bot, so video and document steps take
a link. What Zalo users read differently (those steps' prompts, the photo advice) is in the
catalogue as `channel.zalo.*` sentences, which the dispatcher's translator picks for a Zalo user.

`to_incoming(update)` turns a Zalo update into an `Incoming`; `ZaloChannel` polls or serves the
webhook, hands each update to the dispatcher in order, sends the replies, registers the sender
(alerts to Zalo users) and the fetcher (photo downloads), and counts the monthly message budget.
`run_zalo(settings)` runs it until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import httpx

from bot.app import App, build_app
from bot.channels.console import render as render_numbered
from bot.channels.telegram import GONE_WORDS, TokenRedactor, split_text, until_signalled
from bot.channels.turns import ChatTurns
from bot.web import WebhookServer, WebRequest, WebResponse
from handlers.calendar import Clock
from handlers.types import Incoming, Kind, Media, Reply
from storage import queries as q
from storage.errors import (
    ChannelError,
    ConfigError,
    FetchError,
    Gone,
    Rejected,
    RetryAfter,
    TimedOut,
    TooLarge,
)
from storage.models import User

CHANNEL = "zalo"
MAX_TEXT = 2000  # sendMessage text: 1-2,000 characters (counted here in UTF-16 units, the stricter)
SECRET_HEADER = "X-Bot-Api-Secret-Token"

TEXT = "message.text.received"
IMAGE = "message.image.received"
STICKER = "message.sticker.received"
UNSUPPORTED = "message.unsupported.received"  # video, files, contact cards, protected senders
VOICE = "message.voice.received"  # seen in newer SDKs only
LINK = "message.link.received"  # seen in newer SDKs only: a rich link card
REACTION = "message.reaction.received"  # seen in newer SDKs only: nothing to answer
EVENTS = frozenset({TEXT, IMAGE, STICKER, UNSUPPORTED, VOICE, LINK, REACTION})

SEEN_FOR = 600.0  # seconds an update key is remembered in memory (the database keeps it two days)
SEEN_MAX = 10_000
KEEP_AT_MOST = 5  # replies kept for a user's next message when sending them failed
TOKEN_LOGGERS = ("httpx", "schoolbot.zalo", "schoolbot.dispatch", "schoolbot.web")

log = logging.getLogger("schoolbot.zalo")


# ---- errors ----------------------------------------------------------------------------------


class ZaloError(ChannelError):
    """Zalo answered a call with an error: its code and description."""

    def __init__(self, method: str, code: int, description: str) -> None:
        super().__init__(f"{method}: {code} {description}".strip())
        self.method = method
        self.code = code
        self.description = description


class TokenRejected(ZaloError):
    """401: the token is wrong, or was reset (revoked) in Zalo Bot Creator."""


class Unavailable(ZaloError):
    """408, 425 or 5xx: Zalo could not answer now; try again later."""


class RateLimited(RetryAfter):
    """429: Zalo's quota is exceeded (Zalo publishes no per-second limit)."""

    def __init__(self, method: str, description: str, seconds: float = 0.0) -> None:
        super().__init__(seconds)
        self.method = method
        self.description = description
        self.args = (f"{method}: 429 {description}".strip(),)


class ZaloGone(ZaloError, Gone):
    """404, or a 400 naming a missing chat or user: the chat no longer exists."""


class ZaloRejected(ZaloError, Rejected):
    """Another 400: this message can never be sent as it is."""


class NetworkError(ChannelError):
    """The request did not complete (connection refused, reset)."""

    timed_out = False


class NetworkTimeout(NetworkError, TimedOut):
    """The request timed out: Zalo may have acted on it."""

    timed_out = True


class BudgetExhausted(RetryAfter):
    """The month's message budget is used up; try again when the month turns (`retry_after`)."""


class PhotoTooLarge(TooLarge):
    """A photo URL serves more bytes than the bot downloads; `size` is what was seen."""

    def __init__(self, size: int) -> None:
        super().__init__(f"photo of at least {size} bytes")
        self.size = size


def error_for(method: str, code: int, description: str, retry_after: float = 0.0) -> ChannelError:
    """The exception for a Zalo error code (documented: 400, 401, 403, 404, 408, 429)."""
    if code == 401:
        return TokenRejected(method, code, description)
    if code == 429:
        return RateLimited(method, description, retry_after)
    if code in (408, 425) or code >= 500:
        return Unavailable(method, code, description)
    if code == 404 or (code == 400 and any(word in description.lower() for word in GONE_WORDS)):
        return ZaloGone(method, code, description)
    if code == 400:
        return ZaloRejected(method, code, description)
    return ZaloError(method, code, description)


def transient(exc: BaseException) -> bool:
    """Whether trying the same call again later may work."""
    return isinstance(exc, RateLimited | Unavailable | NetworkError)


# ---- the HTTP API ----------------------------------------------------------------------------


class ZaloAPI:
    """Calls `<base_url>/bot<token>/<method>` with a JSON body; returns `result` or raises."""

    def __init__(self, base_url: str, token: str, client: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client

    def clean(self, text: str) -> str:
        """`text` without the token."""
        return text.replace(self.token, "<token>") if self.token else text

    async def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """One call. Both the HTTP status and `ok`/`error_code` are checked (Zalo sends both)."""
        url = f"{self.base_url}/bot{self.token}/{method}"
        wait: Any = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        try:
            response = await self.client.post(url, json=params or {}, timeout=wait)
        except httpx.TimeoutException as exc:
            raise NetworkTimeout(f"{method}: timed out ({type(exc).__name__})") from None
        except httpx.HTTPError as exc:
            raise NetworkError(self.clean(f"{method}: {type(exc).__name__}: {exc}")) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {}
        if response.status_code == 200 and body.get("ok") is True:
            return body.get("result")
        code = body.get("error_code")
        if not isinstance(code, int) or isinstance(code, bool) or code <= 0:
            code = response.status_code if response.status_code >= 400 else 0
        description = self.clean(
            str(body.get("description") or response.reason_phrase or "unexpected answer")
        )
        parameters = body.get("parameters")
        retry = parameters.get("retry_after") if isinstance(parameters, dict) else None
        seconds = float(retry) if isinstance(retry, int | float) and not isinstance(retry, bool) else 0.0
        raise error_for(method, code, description[:300], seconds)

    async def get_updates(self, timeout: float) -> list[dict[str, Any]]:
        """Updates waiting (usually one); [] when the long poll ended idle (HTTP 408 is normal)."""
        seconds = max(1, round(timeout))
        try:
            result = await self.call("getUpdates", {"timeout": str(seconds)}, timeout=seconds + 10)
        except ZaloError as exc:
            if exc.code == 408 or "timeout" in exc.description.lower():
                return []
            raise
        except NetworkError as exc:
            if exc.timed_out:
                return []
            raise
        if isinstance(result, dict):
            return [result]
        if isinstance(result, list):  # the docs show one object; some clients handle arrays
            return [u for u in result if isinstance(u, dict)]
        return []


async def download(client: httpx.AsyncClient, url: str, limit: int, timeout: float) -> tuple[bytes, str]:
    """The bytes at a photo URL and their MIME type; PhotoTooLarge past `limit`, FetchError else.

    The whole download must finish within `timeout` seconds (a server dripping bytes is cut).
    """
    if not url.startswith(("https://", "http://")):
        raise FetchError("not an http(s) URL")
    try:
        async with asyncio.timeout(timeout), client.stream("GET", url) as response:
            if response.status_code != 200:
                raise FetchError(f"the photo URL answered HTTP {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PhotoTooLarge(int(declared))
            chunks: list[bytes] = []
            total = 0
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > limit:
                    raise PhotoTooLarge(total)
                chunks.append(chunk)
            mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return b"".join(chunks), mime
    except TimeoutError:
        raise FetchError(f"the photo URL did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"photo download failed: {type(exc).__name__}") from None


# ---- updates in ------------------------------------------------------------------------------


def unwrap(body: Any) -> dict[str, Any] | None:
    """The update in a webhook body or a getUpdates result, wrapped or flat; None without event_name."""
    if isinstance(body, dict) and body.get("ok") is True and isinstance(body.get("result"), dict):
        body = body["result"]
    if isinstance(body, dict) and isinstance(body.get("event_name"), str) and body["event_name"]:
        return body
    return None


def verify_secret(given: str, expected: str) -> bool:
    """The webhook's secret header, compared in constant time; never true for an empty secret."""
    return bool(expected) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def update_key(update: dict[str, Any]) -> str:
    """`event_name:message_id`, the dedupe key (a hash of the message when it has no id)."""
    event = str(update.get("event_name", ""))
    message = update.get("message")
    ident = message.get("message_id") if isinstance(message, dict) else None
    if isinstance(ident, str | int) and not isinstance(ident, bool) and str(ident):
        key = f"{event}:{ident}"
    else:
        canonical = json.dumps(message or update, sort_keys=True, ensure_ascii=False, default=str)
        key = f"{event}:h{hashlib.sha256(canonical.encode()).hexdigest()[:32]}"
    if len(key) > 80:  # the database keeps at most 96 characters, with "zalo:" in front
        key = f"{event[:30]}:h{hashlib.sha256(key.encode()).hexdigest()[:40]}"
    return key


def to_incoming(update: dict[str, Any]) -> Incoming | None:
    """A private chat's message as an Incoming; None for anything we do not answer."""
    update = unwrap(update) or {}
    event, message = update.get("event_name"), update.get("message")
    if not isinstance(message, dict):
        return None
    sender, chat = field_dict(message, "from"), field_dict(message, "chat")
    if sender.get("is_bot") is True or str(chat.get("chat_type") or "PRIVATE").upper() != "PRIVATE":
        return None  # groups are in beta at Zalo; the bot answers private chats only
    user_id = str(sender.get("id") or chat.get("id") or "")
    if not user_id:
        return None
    who = {
        "channel": CHANNEL,
        "user_id": user_id,
        "chat_id": str(chat.get("id") or user_id),
        "display_name": display_name(sender),
        "update_id": update_key(update),
    }
    return _by_event(str(event), message, who)


def field_dict(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` when it is an object, else {}."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def field_str(data: dict[str, Any], key: str) -> str:
    """`data[key]` when it is a string, else ""."""
    value = data.get(key)
    return value if isinstance(value, str) else ""


def display_name(sender: dict[str, Any]) -> str:
    """`display_name`, then the older `name` or `first_name`."""
    for field in ("display_name", "name", "first_name"):
        value = sender.get(field)
        if isinstance(value, str) and value.strip():
            return value.strip()[:200]
    return ""


def _by_event(event: str, message: dict[str, Any], who: dict[str, Any]) -> Incoming | None:
    text = field_str(message, "text")
    if event == TEXT:
        return command_or_text(who, text)
    if event == IMAGE:
        url = photo_url(message)
        caption = field_str(message, "caption")
        if not url:
            return Incoming(**who, kind=Kind.OTHER, text=caption)
        return Incoming(**who, kind=Kind.MEDIA, media=(photo_media(url),), text=caption)
    if event == STICKER:
        return Incoming(**who, kind=Kind.STICKER)
    if event == VOICE:
        return Incoming(**who, kind=Kind.VOICE)
    if event == LINK:  # a link card: its text or URL is what the user meant to send
        link = text or field_str(message, "url")
        return Incoming(**who, kind=Kind.TEXT, text=link) if link else Incoming(**who, kind=Kind.OTHER)
    if event == UNSUPPORTED:
        return Incoming(**who, kind=Kind.OTHER)
    return None  # reactions, and events nobody has documented yet


def command_or_text(who: dict[str, Any], text: str) -> Incoming:
    """`/cmd args` is a command (`/start CODE` too); anything else is text (a pasted code as well)."""
    stripped = text.strip()
    if stripped.startswith("/") and len(stripped) > 1 and (stripped[1].isalnum() or stripped[1] == "_"):
        head, *rest = stripped[1:].split(maxsplit=1)
        return Incoming(
            **who, kind=Kind.COMMAND, command=head, args=rest[0].strip() if rest else "", text=text
        )
    return Incoming(**who, kind=Kind.TEXT, text=text)


def photo_url(message: dict[str, Any]) -> str:
    """The image's URL: `photo_url` in real traffic, `photo` in the docs."""
    for field in ("photo_url", "photo"):
        value = message.get(field)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
    return ""


def photo_media(url: str) -> Media:
    """A photo known only by its URL (no file id, no size until it is downloaded)."""
    name = PurePosixPath(unquote(urlsplit(url).path)).name
    return Media(kind="photo", file_id=url, file_name=name[:200])


# ---- replies out -----------------------------------------------------------------------------


def render_parts(replies: Sequence[Reply]) -> list[str]:
    """Replies as Zalo messages: one text with numbered choices, cut under 2,000 at line breaks.

    The numbers are the console's, which are the dispatcher's (`handlers.types.numbered`). Sending
    a batch as one text spends one message of the monthly budget instead of one per reply.
    """
    return split_text(render_numbered(list(replies)), MAX_TEXT)


# ---- the monthly budget ----------------------------------------------------------------------


class BudgetStore(Protocol):
    """Where the month's count lives: this process (MemoryBudgetStore) or, later, the database."""

    def used(self, month: str) -> int:
        """Messages counted for `month` ("YYYY-MM")."""
        ...

    def add(self, month: str, count: int) -> int:
        """Count `count` more for `month`; the new total."""
        ...


class MemoryBudgetStore:
    """The count in this process only: a restart starts it again from zero."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def used(self, month: str) -> int:
        """Messages counted for `month`."""
        return self.counts.get(month, 0)

    def add(self, month: str, count: int) -> int:
        """Count more for `month`; the new total."""
        self.counts[month] = self.used(month) + count
        return self.counts[month]


class DbBudgetStore:
    """The count in the database: it survives restarts and is shared with `schoolbot outbox`."""

    def __init__(self, db: Any, channel: str = "zalo") -> None:
        self.db = db
        self.channel = channel

    def used(self, month: str) -> int:
        """Messages counted for `month`."""
        with self.db.session() as s:
            return q.usage(s, self.channel, month)

    def add(self, month: str, count: int) -> int:
        """Count more for `month`; the new total."""
        with self.db.session() as s:
            return q.add_usage(s, self.channel, month, count)


class MonthlyBudget:
    """Messages the bot may send in a calendar month (office time zone); `limit` None: no limit.

    Counted as messages are sent, in `store`: this process's memory unless a durable store (a
    database table, shared with `schoolbot outbox`) is given.
    """

    def __init__(
        self, limit: int | None, clock: Clock, used: int = 0, store: BudgetStore | None = None
    ) -> None:
        self.limit = limit
        self.clock = clock
        self.store: BudgetStore = store or MemoryBudgetStore()
        self._warned = ""
        if used:
            self.store.add(self.month(), used)

    def month(self) -> str:
        """The current month, "YYYY-MM"."""
        return self.clock.now().strftime("%Y-%m")

    @property
    def used(self) -> int:
        """Messages sent this month."""
        return self.store.used(self.month())

    @property
    def remaining(self) -> int | None:
        """Messages left this month (None: no limit)."""
        return None if self.limit is None else max(0, self.limit - self.used)

    def allows(self, count: int = 1) -> bool:
        """Whether `count` more messages fit in this month's budget."""
        remaining = self.remaining
        return remaining is None or remaining >= count

    def spend(self, count: int = 1) -> None:
        """Count messages sent; warn once a month when the budget runs out."""
        month = self.month()
        total = self.store.add(month, count)
        if self.limit is not None and total >= self.limit and self._warned != month:
            self._warned = month
            log.warning(
                "the Zalo monthly budget of %d messages is used up for %s: alerts wait until %s",
                self.limit,
                month,
                self.resets_at().strftime("%Y-%m-%d %H:%M"),
            )

    def resets_at(self) -> datetime:
        """When the next month begins."""
        now = self.clock.now()
        year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
        return now.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)

    def seconds_until_reset(self) -> float:
        """Seconds until the budget starts again."""
        return max(1.0, (self.resets_at() - self.clock.now()).total_seconds())

    def status(self) -> dict[str, Any]:
        """For `schoolbot outbox`: month, limit, used, remaining."""
        return {"month": self.month(), "limit": self.limit, "used": self.used, "remaining": self.remaining}


class RecentKeys:
    """Update keys seen in the last `ttl` seconds (a cheap first dedupe before the database's)."""

    def __init__(self, ttl: float = SEEN_FOR, cap: int = SEEN_MAX) -> None:
        self.ttl = ttl
        self.cap = cap
        self._keys: OrderedDict[str, float] = OrderedDict()

    def add(self, key: str) -> bool:
        """Remember `key`; False when it was seen recently."""
        now = time.monotonic()
        while self._keys and (len(self._keys) >= self.cap or next(iter(self._keys.values())) < now):
            self._keys.popitem(last=False)
        if key in self._keys:
            return False
        self._keys[key] = now + self.ttl
        return True


# ---- the channel -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    """How long to wait for what; tests shorten these."""

    poll_timeout: float = 30.0  # seconds a getUpdates call waits for an update
    typing_after: float = 1.0  # "typing..." once a reply takes this long (0: at once)
    typing_every: float = 4.5  # Zalo's indicator lasts about 5 s
    send_retries: tuple[float, ...] = (0.5, 1.5)  # waits before resending after 408/429/5xx
    backoff_base: float = 1.0  # getUpdates after a failure: 1, 2, 4... seconds
    backoff_max: float = 60.0
    replay_gap: float = 1.0  # pause after a poll that brought only updates already seen
    fetch_timeout: float = 20.0  # a whole photo download
    bootstrap_retries: int = 3  # getMe / setWebhook at start
    drain_timeout: float = 10.0  # at stop, for updates already received


def chat_of(update: dict[str, Any]) -> str:
    """The chat an update belongs to (its sender's, in a private chat)."""
    message = field_dict(update, "message")
    chat, sender = field_dict(message, "chat"), field_dict(message, "from")
    return str(chat.get("id") or sender.get("id") or "")


class ZaloChannel:
    """The bot on Zalo. `async with ZaloChannel(app):` starts it (polling or webhook, per
    settings.zalo.mode) and stops it; `handled` counts the updates processed so far; `failed` is
    set when Zalo rejects the token (revoked), after which the channel takes no more updates.

    `transport` replaces the network (httpx.MockTransport in tests).
    """

    def __init__(
        self, app: App, *, timing: Timing | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.app = app
        self.config = app.settings.zalo
        self.timing = timing or Timing()
        token = self.config.token.get_secret_value()
        self.redactor = TokenRedactor(token)
        for name in TOKEN_LOGGERS:
            logging.getLogger(name).addFilter(self.redactor)
        self.client = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(20.0, connect=10.0))
        self.files = httpx.AsyncClient(
            transport=transport, timeout=self.timing.fetch_timeout, follow_redirects=True, max_redirects=5
        )
        self.api = ZaloAPI(self.config.base_url, token, self.client)
        self.budget = MonthlyBudget(
            self.config.monthly_budget or None, app.clock, store=DbBudgetStore(app.db)
        )
        self.me: dict[str, Any] = {}
        self.handled = 0
        self.failed = asyncio.Event()
        self.server: WebhookServer | None = None
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._seen = RecentKeys()
        self._prefetched: dict[str, bytes] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._turns = ChatTurns(self.config.concurrent_chats)
        self._closed = False

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> ZaloChannel:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect (getMe), then take updates by polling or through the webhook.

        Raises ConfigError when Zalo rejects the token (the message never quotes it).
        """
        try:
            await self.connect()
            self.app.dispatcher.senders[CHANNEL] = self.send_to_user
            self.app.dispatcher.fetchers[CHANNEL] = self.fetch
            self._spawn("worker", self.work())
            if self.config.mode == "webhook":
                await self.start_webhook()
            else:
                await self.cosmetic("delete a webhook left from webhook mode", self.api.call("deleteWebhook"))
                self._spawn("poller", self.poll())
        except BaseException:
            await self.stop()
            raise

    async def connect(self) -> None:
        """getMe, retried on network and server errors; log who we are."""
        self.me = await self.bootstrap("getMe") or {}
        log.info(
            "connected to Zalo as %s (id %s, %s)",
            self.me.get("account_name") or "?",
            self.me.get("id") or "?",
            self.config.mode,
        )

    async def bootstrap(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """A call that must work for the channel to start: a few tries, then ChannelError."""
        for attempt in range(self.timing.bootstrap_retries + 1):
            try:
                return await self.api.call(method, params)
            except TokenRejected:
                raise ConfigError(
                    "zalo.token = ***: Zalo rejected this bot token (HTTP 401); "
                    "it is wrong, or was reset in Zalo Bot Creator"
                ) from None
            except ChannelError as exc:
                if not transient(exc) or attempt == self.timing.bootstrap_retries:
                    raise ChannelError(f"Zalo {method} failed: {self.redact(str(exc))}") from None
                wait = self.backoff(attempt)
                log.warning(
                    "Zalo %s failed (%s); trying again in %.1f s", method, self.redact(str(exc)), wait
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def start_webhook(self) -> None:
        """Serve the webhook, then tell Zalo where it is (setWebhook with the secret)."""
        self.server = WebhookServer(
            self.config.listen, self.config.port, {self.config.url_path: self.on_webhook}
        )
        await self.server.start()
        url = self.webhook_url()
        await self.bootstrap(
            "setWebhook", {"url": url, "secret_token": self.config.secret_token.get_secret_value()}
        )
        log.info("Zalo webhook set to %s", url)

    def webhook_url(self) -> str:
        """The public URL Zalo calls: zalo.webhook_url, ending in /url_path."""
        base = self.config.webhook_url.rstrip("/")
        path = self.config.url_path.strip("/")
        return base if not path or base.endswith("/" + path) else f"{base}/{path}"

    async def stop(self) -> None:
        """Stop taking updates, handle those already received, close the connections."""
        if self._closed:
            return
        self._closed = True
        if self.app.dispatcher.senders.get(CHANNEL) == self.send_to_user:
            del self.app.dispatcher.senders[CHANNEL]
        if self.app.dispatcher.fetchers.get(CHANNEL) == self.fetch:
            del self.app.dispatcher.fetchers[CHANNEL]
        await self._cancel("poller")
        if self.server is not None:
            await self.server.stop()
        if "worker" in self._tasks and not self._tasks["worker"].done():
            try:
                await asyncio.wait_for(self._queue.join(), self.timing.drain_timeout)
            except TimeoutError:
                log.warning("%d Zalo update(s) were not handled before stopping", self._queue.qsize())
        for name in list(self._tasks):
            await self._cancel(name)
        await self._turns.cancel()
        await self.client.aclose()
        await self.files.aclose()
        for name in TOKEN_LOGGERS:
            logging.getLogger(name).removeFilter(self.redactor)

    def _spawn(self, name: str, work: Awaitable[None]) -> None:
        self._tasks[name] = asyncio.ensure_future(work)

    async def _cancel(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def backoff(self, failures: int) -> float:
        """Seconds to wait after `failures` failures in a row: doubling, capped."""
        return float(min(self.timing.backoff_max, self.timing.backoff_base * 2 ** min(failures, 30)))

    def redact(self, text: str) -> str:
        """`text` without the bot token."""
        return self.redactor.redact(text)

    async def cosmetic(self, what: str, call: Awaitable[Any]) -> None:
        """A call whose failure must not stop the bot: logged as a warning."""
        try:
            await call
        except ChannelError as exc:
            log.warning("could not %s: %s", what, self.redact(str(exc)))

    def token_revoked(self, where: str) -> None:
        """Zalo answered 401 while running: stop taking updates and sending, and say so, once, plainly."""
        if self.failed.is_set():
            return
        self.failed.set()
        # Without a sender here the outbox leaves Zalo rows pending for a process with a good token.
        if self.app.dispatcher.senders.get(CHANNEL) == self.send_to_user:
            del self.app.dispatcher.senders[CHANNEL]
        log.error(
            "Zalo rejected the bot token (HTTP 401 on %s): it was revoked or reset in Zalo Bot "
            "Creator. The Zalo channel takes no more updates; replies that could not be sent are "
            "kept. Put the new token in zalo.token (or SCHOOLBOT_ZALO__TOKEN) and restart.",
            where,
        )

    # ---- updates in ----------------------------------------------------------------------------

    async def poll(self) -> None:
        """Long-poll getUpdates until stopped or the token is rejected; back off on failures."""
        failures = 0
        while not self.failed.is_set():
            try:
                updates = await self.api.get_updates(self.timing.poll_timeout)
            except TokenRejected:
                self.token_revoked("getUpdates")
                return
            except Exception as exc:
                wait = max(self.backoff(failures), getattr(exc, "retry_after", 0.0) or 0.0)
                failures += 1
                log.warning(
                    "Zalo getUpdates failed (%s); polling again in %.1f s", self.redact(str(exc)), wait
                )
                await asyncio.sleep(wait)
                continue
            failures = 0
            fresh = sum(self.accept(update) for update in updates)
            if updates and not fresh and self.timing.replay_gap:
                await asyncio.sleep(self.timing.replay_gap)  # Zalo replaying what we already have

    def accept(self, update: dict[str, Any]) -> bool:
        """Queue an update unless it is unknown, empty or a duplicate; True when queued."""
        found = unwrap(update)
        if found is None:
            log.info("ignored a Zalo update without event_name")
            return False
        event = found["event_name"]
        if event not in EVENTS:
            log.info("ignored an unknown Zalo event %r", event[:64])
            return False
        if not isinstance(found.get("message"), dict):
            log.info("ignored a Zalo %s without a message", event)
            return False
        key = update_key(found)
        if not self._seen.add(key):
            log.debug("dropped a repeated Zalo update %s", key)
            return False
        self._queue.put_nowait(found)
        return True

    async def on_webhook(self, request: WebRequest) -> WebResponse:
        """Zalo's POST: secret checked in constant time (403), body parsed (400), queued (200)."""
        secret = self.config.secret_token.get_secret_value()
        if not verify_secret(request.headers.get(SECRET_HEADER.lower(), ""), secret):
            log.warning("refused a Zalo webhook call without the right secret (403)")
            return WebResponse(403, {"message": "Forbidden"})
        try:
            body = json.loads(request.body)
        except ValueError:
            return WebResponse(400, {"message": "Bad Request: the body is not JSON"})
        update = unwrap(body)
        if update is None:
            return WebResponse(400, {"message": "Bad Request: no event_name"})
        self.accept(update)  # unknown events and repeats are answered 200 too, and dropped
        return WebResponse(200, {"message": "Success"})

    async def work(self) -> None:
        """Hand queued updates out: different chats side by side, each chat's in the order they came."""
        while True:
            update = await self._queue.get()
            self._turns.run(chat_of(update), lambda update=update: self.handle_one(update))

    async def handle_one(self, update: dict[str, Any]) -> None:
        """One update, whatever happens to it (counted, and marked done for the drain at stop)."""
        try:
            await self.handle_update(update)
        except Exception:
            log.exception("a Zalo update failed")
        finally:
            self.handled += 1
            self._queue.task_done()

    async def handle_update(self, update: dict[str, Any]) -> None:
        """Convert, download a photo at once (its URL can expire), dispatch, send the replies."""
        incoming = to_incoming(update)
        if incoming is None:
            return
        incoming = await self.prefetch(incoming)
        try:
            replies = await self.with_typing(incoming.chat_id, self.app.dispatcher.handle(incoming))
        finally:
            for media in incoming.media:
                self._prefetched.pop(media.file_id, None)
        await self.reply(incoming, replies)

    async def prefetch(self, msg: Incoming) -> Incoming:
        """Download each photo now; note its real size and type so the photo rules can judge it."""
        if msg.kind != Kind.MEDIA:
            return msg
        media = []
        for item in msg.media:
            try:
                data, mime = await self.download(item.file_id)
            except PhotoTooLarge as exc:
                media.append(replace(item, size=exc.size))
                continue
            except FetchError as exc:
                log.warning("could not download a photo from Zalo yet: %s", exc)
                media.append(item)
                continue
            self._prefetched[item.file_id] = data
            media.append(replace(item, size=len(data), mime_type=mime if mime.startswith("image/") else ""))
        return replace(msg, media=tuple(media))

    async def download(self, url: str) -> tuple[bytes, str]:
        """A photo URL's bytes within media.max_download_mb and the fetch time-out."""
        limit = int(self.app.settings.media.max_download_mb * 1_048_576)
        return await download(self.files, url, limit, self.timing.fetch_timeout)

    async def fetch(self, media: Media) -> bytes:
        """The dispatcher's fetcher: the bytes downloaded on arrival, else a fresh download."""
        data = self._prefetched.pop(media.file_id, None)
        if data is not None:
            return data
        data, _ = await self.download(media.file_id)
        return data

    async def with_typing(self, chat_id: str, work: Awaitable[list[Reply]]) -> list[Reply]:
        """Await `work`; show "typing..." after `typing_after` seconds and every `typing_every`."""
        task = asyncio.ensure_future(work)
        try:
            if self.timing.typing_after > 0:
                await asyncio.wait({task}, timeout=self.timing.typing_after)
            while not task.done():
                await self.typing(chat_id)
                await asyncio.wait({task}, timeout=max(self.timing.typing_every, 0.1))
        finally:
            if not task.done():
                task.cancel()
        return task.result()

    async def typing(self, chat_id: str) -> None:
        """One "typing..." action (not a message: the budget is not charged)."""
        try:
            await self.api.call("sendChatAction", {"chat_id": chat_id, "action": "typing"})
        except TokenRejected:
            self.token_revoked("sendChatAction")
        except ChannelError as exc:
            log.debug("typing indicator failed: %s", self.redact(str(exc)))

    # ---- replies out ---------------------------------------------------------------------------

    async def reply(self, msg: Incoming, replies: list[Reply]) -> None:
        """Send the writer's replies; when that fails they are kept for the writer's next message."""
        if not replies:
            return
        user = self.account(msg.user_id)
        try:
            await self.send_text(msg.chat_id, render_parts(self.present(user, replies)))
        except ChannelError as exc:
            log.warning(
                "could not reply to Zalo user %s (%s); the replies are kept for their next message",
                msg.user_id,
                self.redact(str(exc)),
            )
            self.keep(user, replies)

    async def send_to_user(self, user: User, replies: list[Reply]) -> None:
        """The outbox's sender for Zalo users (alerts, reminders): one try, the outbox retries.

        Raises BudgetExhausted (a RetryAfter until the month turns) once the month's budget is
        spent, RateLimited on Zalo's 429, ZaloError/NetworkError otherwise.
        """
        if self.failed.is_set():
            raise ChannelError("the Zalo token was rejected; the Zalo channel is stopped")
        if not user.chat_id:
            raise ChannelError(f"Zalo user #{user.id} has no chat id")
        parts = render_parts(self.present(user, replies))
        if not self.budget.allows(len(parts)):
            raise BudgetExhausted(self.budget.seconds_until_reset())
        await self.send_text(user.chat_id, parts, retry=False)
        self.app.dispatcher.remember_menu(user, replies, CHANNEL)  # numbers only once they are seen

    async def send_text(self, chat_id: str, parts: list[str], retry: bool = True) -> None:
        """Send each part as one plain-text message."""
        for part in parts:
            await self.send_message(chat_id, part, retry)

    async def send_message(self, chat_id: str, text: str, retry: bool = True) -> Any:
        """sendMessage, resent (`retry`) after 408/429/5xx or a network error; counted in the budget."""
        waits = self.timing.send_retries if retry else ()
        for attempt in range(len(waits) + 1):
            try:
                result = await self.api.call("sendMessage", {"chat_id": chat_id, "text": text})
            except TokenRejected:
                self.token_revoked("sendMessage")
                raise
            except ChannelError as exc:
                if not transient(exc) or attempt == len(waits):
                    raise
                wait = max(waits[attempt], min(getattr(exc, "retry_after", 0.0) or 0.0, 30.0))
                log.info("Zalo sendMessage failed (%s); resending in %.1f s", self.redact(str(exc)), wait)
                await asyncio.sleep(wait)
                continue
            self.budget.spend()
            return result
        raise AssertionError("unreachable")

    def account(self, external_id: str) -> User | None:
        """The stored account of a Zalo user."""
        with self.app.db.session() as s:
            user = q.get_user(s, CHANNEL, external_id)
            if user is not None:
                s.expunge(user)
        return user

    def keep(self, user: User | None, replies: list[Reply]) -> None:
        """Keep the last few replies for the user's next message (as the dispatcher does for alerts)."""
        if user is None or user.id is None:
            return
        with self.app.db.session() as s:
            for reply in replies[-KEEP_AT_MOST:]:
                q.keep_for_later(s, user.id, reply.to_payload(), self.app.clock.now())

    def present(self, user: User | None, replies: list[Reply]) -> list[Reply]:
        """The replies in Zalo's terms: files Zalo cannot send are named, with a note, and dropped.

        The words are already Zalo's (the translator prefers the catalogue's `channel.zalo.*`
        sentences); only texts change here, never choices, so the numbers stay the dispatcher's.
        A file's place on the server or its Telegram reference never reaches the reader.
        """
        locale = (user.locale if user is not None else "") or self.app.settings.locale
        t = self.app.catalog.translator(locale, CHANNEL)
        shown = []
        for reply in replies:
            if not (reply.photo_path or reply.file_path or reply.attachments):
                shown.append(reply)
                continue
            lines = [reply.text]
            names = [a.caption for a in reply.attachments if a.caption]
            if names:
                lines.append(t("zalo.files_named", names=", ".join(names)))
            lines.append(t("zalo.no_files"))
            shown.append(replace(reply, text="\n".join(lines), photo_path="", file_path="", attachments=()))
        return shown


# ---- running ---------------------------------------------------------------------------------


async def first_of(*waits: Awaitable[Any]) -> None:
    """Wait until any of `waits` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_zalo(settings: Any, with_telegram: bool = False) -> None:
    """Run the bot on Zalo (and Telegram, `with_telegram`) until SIGINT/SIGTERM.

    Zalo alone stops with a ConfigError when Zalo rejects the token while running; next to
    Telegram, the Telegram channel goes on and the log says why Zalo stopped.
    """
    tokens = [settings.zalo.token.get_secret_value()]
    if with_telegram:
        tokens.append(settings.telegram.token.get_secret_value())
    for token in tokens:
        redactor = TokenRedactor(token)
        for handler in logging.getLogger().handlers:
            handler.addFilter(redactor)  # the last line of defence for any record that reaches output
    async with contextlib.AsyncExitStack() as stack:
        app = await stack.enter_async_context(build_app(settings))
        if with_telegram:
            from bot.channels.telegram import TelegramChannel

            await stack.enter_async_context(TelegramChannel(app))
        zalo = await stack.enter_async_context(ZaloChannel(app))
        log.info("running; Ctrl-C to stop")
        if with_telegram:
            await until_signalled()
        else:
            await first_of(until_signalled(), zalo.failed.wait())
    log.info("stopped")
    if zalo.failed.is_set() and not with_telegram:
        raise ConfigError("zalo.token = ***: Zalo rejected the bot token while running (revoked or reset)")
