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

`ZaloChannel` polls or serves the webhook, hands each update to the dispatcher in order, sends the
replies, offers a sender (alerts to Zalo users) and a fetcher (photo downloads) that bot/run.py
registers, and counts the monthly message budget. The wire format is in `wire`, the HTTP API and
its errors in `api`, the budget in `budget`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import httpx

from bot.app import App
from bot.channels import sockets
from bot.channels.base import ChannelBase, Gate, pool_limits, verify_secret, webhook_url
from bot.channels.turns import ChatTurns
from bot.channels.zalo.api import (
    PhotoTooLarge,
    RateLimited,
    TokenRejected,
    ZaloAPI,
    download,
    transient,
)
from bot.channels.zalo.budget import BudgetExhausted, DbBudgetStore, MonthlyBudget
from bot.channels.zalo.wire import (
    CHANNEL,
    EVENTS,
    SECRET_HEADER,
    chat_of,
    render_parts,
    to_incoming,
    unwrap,
    update_key,
)
from bot.claims import shared_inbox
from bot.web import WebhookServer, WebRequest, WebResponse
from bot.workers import Began
from handlers.types import Incoming, Kind, Media, Reply
from storage import queries as q
from storage.errors import (
    ChannelError,
    ConfigError,
    FetchError,
    TooLarge,
)
from storage.models import User

SEEN_FOR = 600.0  # seconds an update key is remembered in memory (the database keeps it two days)
SEEN_MAX = 10_000
TOKEN_LOGGERS = ("httpx", "schoolbot.zalo", "schoolbot.dispatch", "schoolbot.web")

POLLING = "Zalo getUpdates"  # a fault of polling, logged once (Outbox.faults), apart from sending
log = logging.getLogger("schoolbot.zalo")


class RecentKeys:
    """Update keys seen in the last `ttl` seconds (a cheap first dedupe before the database's)."""

    def __init__(self, ttl: float = SEEN_FOR, cap: int = SEEN_MAX) -> None:
        self.ttl = ttl
        self.cap = cap
        self._keys: OrderedDict[str, float] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        expires = self._keys.get(key) if isinstance(key, str) else None
        return expires is not None and expires >= time.monotonic()

    def add(self, key: str) -> bool:
        """Remember `key`; False when it was seen recently."""
        now = time.monotonic()
        while self._keys and (len(self._keys) >= self.cap or next(iter(self._keys.values())) < now):
            self._keys.popitem(last=False)
        if key in self._keys:
            return False
        self._keys[key] = now + self.ttl
        return True


@dataclass(frozen=True)
class Timing:
    """How long to wait for what; tests shorten these."""

    poll_timeout: float = 30.0  # seconds a getUpdates call waits for an update
    typing_after: float = 1.0  # "typing..." once the update's own work runs this long (0: at once)
    typing_every: float = 4.5  # Zalo's indicator lasts about 5 s
    send_retries: tuple[float, ...] = (0.5, 1.5)  # waits before resending after 408/429/5xx
    backoff_base: float = 1.0  # getUpdates after a failure: 1, 2, 4... seconds
    backoff_max: float = 60.0
    replay_gap: float = 1.0  # pause after a poll that brought only updates already seen
    fetch_timeout: float = 20.0  # a whole photo download
    bootstrap_retries: int = 3  # getMe / setWebhook at start
    drain_timeout: float = 10.0  # at stop, for updates already received


class ZaloChannel(ChannelBase):
    """The bot on Zalo. `async with ZaloChannel(app):` starts it (polling or webhook, per
    settings.zalo.mode) and stops it (bot/run.py registers it meanwhile); `handled` counts the
    updates processed so far; `failed` is set when Zalo rejects the token (revoked), after which
    the channel takes no more updates and bot/run.py takes its sender away.

    Zalo sends no files at all (no upload, no sendDocument: each file is named, with a note), so
    there is no upload size limit to keep (`upload_limit` None).

    `transport` replaces the network (httpx.MockTransport in tests).
    """

    name = CHANNEL
    upload_limit = None
    token_loggers = TOKEN_LOGGERS
    settles_replies = True

    def __init__(
        self, app: App, *, timing: Timing | None = None, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.app = app
        self.config = app.settings.zalo
        self.timing = timing or Timing()
        token = self.config.token.get_secret_value()
        super().__init__(token, self.timing.typing_after, self.timing.typing_every)
        connections = self.config.connections  # kept alive; see telegram.connections
        self.client = httpx.AsyncClient(
            transport=transport or sockets.transport(self.config.base_url, pool_limits(connections)),
            timeout=httpx.Timeout(20.0, connect=10.0),
        )
        self.files = httpx.AsyncClient(
            transport=transport, timeout=self.timing.fetch_timeout, follow_redirects=True, max_redirects=5
        )
        self.api = ZaloAPI(self.config.base_url, token, self.client, Gate(connections))
        self.budget = MonthlyBudget(
            self.config.monthly_budget or None, app.clock, store=DbBudgetStore(app.db)
        )
        self.me: dict[str, Any] = {}
        self.handled = 0
        self.server: WebhookServer | None = None
        # (its row in the durable inbox, the update): stored before it is queued
        self._queue: asyncio.Queue[tuple[int, dict[str, Any]]] = asyncio.Queue()
        self._seen = RecentKeys()
        self._prefetched: dict[str, bytes] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._turns = ChatTurns(self.config.concurrent_chats)
        self._closed = False
        # On PostgreSQL every worker takes updates from the shared inbox, each chat's oldest first,
        # whoever stored them (bot/claims.py); on SQLite this one process handles what it stores.
        self.claims = shared_inbox(
            app.db, app.dispatcher.workers, CHANNEL, self.on_claimed, self.config.concurrent_chats
        )

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (getMe), then take updates by polling or through the webhook.

        Raises ConfigError when Zalo rejects the token (the message never quotes it).
        """
        try:
            await self.connect()
            await self.resume()
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
        await self.listen(self.config, self.on_webhook)
        url = webhook_url(self.config)
        await self.bootstrap(
            "setWebhook", {"url": url, "secret_token": self.config.secret_token.get_secret_value()}
        )
        log.info("Zalo webhook set to %s", url)

    async def stop_taking(self) -> None:
        """Stop taking updates and handle those already received; the connections stay open."""
        await self._cancel("poller")
        if self.server is not None:
            await self.server.stop()
        if self.claims is not None:  # the updates in hand are finished; the rest wait for a worker
            await self.claims.stop()
        if "worker" in self._tasks and not self._tasks["worker"].done():
            try:
                await asyncio.wait_for(self._queue.join(), self.timing.drain_timeout)
            except TimeoutError:
                log.warning("%d Zalo update(s) were not handled before stopping", self._queue.qsize())

    async def stop(self) -> None:
        """Stop taking updates, handle those already received, close the connections."""
        if self._closed:
            return
        self._closed = True
        await self.stop_taking()
        for name in list(self._tasks):
            await self._cancel(name)
        await self._turns.cancel()
        await self.client.aclose()
        await self.files.aclose()
        self.release_loggers()

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

    def token_revoked(self, where: str) -> None:
        """Zalo answered 401 while running: stop taking updates and sending, and say so, once, plainly."""
        if self.failed.is_set():
            return
        self.failed.set()  # bot/run.py then takes the sender away: Zalo rows wait for a good token
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
                self.app.outbox.faults.failed(
                    POLLING,
                    self.redact(str(exc)),
                    "Zalo keeps the updates and gives them when it answers again",
                )
                await asyncio.sleep(wait)
                continue
            failures = 0
            self.app.outbox.faults.ok(POLLING)
            try:
                fresh = await self.accept(updates)
            except Exception as exc:  # not stored: Zalo gives unacknowledged updates back
                log.warning("could not store Zalo updates (%s); polling again", type(exc).__name__)
                await asyncio.sleep(self.backoff(0))
                continue
            if updates and not fresh and self.timing.replay_gap:
                await asyncio.sleep(self.timing.replay_gap)  # Zalo replaying what we already have

    def known(self, update: dict[str, Any]) -> dict[str, Any] | None:
        """The update unwrapped, unless it is unknown or empty (logged and dropped)."""
        found = unwrap(update)
        if found is None:
            log.info("ignored a Zalo update without event_name")
            return None
        event = found["event_name"]
        if event not in EVENTS:
            log.info("ignored an unknown Zalo event %r", event[:64])
            return None
        if not isinstance(found.get("message"), dict):
            log.info("ignored a Zalo %s without a message", event)
            return None
        return found

    async def accept(self, updates: list[dict[str, Any]]) -> int:
        """Store the updates that are known and not seen lately (one transaction), then queue the new
        ones; how many were queued. Raises when they could not be stored (nothing is remembered then,
        so they are taken when Zalo sends them again)."""
        found = [f for f in (self.known(u) for u in updates) if f is not None]
        fresh = [f for f in found if update_key(f) not in self._seen]
        if not fresh:
            for f in found:
                log.debug("dropped a repeated Zalo update %s", update_key(f))
            return 0
        arrivals = [q.Arrival(f"{CHANNEL}:{update_key(f)}", chat_of(f), f) for f in fresh]
        stored = await self.app.dispatcher.receive(CHANNEL, arrivals)
        if self.claims is not None:
            for update in fresh:
                self._seen.add(update_key(update))
            if stored:
                self.claims.kick()  # the oldest of each chat is taken by whichever worker is free
            return len(stored)
        queued = 0
        for update, arrival in zip(fresh, arrivals, strict=True):
            self._seen.add(update_key(update))
            row = stored.get(arrival.key)
            if row is not None:  # one still waiting, sent again, is not queued twice
                self._queue.put_nowait((row, update))
                queued += 1
        return queued

    async def requeue(self, row: int, payload: dict[str, Any]) -> None:
        """A stored update into the queue (`resume`), remembered so a replay of it is not queued twice."""
        self._seen.add(update_key(payload))
        self._queue.put_nowait((row, payload))

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
        await self.accept([update])  # stored before the 200; unknown events and repeats: 200, dropped
        return WebResponse(200, {"message": "Success"})

    async def work(self) -> None:
        """Hand queued updates out: different chats side by side, each chat's in the order they came."""
        while True:
            row, update = await self._queue.get()
            self._turns.run(chat_of(update), partial(self.handle_one, update, row))

    async def handle_one(self, update: dict[str, Any], row: int | None = None) -> None:
        """One update, whatever happens to it (counted, and marked done for the drain at stop)."""
        try:
            if self.config.hold_seconds:  # tests only: time to kill the process before handling
                await asyncio.sleep(self.config.hold_seconds)
            await self.handle_update(update, [row] if row is not None else [])
        except Exception:
            log.exception("a Zalo update failed")
        finally:
            self.handled += 1
            self._queue.task_done()

    async def on_claimed(self, updates: list[dict[str, Any]]) -> None:
        """An update taken from the shared inbox, handled as one taken from memory is."""
        for update in updates:
            try:
                if self.config.hold_seconds:  # tests only: time to kill the process before handling
                    await asyncio.sleep(self.config.hold_seconds)
                await self.handle_update(update)
            finally:
                self.handled += 1

    async def handle_update(self, update: dict[str, Any], rows: list[int] | None = None) -> None:
        """Convert, download a photo at once (its URL can expire), dispatch, send the replies. `rows`:
        the update's row in the durable inbox, deleted with its handling."""
        incoming = to_incoming(update)
        if incoming is None:
            await self.app.dispatcher.forget(rows or [])
            return
        incoming = await self.prefetch(incoming)
        try:
            began = Began()
            handling = self.app.dispatcher.handle(incoming, rows or [], began)
            replies = await self.with_typing(incoming.chat_id, handling, began)
        finally:
            for media in incoming.media:
                self._prefetched.pop(media.file_id, None)
        if self.config.hold_reply_seconds:  # tests only: time to kill the process before the replies go
            await asyncio.sleep(self.config.hold_reply_seconds)
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
        """The dispatcher's fetcher: the bytes downloaded on arrival, else a fresh download (not for a
        photo found too large on arrival: TooLarge at once)."""
        data = self._prefetched.pop(media.file_id, None)
        if data is not None:
            return data
        limit = int(self.app.settings.media.max_download_mb * 1_048_576)
        if media.size and media.size > limit:
            raise TooLarge(f"photo of {media.size} bytes")
        data, _ = await self.download(media.file_id)
        return data

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
        """Send the writer's replies (408/429/5xx resent, a 429's wait waited out, in `send_message`);
        when they still cannot go they become outbox rows, delivered later or reported. A long text
        cut short is handed over whole: a part sent twice beats a part lost. Their standby rows are
        released to the sender then, and settled once they went (or failed otherwise, as before)."""
        if not replies:
            return
        user = self.account(msg.user_id)
        outbox = self.app.outbox
        try:
            await self.send_text(msg.chat_id, render_parts(self.present(user, replies)))
        except ChannelError as exc:
            await outbox.hand_over(CHANNEL, msg.user_id, msg.update_id, replies)
            outbox.faults.failed(CHANNEL, f"{self.redact(str(exc))}; replies handed to the outbox")
            log.debug("%d message(s) to Zalo user %s handed to the outbox", len(replies), msg.user_id)
            return
        except Exception:  # not the platform's: lost with its error, as before
            await outbox.settle([r.standby for r in replies])
            raise
        outbox.faults.ok(CHANNEL)
        await outbox.settle([r.standby for r in replies])

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
        if not self.budget.reserve(len(parts)):  # taken before sending: concurrent sends cannot overspend
            raise BudgetExhausted(self.budget.seconds_until_reset())
        sent = 0
        try:
            for part in parts:
                await self.send_message(user.chat_id, part, retry=False, charge=False)
                sent += 1
        finally:
            self.budget.refund(len(parts) - sent)  # what did not go out is not spent
        self.app.dispatcher.remember_menu(user, replies, CHANNEL)  # numbers only once they are seen

    async def send_text(self, chat_id: str, parts: list[str], retry: bool = True) -> None:
        """Send each part as one plain-text message."""
        for part in parts:
            await self.send_message(chat_id, part, retry)

    async def send_message(self, chat_id: str, text: str, retry: bool = True, charge: bool = True) -> Any:
        """sendMessage, resent (`retry`: a reply to the writer) after 408/429/5xx or a network error;
        counted in the budget unless the caller reserved it already (`charge` False). A 429 that says
        how long to wait is waited out and resent for up to outbox.reply_wait_seconds in all (the
        outbox pauses meanwhile), without using up the retries."""
        waits = self.timing.send_retries if retry else ()
        deadline = time.monotonic() + self.app.settings.outbox.reply_wait_seconds
        attempt = 0
        while True:
            try:
                result = await self.api.call("sendMessage", {"chat_id": chat_id, "text": text})
            except TokenRejected:
                self.token_revoked("sendMessage")
                raise
            except ChannelError as exc:
                asked = exc.retry_after if isinstance(exc, RateLimited) else 0.0
                if asked > 0:
                    self.app.outbox.pace(CHANNEL).pause(asked)
                if retry and asked > 0 and time.monotonic() + asked <= deadline:
                    log.debug("Zalo asked to wait %.1f s before sendMessage; waiting", asked)
                    await asyncio.sleep(asked)
                    continue
                if not transient(exc) or attempt == len(waits):
                    raise
                wait = max(waits[attempt], min(asked, 30.0))
                attempt += 1
                log.debug("Zalo sendMessage failed (%s); resending in %.1f s", self.redact(str(exc)), wait)
                await asyncio.sleep(wait)
                continue
            if charge:
                self.budget.spend()
            return result

    def account(self, external_id: str) -> User | None:
        """The stored account of a Zalo user."""
        with self.app.db.session() as s:
            user = q.get_user(s, CHANNEL, external_id)
            if user is not None:
                s.expunge(user)
        return user

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
