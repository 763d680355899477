"""The Telegram channel: python-telegram-bot's `Application` (polling or webhook) whose one handler hands
each update to the dispatcher and renders the replies (inline keyboards, long texts split, command
menus per role); its `send_to_user` delivers the outbox's messages to Telegram users. bot/run.py starts
it and registers its sender and fetcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import httpx
from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InputMediaPhoto,
    InputMediaVideo,
    Update,
)
from telegram.constants import ChatAction, ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    ContextTypes,
    TypeHandler,
)

from bot.app import App
from bot.channels.base import ChannelBase, verify_secret, webhook_url
from bot.channels.telegram.api import OUTBOX_SEND, GatedRequest, Lanes, TelegramBot, channel_error
from bot.channels.telegram.wire import (
    CHANNEL,
    MAX_ALBUM,
    album_group,
    album_of,
    album_part,
    chat_of,
    chat_ref,
    keyboard,
    keyboard_json,
    parse_update,
    split_text,
    to_incoming,
)
from bot.channels.turns import Turn, Turns
from bot.claims import shared_inbox
from bot.web import WebhookServer, WebRequest, WebResponse
from bot.workers import Began
from handlers.types import Attachment, Incoming, Kind, Media, Reply
from storage import queries as q
from storage.errors import (
    Blocked,
    ChannelError,
    ConfigError,
    FetchError,
    TooLarge,
)
from storage.models import User

MAX_COMMAND_DESCRIPTION = 256
SECRET_HEADER = "x-telegram-bot-api-secret-token"
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member")
UPLOAD_LIMIT = 50 * 1024 * 1024  # what a bot may send through the cloud Bot API
ANSWERED = "schoolbot_answered"  # set in a stored update whose button press the webhook's answer answered
POLLING = "Telegram getUpdates"  # a fault of polling, logged once (Outbox.faults), apart from sending
# Loggers whose records can carry the token: httpx logs request URLs (INFO), PTB's Bot logs its
# base URLs (DEBUG). A logger's own filters see only the records made on it, hence the list.
TOKEN_LOGGERS = (
    "httpx",
    "telegram",
    "telegram.Bot",
    "telegram.ext",
    "telegram.ext.ExtBot",
    "telegram.ext.Updater",
    "telegram.ext.Application",
    "schoolbot.telegram",
    "schoolbot.dispatch",
)

log = logging.getLogger("schoolbot.telegram")


class PerChat(BaseUpdateProcessor):
    """Updates of different chats are handled side by side (up to `chats` at once); one chat's updates
    wait for each other, in the order they came (delivery.md, rule 8). A chat waits for its turn before
    it takes one of the shared places, so one busy chat never crowds the others out.

    An album's parts skip the line: they are only gathered, and the album takes its place in the line
    when its first part arrives (`TelegramChannel.gather`), ahead of whatever the chat sends next.

    Only PTB's documented override points are used (`do_process_update`, `initialize`, `shutdown`).
    PTB's own semaphore, which `process_update` takes before calling `do_process_update`, is made too
    wide to ever wait: the shared places are `places` here, taken after the chat's turn. Neither the
    wide semaphore nor the turn yields before the turn is taken, so turns follow the updates' order.
    """

    UNBOUNDED = 1 << 30

    def __init__(self, chats: int) -> None:
        super().__init__(max_concurrent_updates=self.UNBOUNDED)
        self.chats = chats
        self.turns = Turns()
        self.places = asyncio.Semaphore(chats)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Take the chat's turn (albums and chatless updates need none), then a shared place, then handle."""
        chat = update.effective_chat if isinstance(update, Update) else None
        turn = self.turns.take(chat.id) if chat is not None and not album_part(update) else None
        async with turn or contextlib.nullcontext(), self.places:
            await coroutine

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class TelegramChannel(ChannelBase):
    """The bot on Telegram. `async with TelegramChannel(app):` starts it (polling or webhook, per
    settings.telegram.mode) and stops it (bot/run.py registers it meanwhile); `handled` counts the
    updates processed so far.

    `typing_after`: seconds an update's own work runs (not its wait in line) before "typing..." is
    shown (0: at once), repeated every `typing_every`. `rate_limit`: the two lanes (`Lanes`: replies
    at once, the outbox under the overall ceiling); off, every request goes as it comes and a 429 is
    not waited out.
    """

    name = CHANNEL
    upload_limit: ClassVar[int | None] = UPLOAD_LIMIT
    token_loggers = TOKEN_LOGGERS
    settles_replies = True

    def __init__(
        self,
        app: App,
        *,
        rate_limit: bool = True,
        typing_after: float = 1.0,
        typing_every: float = 4.5,
        poll_timeout: float = 30.0,
        bootstrap_retries: int = 3,
        album_wait: float = 0.8,
    ) -> None:
        self.app = app
        # An album arrives as one update per item; the parts are gathered for `album_wait`
        # seconds and handled as one message (one reply). This is the only state kept between
        # updates, for under a second; an album cut by a crash is simply sent again.
        self.album_wait = album_wait
        self._albums: dict[tuple[str, str], list[Incoming]] = {}
        self._album_rows: dict[tuple[str, str], list[int]] = {}
        self._album_tasks: set[asyncio.Task[None]] = set()
        self.config = app.settings.telegram
        self.poll_timeout = poll_timeout
        self.bootstrap_retries = bootstrap_retries
        # PTB 22 warns inside RetryAfter's constructor on every 429 unless durations are timedeltas.
        os.environ.setdefault("PTB_TIMEDELTA", "1")
        # The token filter goes on the loggers before PTB logs its URLs below.
        super().__init__(self.config.token.get_secret_value(), typing_after, typing_every)
        self.handled = 0
        self.server: WebhookServer | None = None
        self.poller: asyncio.Task[None] | None = None
        self._rows: dict[int, int] = {}  # update id -> its row in the durable inbox (`received`)
        # On PostgreSQL every worker takes updates from the shared inbox, each chat's oldest first,
        # whoever stored them (bot/claims.py); on SQLite this one process handles what it stores.
        self.claims = shared_inbox(
            app.db,
            app.dispatcher.workers,
            CHANNEL,
            self.on_claimed,
            self.config.concurrent_chats,
            group_of=album_group,
            album_wait=album_wait,
        )
        # One TLS context for both of PTB's connections (getUpdates', the rest): each loaded the CA
        # bundle again, 0.85 MB and 50 ms of the start.
        tls = httpx.create_ssl_context()
        outbox = app.settings.outbox
        self.lanes = Lanes(
            app.outbox.pace(CHANNEL),
            outbox.per_chat_seconds,
            outbox.reply_burst,
            outbox.reply_wait_seconds,
            throttled=lambda: app.metrics.rate_limited(CHANNEL),
        )
        bot = TelegramBot(
            self.config.token.get_secret_value(),
            base_url=self.config.base_url,
            base_file_url=self.config.base_file_url,
            # `connections` requests at once, not PTB's 256: the requests beyond them wait in front
            # of httpx's pool (GatedRequest), where httpcore does not look at each of them.
            request=GatedRequest(self.config.base_url, self.config.connections, verify=tls),
            get_updates_request=GatedRequest(self.config.base_url, 1, verify=tls),
            rate_limiter=self.lanes if rate_limit else None,
        )
        builder = ApplicationBuilder().bot(bot).concurrent_updates(PerChat(self.config.concurrent_chats))
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self.application.add_handler(TypeHandler(Update, self.on_update))
        self.application.add_error_handler(self.on_error)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (getMe), set the command menus, and start taking updates.

        Raises ConfigError when Telegram rejects the token, ChannelError when it cannot be reached
        (neither message quotes the token).
        """
        try:
            try:
                await self.application.initialize()
                self.announce()
                # The menus are set while the rest starts, not as two more round trips before the
                # first getUpdates (about half a second from Vietnam); the start waits for them.
                menus = asyncio.ensure_future(self.set_default_commands())
                try:
                    await self.application.start()
                    await self.resume()
                    if self.config.mode == "webhook":
                        await self.start_webhook()
                    else:
                        await self.bootstrap("delete the webhook", self.application.bot.delete_webhook)
                        self.poller = asyncio.create_task(self.poll(), name="telegram:poll")
                except BaseException:
                    menus.cancel()
                    raise
                finally:
                    with contextlib.suppress(asyncio.CancelledError):
                        await menus
            except InvalidToken:
                # PTB's message quotes the token; this one names the setting instead.
                raise ConfigError("telegram.token = ***: Telegram rejected this bot token") from None
            except TelegramError as exc:
                raise ChannelError(
                    f"Telegram cannot be reached at telegram.base_url = {self.config.base_url}: "
                    + self.redact(f"{type(exc).__name__}: {exc}")
                ) from None
        except BaseException:
            await self.stop()
            raise

    async def start_webhook(self) -> None:
        """Listen for Telegram's POSTs (bot/web.py), then tell Telegram where they go (setWebhook)."""
        secret = self.config.secret_token.get_secret_value()
        await self.listen(self.config, self.on_webhook)
        await self.bootstrap(
            "set the webhook",
            lambda: self.application.bot.set_webhook(
                webhook_url(self.config), secret_token=secret or None, allowed_updates=list(ALLOWED_UPDATES)
            ),
        )
        log.info("webhook listening on %s:%s/%s", self.config.listen, self.config.port, self.config.url_path)

    async def bootstrap(self, what: str, call: Callable[[], Awaitable[Any]]) -> None:
        """A call the start needs, tried `bootstrap_retries` more times (a second apart) before it fails."""
        for attempt in range(self.bootstrap_retries + 1):
            try:
                await call()
                return
            except InvalidToken:
                raise
            except TelegramError as exc:
                if attempt == self.bootstrap_retries:
                    raise
                log.warning(
                    "could not %s (%s); trying again", what, self.redact(f"{type(exc).__name__}: {exc}")
                )
                await asyncio.sleep(1.0)

    async def stop_taking(self) -> None:
        """Stop taking updates and finish those in hand; the connection stays open for the outbox.
        Updates stored and not handled yet stay stored: the next start handles them."""
        if self.poller is not None:
            self.poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.poller
            self.poller = None
        if self.server is not None:
            await self.server.stop()
            self.server = None
        if self.claims is not None:  # the updates in hand are finished; the rest wait for a worker
            await self.claims.stop()
        if self._album_tasks:  # let gathered albums be handled
            await asyncio.gather(*self._album_tasks, return_exceptions=True)
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()

    async def stop(self) -> None:
        """Stop taking updates, finish those in hand, close the connections."""
        await self.stop_taking()
        await self.application.shutdown()
        self.release_loggers()

    def announce(self) -> None:
        """Log who we are; warn when telegram.username (used in invite links) is not this bot."""
        try:
            name = self.application.bot.username
        except Exception as exc:  # cosmetic
            log.warning("could not read the bot's username: %s", self.redact(str(exc)))
            return
        log.info("connected to Telegram as @%s (%s)", name, self.config.mode)
        configured = self.config.username.lstrip("@")
        if configured and configured.lower() != name.lower():
            log.warning("telegram.username is %r but the token belongs to @%s", configured, name)

    # ---- command menus -----------------------------------------------------------------------

    def commands_for(self, role: str | None, language: str) -> list[BotCommand]:
        """The command menu for a role (None: not registered), described in `language`."""
        t = self.app.catalog.translator(language, CHANNEL)
        return [
            BotCommand(c.name, t(c.describe)[:MAX_COMMAND_DESCRIPTION])
            for c in self.app.router.menu_for(role)
        ]

    async def set_default_commands(self) -> None:
        """What an unregistered user sees: in the default language, and per other language."""
        bot = self.application.bot
        default = self.app.settings.locale
        await asyncio.gather(
            self.cosmetic("set the default commands", bot.set_my_commands(self.commands_for(None, default))),
            *(
                self.cosmetic(
                    f"set the default commands ({lang})",
                    bot.set_my_commands(self.commands_for(None, lang), language_code=lang),
                )
                for lang in self.app.catalog.languages
                if lang != default
            ),
        )

    async def set_chat_commands(self, chat_id: str | int, role: str, language: str) -> None:
        """This chat's menu for its role, after registration."""
        scope = BotCommandScopeChat(chat_ref(chat_id))
        await self.cosmetic(
            "set the chat's commands",
            self.application.bot.set_my_commands(self.commands_for(role, language), scope=scope),
        )

    # ---- updates in: stored first (the durable inbox), then handled ------------------------------

    async def on_webhook(self, request: WebRequest) -> WebResponse:
        """Telegram's POST: the secret checked (403), the body parsed (400), the update stored, and
        only then 200. An update that cannot be stored gets 500, so Telegram sends it again."""
        secret = self.config.secret_token.get_secret_value()
        if not verify_secret(request.headers.get(SECRET_HEADER, ""), secret):
            log.warning("refused a Telegram webhook call without the right secret (403)")
            return WebResponse(403, {"description": "Forbidden"})
        try:
            payload = json.loads(request.body)
            if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
                raise ValueError("not an update")
        except ValueError:
            return WebResponse(400, {"description": "Bad Request: not an update"})
        answer: dict[str, Any] = {}
        query = payload.get("callback_query")
        if isinstance(query, dict) and isinstance(query.get("id"), str):
            # The press is answered in the webhook's own answer (the Bot API runs a method given there):
            # one request fewer per press; the stored update says so, and is not answered again.
            payload[ANSWERED] = True
            answer = {"method": "answerCallbackQuery", "callback_query_id": query["id"]}
        await self.receive([payload])
        return WebResponse(200, answer)

    async def poll(self) -> None:
        """Long-poll getUpdates. The offset that confirms updates to Telegram moves past a batch only
        once the batch is stored: a crash before that and Telegram sends them again."""
        offset: int | None = None
        failures = 0
        while True:
            try:
                payloads = await self.application.bot.update_payloads(
                    offset, timedelta(seconds=self.poll_timeout), ALLOWED_UPDATES
                )
                if payloads:
                    await self.receive(payloads)
                    offset = int(payloads[-1]["update_id"]) + 1
                failures = 0
            except InvalidToken:
                log.error("Telegram rejected the bot token while polling (revoked or reset)")
                self.failed.set()
                return
            except Exception as exc:
                failures += 1
                self.app.outbox.faults.failed(
                    POLLING,
                    self.redact(f"{type(exc).__name__}: {getattr(exc, 'orig', None) or exc}"),
                    "updates wait at Telegram and are fetched when it answers again",
                )
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
                continue
            self.app.outbox.faults.ok(POLLING)

    async def receive(self, payloads: list[dict[str, Any]]) -> None:
        """Store updates as they came (one transaction), then queue the new ones for handling. On
        PostgreSQL they are parsed only when a worker takes them; here first, so that one that cannot
        be parsed is refused before it is stored."""
        bot = self.application.bot
        updates = [parse_update(p, bot) for p in payloads] if self.claims is None else []
        arrivals = [q.Arrival(f"{CHANNEL}:{p['update_id']}", chat_of(p), p) for p in payloads]
        stored = await self.app.dispatcher.receive(CHANNEL, arrivals)
        if self.claims is not None:
            if stored:
                self.claims.kick()  # the oldest of each chat is taken by whichever worker is free
            return
        for update, arrival in zip(updates, arrivals, strict=True):
            row = stored.get(arrival.key)
            if row is not None:  # a redelivery of an update still waiting is not queued twice
                await self.enqueue(row, update)

    async def requeue(self, row: int, payload: dict[str, Any]) -> None:
        """A stored update, parsed again, into the queue (`resume`)."""
        await self.enqueue(row, parse_update(payload, self.application.bot))

    async def enqueue(self, row: int, update: Update) -> None:
        """Into python-telegram-bot's queue (each chat in order, chats side by side: `PerChat`)."""
        self._rows[update.update_id] = row
        await self.application.update_queue.put(update)

    def rows_of(self, update: Update) -> list[int]:
        """The update's row in the durable inbox (taken: it is deleted with the update's handling)."""
        row = self._rows.pop(update.update_id, None)
        return [row] if row is not None else []

    # ---- updates -----------------------------------------------------------------------------

    async def on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """PTB's one handler: every update comes through here, in order."""
        try:
            if isinstance(update, Update):
                if self.config.hold_seconds:  # tests only: time to kill the process before handling
                    await asyncio.sleep(self.config.hold_seconds)
                await self.handle_update(update)
        finally:
            self.handled += 1

    async def on_claimed(self, payloads: list[dict[str, Any]]) -> None:
        """An update taken from the shared inbox (an album: all its parts), handled as one from memory is."""
        bot = self.application.bot
        updates = [parse_update(p, bot) for p in payloads]
        try:
            if self.config.hold_seconds:  # tests only: time to kill the process before handling
                await asyncio.sleep(self.config.hold_seconds)
            if len(updates) == 1:
                await self.handle_update(updates[0])
                return
            parts = [i for i in map(to_incoming, updates) if i is not None]
            if parts:
                await self.dispatch(album_of(parts))
        finally:
            self.handled += len(updates)

    async def handle_update(self, update: Update) -> None:
        """Convert, dispatch (with a typing indicator when slow), render the writer's replies."""
        rows = self.rows_of(update)
        answered = None
        if update.callback_query is not None and not update.api_kwargs.get(ANSWERED):
            # side by side with the handling: it only stops the spinner
            answered = asyncio.ensure_future(
                self.cosmetic("answer a button press", update.callback_query.answer())
            )
        try:
            incoming = None if update.my_chat_member is not None else to_incoming(update)
            if incoming is None:
                if update.my_chat_member is not None:
                    self.note_membership(update)
                await self.app.dispatcher.forget(rows)  # nothing for the dispatcher: done with it
                return
            group = update.message.media_group_id if update.message is not None else None
            if group and incoming.kind == Kind.MEDIA and self.claims is None:  # claims gather their own
                self.gather(incoming, group, rows)
                return
            await self.dispatch(incoming, rows)
        finally:
            if answered is not None:
                await answered

    async def dispatch(self, incoming: Incoming, rows: Sequence[int] = ()) -> None:
        """Hand one message to the dispatcher and send the writer's replies."""
        began = Began()
        replies = await self.with_typing(
            incoming.chat_id, self.app.dispatcher.handle(incoming, rows, began), began
        )
        if self.config.hold_reply_seconds:  # tests only: time to kill the process before the replies go
            await asyncio.sleep(self.config.hold_reply_seconds)
        await self.reply(incoming, replies)

    def gather(self, incoming: Incoming, group: str, rows: Sequence[int] = ()) -> None:
        """Keep an album's part; the first part takes the chat's turn now and starts the short wait for
        the rest, so a message sent right after the album is handled after it."""
        key = (incoming.chat_id, group)
        self._album_rows.setdefault(key, []).extend(rows)
        if key in self._albums:
            self._albums[key].append(incoming)
            return
        self._albums[key] = [incoming]
        turn = self.turns.take(int(incoming.chat_id)) if self.turns is not None else None
        task = asyncio.create_task(self.flush_album(key, turn), name=f"telegram:album:{group}")
        self._album_tasks.add(task)
        task.add_done_callback(self._album_tasks.discard)

    async def flush_album(self, key: tuple[str, str], turn: Turn | None) -> None:
        """After the wait and in the chat's turn, the album's parts as one message with all their files."""
        try:
            await asyncio.sleep(self.album_wait)
            async with turn or contextlib.nullcontext():
                parts = self._albums.pop(key, [])
                rows = self._album_rows.pop(key, [])
                if parts:
                    await self.dispatch(album_of(parts), rows)
        except Exception:
            log.exception("an album could not be handled")
        finally:
            if turn is not None:
                turn.release()

    @property
    def turns(self) -> Turns | None:
        """The chats' lines of the running bot."""
        processor = self.application.update_processor
        return processor.turns if isinstance(processor, PerChat) else None

    # ---- files in ----------------------------------------------------------------------------

    async def fetch(self, media: Media) -> bytes:
        """Download a file the user sent (getFile, then the file URL), within the size limit."""
        limit = int(self.app.settings.media.max_download_mb * 1_048_576)
        if media.size and media.size > limit:
            raise TooLarge(f"{media.kind} of {media.size} bytes")
        try:
            remote = await self.application.bot.get_file(media.file_id)
            if remote.file_size and remote.file_size > limit:
                raise TooLarge(f"{media.kind} of {remote.file_size} bytes")
            return bytes(await remote.download_as_bytearray())
        except BadRequest as exc:
            if "too big" in str(exc).lower():
                raise TooLarge(media.kind) from None
            raise FetchError(self.redact(str(exc))) from None
        except TelegramError as exc:
            raise FetchError(self.redact(str(exc))) from None

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Anything the handler let through: log it (the update is not retried)."""
        error = context.error
        log.error(
            "telegram update failed: %s",
            self.redact(repr(error)),
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )

    def note_membership(self, update: Update) -> None:
        """A user who blocks the bot is marked, so alerts stop trying them."""
        change = update.my_chat_member
        if change is None or change.chat.type != ChatType.PRIVATE:
            return
        if change.new_chat_member.status == ChatMemberStatus.BANNED:
            self.mark_blocked(str(change.from_user.id))

    def mark_blocked(self, external_id: str) -> None:
        """Mark the Telegram user with this id as having blocked the bot."""
        with self.app.db.session() as s:
            user = q.get_user(s, CHANNEL, external_id)
            if user is not None and user.id is not None:
                q.mark_blocked(s, user.id)
        log.info("telegram user %s blocked the bot", external_id)

    async def typing(self, chat_id: str) -> None:
        """One "typing..." action; a failure only costs the indicator."""
        try:
            await self.application.bot.send_chat_action(chat_ref(chat_id), ChatAction.TYPING)
        except TelegramError as exc:
            log.debug("typing indicator failed: %s", self.redact(str(exc)))

    async def reply(self, msg: Incoming, replies: list[Reply]) -> None:
        """Render the writer's replies in order (429s are waited out in `Lanes`). What cannot go (a
        429 past the wait, a failing platform, a chat that blocked the bot) is handed to the outbox
        from that reply on (their standby rows released to the sender); only a reply Telegram calls
        malformed is dropped, with a line in the log. The rows of the replies that went (or were
        dropped) are settled at the end, in the outbox's next batch."""
        if not replies:
            return
        wanted = any(r.commands_for for r in replies)  # read off the event loop, as all database work
        language = await self.app.dispatcher.workers.run(partial(self.language, msg)) if wanted else ""
        outbox = self.app.outbox
        done: list[Reply] = []  # sent, or dropped as today: their rows go
        try:
            for index, reply in enumerate(replies):
                try:
                    await self.render(msg.chat_id, [reply], language)
                except BadRequest as exc:
                    log.warning("could not reply to telegram user %s: %s", msg.user_id, self.redact(str(exc)))
                    done += replies[index:]
                    return
                except TelegramError as exc:
                    rest = replies[index:]
                    why = self.redact(f"{type(exc).__name__}: {exc}")
                    if isinstance(exc, Forbidden):  # recorded at once, one line in the log
                        await outbox.hand_over(CHANNEL, msg.user_id, msg.update_id, rest, blocked=why)
                        return
                    await outbox.hand_over(CHANNEL, msg.user_id, msg.update_id, rest)
                    outbox.faults.failed(CHANNEL, f"{why}; replies handed to the outbox")
                    log.debug(
                        "%d message(s) to telegram user %s handed to the outbox", len(rest), msg.user_id
                    )
                    return
                except Exception:  # not the platform's (a file gone): lost with its error, as before
                    done += replies[index:]
                    raise
                done.append(reply)
            outbox.faults.ok(CHANNEL)
        finally:  # the outbox leaves this chat its per-chat gap before a reminder follows
            outbox.pace(CHANNEL).touch(str(msg.chat_id))
            await outbox.settle([r.standby for r in done])

    def language(self, msg: Incoming) -> str:
        """The writer's language: saved choice, else Telegram's, else the default."""
        with self.app.db.session() as s:
            user = q.get_user(s, CHANNEL, msg.user_id)
            saved = user.locale if user is not None else ""
        return saved or msg.language or self.app.settings.locale

    async def send_to_user(self, user: User, replies: list[Reply]) -> str | None:
        """The outbox's sender for Telegram users: Blocked when they blocked the bot, RetryAfter on a
        429 (not retried inside PTB: the outbox pauses its pace and owns the retry). Gives back the
        id of the last message sent with buttons (what a later edit changes)."""
        marked = OUTBOX_SEND.set(True)  # these requests only (a context variable, reset below)
        try:
            return await self.render(user.chat_id, replies, user.locale or self.app.settings.locale)
        except Forbidden as exc:  # the outbox records it, stops their other messages, and logs it
            raise Blocked(f"user {user.id} blocked the bot") from exc
        except TelegramError as exc:
            raise channel_error(exc, self.redact(f"{type(exc).__name__}: {exc}")) from exc
        finally:
            OUTBOX_SEND.reset(marked)

    async def render(self, chat_id: str | int, replies: Sequence[Reply], language: str) -> str | None:
        """Send replies in order; a reply with `commands_for` then sets the chat's command menu. The
        id of the last text message sent (None: none)."""
        ref: str | None = None
        for reply in replies:
            ref = await self.send_reply(chat_id, reply) or ref
            if reply.commands_for:
                await self.set_chat_commands(chat_id, reply.commands_for, language)
        return ref

    async def send_reply(self, chat_id: str | int, reply: Reply) -> str | None:
        """One reply: its text (split when too long; buttons on the last part), then any file. An edit
        (`edit_ref`) changes that message to the reply's last part instead, or, when Telegram will not
        edit it (too old, gone), sends the reply as a new message. The id of the last text message."""
        bot = self.application.bot
        chat = chat_ref(chat_id)
        markup = keyboard_json(reply)  # the keyboard's rows read once, its JSON built once
        ref: str | None = None
        if reply.edit_ref and reply.edit_ref.isdigit():
            try:
                part = (split_text(reply.text) or ["…"])[-1]
                await bot.edit_message_text(
                    part, chat_id=chat, message_id=int(reply.edit_ref), reply_markup=keyboard(reply)
                )
                return reply.edit_ref
            except BadRequest as exc:
                log.info(
                    "could not edit a message in chat %s, sending it anew: %s", chat_id, self.redact(str(exc))
                )
        if reply.text.strip() or markup is not None:
            parts = split_text(reply.text) or ["…"]
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                ref = str(await bot.send_text(chat, part, markup if last else None))
        if reply.photo_path:
            with Path(reply.photo_path).open("rb") as photo:
                await bot.send_photo(chat, photo)
        if reply.file_path:
            with Path(reply.file_path).open("rb") as document:
                await bot.send_document(chat, document)
        if reply.attachments:
            await self.send_attachments(chat, reply.attachments)
        return ref

    async def send_attachments(self, chat: int | str, items: Sequence[Attachment]) -> None:
        """Photos and videos as albums (by Telegram reference where there is one), then documents."""
        bot = self.application.bot
        media = [a for a in items if a.kind in ("photo", "video") and self.sendable(a)]
        for start in range(0, len(media), MAX_ALBUM):
            group = media[start : start + MAX_ALBUM]
            if len(group) == 1:
                await self.send_one(chat, group[0])
                continue
            await bot.send_media_group(chat, [self.input_media(a) for a in group])
        for item in items:
            if item.kind not in ("photo", "video") and self.sendable(item):
                await self.send_one(chat, item)

    def sendable(self, item: Attachment) -> bool:
        """A Telegram reference, or a stored copy on disk."""
        return bool((item.channel == CHANNEL and item.file_id) or (item.path and Path(item.path).is_file()))

    def source(self, item: Attachment) -> Any:
        """The reference itself, or the stored file's bytes."""
        if item.channel == CHANNEL and item.file_id:
            return item.file_id
        return Path(item.path).read_bytes()

    def input_media(self, item: Attachment) -> Any:
        """An album entry with its caption (the photo's role)."""
        kind = InputMediaPhoto if item.kind == "photo" else InputMediaVideo
        return kind(self.source(item), caption=item.caption[:1024])

    async def send_one(self, chat: int | str, item: Attachment) -> None:
        """One file with its caption."""
        bot = self.application.bot
        send = {"photo": bot.send_photo, "video": bot.send_video}.get(item.kind, bot.send_document)
        await send(chat, self.source(item), caption=item.caption[:1024])
