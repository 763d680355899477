"""The Telegram channel: python-telegram-bot at the edge, translating updates and replies only.

`to_incoming(update)` turns a PTB `Update` into an `Incoming`; `TelegramChannel` runs a PTB
`Application` (polling or webhook) whose one handler hands each update to the dispatcher and renders
the replies (inline keyboards, long texts split, command menus per role), and registers the sender
that delivers alerts to other Telegram users. `run_telegram(settings)` runs it until SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import signal
import warnings
from collections.abc import Awaitable, Coroutine, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    InputMediaVideo,
    Message,
    Update,
)
from telegram import User as TgUser
from telegram.constants import ChatAction, ChatMemberStatus, ChatType
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError
from telegram.error import RetryAfter as TgRetryAfter
from telegram.error import TimedOut as TgTimedOut
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    BaseUpdateProcessor,
    ContextTypes,
    TypeHandler,
)
from telegram.warnings import PTBDeprecationWarning

from bot.app import App, build_app
from bot.channels.turns import Turn, Turns
from bot.config import Settings
from handlers.types import Attachment, Incoming, Kind, Media, Reply
from storage import queries as q
from storage.errors import (
    Blocked,
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

CHANNEL = "telegram"
MAX_TEXT = 4096  # telegram.constants.MessageLimit.MAX_TEXT_LENGTH
MAX_ALBUM = 10  # telegram.constants.MediaGroupLimit.MAX_MEDIA_LENGTH
MAX_CALLBACK_BYTES = 64  # telegram.constants.InlineKeyboardButtonLimit.MAX_CALLBACK_DATA
MAX_COMMAND_DESCRIPTION = 256
LANGUAGES = ("vi", "en")
ALLOWED_UPDATES = ("message", "callback_query", "my_chat_member")
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


# ---- updates in ------------------------------------------------------------------------------


def to_incoming(update: Update) -> Incoming | None:
    """A private chat's message or button press as an Incoming; None for anything we ignore."""
    query = update.callback_query
    if query is not None:
        chat = query.message.chat if query.message is not None else None
        if chat is not None and chat.type != ChatType.PRIVATE:
            return None
        chat_id = chat.id if chat is not None else query.from_user.id
        return Incoming(**_who(update, query.from_user, chat_id), kind=Kind.CHOICE, choice=query.data or "")
    message = update.message  # edited messages and channel posts are not answered
    if message is None or message.from_user is None or message.chat.type != ChatType.PRIVATE:
        return None
    who = _who(update, message.from_user, message.chat.id)
    if message.text is not None:
        return _text(who, message.text)
    return _content(who, message)


def _who(update: Update, user: TgUser, chat_id: int) -> dict[str, Any]:
    return {
        "channel": CHANNEL,
        "user_id": str(user.id),
        "chat_id": str(chat_id),
        "display_name": user.full_name,
        "update_id": str(update.update_id),
        "language": language_of(user.language_code),
    }


def language_of(code: str | None) -> str:
    """Telegram's IETF language tag as one of ours ("vi", "en"), or "" for any other."""
    lang = (code or "").split("-")[0].lower()
    return lang if lang in LANGUAGES else ""


def _text(who: dict[str, Any], text: str) -> Incoming:
    """`/cmd@botname args` is a command (a deep link `/start CODE` too); anything else is text."""
    if text.startswith("/") and len(text) > 1 and (text[1].isalnum() or text[1] == "_"):
        head, *rest = text[1:].split(maxsplit=1)
        command = head.split("@", 1)[0]
        return Incoming(
            **who, kind=Kind.COMMAND, command=command, args=rest[0].strip() if rest else "", text=text
        )
    return Incoming(**who, kind=Kind.TEXT, text=text)


def _content(who: dict[str, Any], message: Message) -> Incoming:
    """Media, stickers, places, voice, contacts; anything else is OTHER."""
    caption = message.caption or ""
    media = media_of(message)
    if media is not None and media.kind in ("photo", "document", "video", "animation"):
        return Incoming(**who, kind=Kind.MEDIA, media=(media,), text=caption)
    if message.sticker is not None:
        return Incoming(**who, kind=Kind.STICKER, text=message.sticker.emoji or "")
    if message.location is not None or message.venue is not None:
        return Incoming(**who, kind=Kind.LOCATION)
    if media is not None:  # voice, audio, video note
        return Incoming(**who, kind=Kind.VOICE, media=(media,), text=caption)
    if message.contact is not None:
        return Incoming(**who, kind=Kind.CONTACT)
    return Incoming(**who, kind=Kind.OTHER, text=caption)


def media_of(message: Message) -> Media | None:
    """The file a message carries: the largest size of a photo, or the one document/video/audio."""
    if message.photo:
        size = max(message.photo, key=lambda p: (p.width * p.height, p.file_size or 0))
        return Media(
            "photo",
            size.file_id,
            size.file_unique_id,
            width=size.width,
            height=size.height,
            size=size.file_size,
        )
    for kind in ("animation", "document", "video", "voice", "audio", "video_note"):
        # an animation also fills `document`, so it is looked at first
        item = getattr(message, kind)
        if item is not None:
            fields = item.to_dict()  # plain ints: reading `.duration` warns in PTB 22
            return Media(
                kind,
                item.file_id,
                item.file_unique_id,
                mime_type=fields.get("mime_type", ""),
                file_name=fields.get("file_name", ""),
                width=fields.get("width", fields.get("length")),
                height=fields.get("height", fields.get("length")),
                duration=fields.get("duration"),
                size=fields.get("file_size"),
            )
    return None


# ---- replies out -----------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
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


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """The reply's choices as inline buttons; data over 64 bytes is logged and left out."""
    rows = []
    for row in reply.choices:
        buttons = []
        for choice in row:
            size = len(choice.value.encode("utf-8"))
            if not 1 <= size <= MAX_CALLBACK_BYTES:
                log.error("button %r left out: callback data is %d bytes", choice.label, size)
                continue
            buttons.append(InlineKeyboardButton(choice.label, callback_data=choice.value))
        if buttons:
            rows.append(buttons)
    return InlineKeyboardMarkup(rows) if rows else None


def chat_ref(chat_id: str | int) -> int | str:
    """A numeric chat id as an int (as Telegram sends it), anything else as given."""
    text = str(chat_id)
    return int(text) if text.lstrip("-").isdigit() else text


def retry_seconds(exc: TgRetryAfter) -> float:
    """How long Telegram asked us to wait (without PTB 22's int-or-timedelta deprecation warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# A 400 with one of these means the chat is gone for good, not that the message was wrong.
GONE_WORDS = (
    "chat not found",
    "user not found",
    "peer_id_invalid",
    "chat_id is empty",
    "user is deactivated",
)


def channel_error(exc: TelegramError, message: str = "") -> ChannelError:
    """PTB's exception as ours (raise it `from exc`): the outbox sorts ours with isinstance alone."""
    text = message or f"{type(exc).__name__}: {exc}"
    if isinstance(exc, TgRetryAfter):
        return RetryAfter(retry_seconds(exc))
    if isinstance(exc, Forbidden):
        return Blocked(text)
    if isinstance(exc, TgTimedOut):
        return TimedOut(text)
    if isinstance(exc, BadRequest):
        gone = any(word in str(exc).lower() for word in GONE_WORDS)
        return Gone(text) if gone else Rejected(text)
    return ChannelError(text)


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


# ---- the channel -----------------------------------------------------------------------------


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


def album_part(update: object) -> bool:
    """Whether an update is one file of an album (several photos or videos sent together)."""
    message = update.message if isinstance(update, Update) else None
    if message is None or not message.media_group_id:
        return False
    incoming = to_incoming(update)
    return incoming is not None and incoming.kind == Kind.MEDIA


OUTBOX_SEND: contextvars.ContextVar[bool] = contextvars.ContextVar("outbox_send", default=False)


class Limiter(AIORateLimiter):
    """PTB's rate limiter (about 30 messages/s overall) for every request of the bot. A reply to the
    person writing is retried once after a 429; a send by the outbox is not, so the 429 reaches the
    outbox, which pauses and slows its whole pace and retries the row itself (delivery.md, rule 9)."""

    def __init__(self) -> None:
        super().__init__(max_retries=0)

    async def process_request(
        self,
        callback: Any,
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        """PTB reads `rate_limit_args` as the number of retries (0 or None: the default, here 0)."""
        retries = rate_limit_args if rate_limit_args is not None else (0 if OUTBOX_SEND.get() else 1)
        return await super().process_request(callback, args, kwargs, endpoint, data, retries)


class TelegramChannel:
    """The bot on Telegram. `async with TelegramChannel(app):` starts it (polling or webhook, per
    settings.telegram.mode) and stops it; `handled` counts the updates processed so far.

    `typing_after`: seconds before "typing..." is shown on a slow reply (0: at once), repeated
    every `typing_every`. `rate_limit`: PTB's AIORateLimiter (about 30 messages/s overall).
    """

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
        self._album_tasks: set[asyncio.Task[None]] = set()
        self.config = app.settings.telegram
        self.typing_after = typing_after
        self.typing_every = max(typing_every, 0.1)
        self.poll_timeout = poll_timeout
        self.bootstrap_retries = bootstrap_retries
        # PTB 22 warns inside RetryAfter's constructor on every 429 unless durations are timedeltas.
        os.environ.setdefault("PTB_TIMEDELTA", "1")
        self.redactor = TokenRedactor(self.config.token.get_secret_value())
        for name in TOKEN_LOGGERS:
            logging.getLogger(name).addFilter(self.redactor)  # before PTB logs its URLs below
        self.handled = 0
        builder = (
            ApplicationBuilder()
            .token(self.config.token.get_secret_value())
            .base_url(self.config.base_url)
            .base_file_url(self.config.base_file_url)
        )
        builder = builder.concurrent_updates(PerChat(self.config.concurrent_chats))
        limited = builder.rate_limiter(Limiter()) if rate_limit else builder
        self.application: Application[Any, Any, Any, Any, Any, Any] = limited.build()
        self.application.add_handler(TypeHandler(Update, self.on_update))
        self.application.add_error_handler(self.on_error)

    # ---- lifecycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> TelegramChannel:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connect (getMe), set the command menus, and start taking updates.

        Raises ConfigError when Telegram rejects the token (the message never quotes it).
        """
        try:
            try:
                await self.application.initialize()
            except InvalidToken:
                # PTB's message quotes the token; this one names the setting instead.
                raise ConfigError("telegram.token = ***: Telegram rejected this bot token") from None
            self.announce()
            await self.set_default_commands()
            self.app.dispatcher.senders[CHANNEL] = self.send_to_user
            self.app.dispatcher.fetchers[CHANNEL] = self.fetch
            await self.application.start()
            if self.config.mode == "webhook":
                await self.start_webhook()
            else:
                await self.updater().start_polling(
                    timeout=timedelta(seconds=self.poll_timeout),
                    bootstrap_retries=self.bootstrap_retries,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
        except BaseException:
            await self.stop()
            raise

    async def start_webhook(self) -> None:
        """Listen for Telegram's POSTs; a request without the secret header gets 403 from PTB."""
        secret = self.config.secret_token.get_secret_value()
        await self.updater().start_webhook(
            listen=self.config.listen,
            port=self.config.port,
            url_path=self.config.url_path.strip("/"),
            webhook_url=self.webhook_url(),
            secret_token=secret or None,
            bootstrap_retries=self.bootstrap_retries,
            allowed_updates=list(ALLOWED_UPDATES),
        )
        log.info("webhook listening on %s:%s/%s", self.config.listen, self.config.port, self.config.url_path)

    def webhook_url(self) -> str:
        """The public URL Telegram calls: telegram.webhook_url, ending in /url_path."""
        base = self.config.webhook_url.rstrip("/")
        path = self.config.url_path.strip("/")
        return base if not path or base.endswith("/" + path) else f"{base}/{path}"

    async def stop(self) -> None:
        """Stop taking updates, finish the one in hand, close the connections."""
        if self.app.dispatcher.senders.get(CHANNEL) == self.send_to_user:
            del self.app.dispatcher.senders[CHANNEL]
        if self.app.dispatcher.fetchers.get(CHANNEL) == self.fetch:
            del self.app.dispatcher.fetchers[CHANNEL]
        if self._album_tasks:  # let gathered albums be handled before closing
            await asyncio.gather(*self._album_tasks, return_exceptions=True)
        updater = self.application.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.application.running:
            await self.application.stop()
        await self.application.shutdown()
        for name in TOKEN_LOGGERS:
            logging.getLogger(name).removeFilter(self.redactor)

    def updater(self) -> Any:
        """PTB's Updater (always built by ApplicationBuilder)."""
        assert self.application.updater is not None
        return self.application.updater

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

    def redact(self, text: str) -> str:
        """`text` without the bot token."""
        return self.redactor.redact(text)

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
        await self.cosmetic("set the default commands", bot.set_my_commands(self.commands_for(None, default)))
        for lang in self.app.catalog.languages:
            if lang != default:
                await self.cosmetic(
                    f"set the default commands ({lang})",
                    bot.set_my_commands(self.commands_for(None, lang), language_code=lang),
                )

    async def set_chat_commands(self, chat_id: str | int, role: str, language: str) -> None:
        """This chat's menu for its role, after registration."""
        scope = BotCommandScopeChat(chat_ref(chat_id))
        await self.cosmetic(
            "set the chat's commands",
            self.application.bot.set_my_commands(self.commands_for(role, language), scope=scope),
        )

    async def cosmetic(self, what: str, call: Coroutine[Any, Any, Any]) -> None:
        """Run a call whose failure must never stop the bot: log a warning instead."""
        try:
            await call
        except Exception as exc:
            log.warning("could not %s: %s", what, self.redact(f"{type(exc).__name__}: {exc}"))

    # ---- updates -----------------------------------------------------------------------------

    async def on_update(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """PTB's one handler: every update comes through here, in order."""
        try:
            if isinstance(update, Update):
                await self.handle_update(update)
        finally:
            self.handled += 1

    async def handle_update(self, update: Update) -> None:
        """Convert, dispatch (with a typing indicator when slow), render the writer's replies."""
        if update.callback_query is not None:
            await self.cosmetic("answer a button press", update.callback_query.answer())
        if update.my_chat_member is not None:
            self.note_membership(update)
            return
        incoming = to_incoming(update)
        if incoming is None:
            return
        group = update.message.media_group_id if update.message is not None else None
        if group and incoming.kind == Kind.MEDIA:
            self.gather(incoming, group)
            return
        await self.dispatch(incoming)

    async def dispatch(self, incoming: Incoming) -> None:
        """Hand one message to the dispatcher and send the writer's replies."""
        replies = await self.with_typing(incoming.chat_id, self.app.dispatcher.handle(incoming))
        await self.reply(incoming, replies)

    def gather(self, incoming: Incoming, group: str) -> None:
        """Keep an album's part; the first part takes the chat's turn now and starts the short wait for
        the rest, so a message sent right after the album is handled after it."""
        key = (incoming.chat_id, group)
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
                if parts:
                    await self.dispatch(replace(parts[0], media=tuple(m for p in parts for m in p.media)))
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

    async def with_typing(self, chat_id: str, work: Awaitable[list[Reply]]) -> list[Reply]:
        """Await `work`; show "typing..." after `typing_after` seconds and every `typing_every`."""
        task = asyncio.ensure_future(work)
        try:
            if self.typing_after > 0:
                await asyncio.wait({task}, timeout=self.typing_after)
            while not task.done():
                await self.typing(chat_id)
                await asyncio.wait({task}, timeout=self.typing_every)
        finally:
            if not task.done():
                task.cancel()
        return task.result()

    async def typing(self, chat_id: str) -> None:
        """One "typing..." action; a failure only costs the indicator."""
        try:
            await self.application.bot.send_chat_action(chat_ref(chat_id), ChatAction.TYPING)
        except TelegramError as exc:
            log.debug("typing indicator failed: %s", self.redact(str(exc)))

    async def reply(self, msg: Incoming, replies: list[Reply]) -> None:
        """Render the writer's replies; a user who blocked the bot is marked."""
        if not replies:
            return
        language = self.language(msg) if any(r.commands_for for r in replies) else ""
        try:
            await self.render(msg.chat_id, replies, language)
        except Forbidden:
            self.mark_blocked(msg.user_id)
        except TelegramError as exc:
            log.warning("could not reply to telegram user %s: %s", msg.user_id, self.redact(str(exc)))
        finally:  # the outbox leaves this chat its per-chat gap before a reminder follows
            self.app.outbox.pace(CHANNEL).touch(str(msg.chat_id))

    def language(self, msg: Incoming) -> str:
        """The writer's language: saved choice, else Telegram's, else the default."""
        with self.app.db.session() as s:
            user = q.get_user(s, CHANNEL, msg.user_id)
            saved = user.locale if user is not None else ""
        return saved or msg.language or self.app.settings.locale

    async def send_to_user(self, user: User, replies: list[Reply]) -> None:
        """The outbox's sender for Telegram users: Blocked when they blocked the bot, RetryAfter on a
        429 (not retried inside PTB: the outbox pauses its pace and owns the retry)."""
        marked = OUTBOX_SEND.set(True)  # these requests only (a context variable, reset below)
        try:
            await self.render(user.chat_id, replies, user.locale or self.app.settings.locale)
        except Forbidden as exc:
            with self.app.db.session() as s:
                q.mark_blocked(s, user.id or 0)
            log.info("telegram user %s (#%s) blocked the bot", user.external_id, user.id)
            raise Blocked(f"user {user.id} blocked the bot") from exc
        except TelegramError as exc:
            raise channel_error(exc, self.redact(f"{type(exc).__name__}: {exc}")) from exc
        finally:
            OUTBOX_SEND.reset(marked)

    async def render(self, chat_id: str | int, replies: Sequence[Reply], language: str) -> None:
        """Send replies in order; a reply with `commands_for` then sets the chat's command menu."""
        for reply in replies:
            await self.send_reply(chat_id, reply)
            if reply.commands_for:
                await self.set_chat_commands(chat_id, reply.commands_for, language)

    async def send_reply(self, chat_id: str | int, reply: Reply) -> None:
        """One reply: its text (split when too long; buttons on the last part), then any file."""
        bot = self.application.bot
        chat = chat_ref(chat_id)
        markup = keyboard(reply)
        if reply.text.strip() or markup is not None:
            parts = split_text(reply.text) or ["…"]
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                await bot.send_message(chat, part, reply_markup=markup if last else None)
        if reply.photo_path:
            with Path(reply.photo_path).open("rb") as photo:
                await bot.send_photo(chat, photo)
        if reply.file_path:
            with Path(reply.file_path).open("rb") as document:
                await bot.send_document(chat, document)
        if reply.attachments:
            await self.send_attachments(chat, reply.attachments)

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


# ---- running ---------------------------------------------------------------------------------


async def until_signalled() -> None:
    """Wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def run_telegram(settings: Settings) -> None:
    """Run the bot on Telegram until SIGINT/SIGTERM."""
    redactor = TokenRedactor(settings.telegram.token.get_secret_value())
    for handler in logging.getLogger().handlers:
        handler.addFilter(redactor)  # the last line of defence for any record that reaches output
    async with build_app(settings) as app, TelegramChannel(app):
        log.info("running; Ctrl-C to stop")
        await until_signalled()
    log.info("stopped")
