"""Telegram's API as PTB gives it, at the edge: its errors translated into ours, and the rate limiter
with two lanes (replies at once, the outbox's wave under the overall ceiling)."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import json
import logging
import random
import ssl
import time
import warnings
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from typing import Any, Protocol, cast

import httpx
from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.error import InvalidToken as TgInvalidToken
from telegram.error import NetworkError as TgNetworkError
from telegram.error import RetryAfter as TgRetryAfter
from telegram.error import TimedOut as TgTimedOut
from telegram.ext import BaseRateLimiter, ExtBot
from telegram.request import BaseRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

from bot.channels import sockets
from bot.channels.base import GONE_WORDS, POOL_WAIT, Gate, pool_limits
from storage.errors import (
    Blocked,
    ChannelError,
    Gone,
    Rejected,
    RetryAfter,
    TimedOut,
)

log = logging.getLogger("schoolbot.telegram")


def retry_seconds(exc: TgRetryAfter) -> float:
    """How long Telegram asked us to wait (without PTB 22's int-or-timedelta deprecation warning)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


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


OUTBOX_SEND: contextvars.ContextVar[bool] = contextvars.ContextVar("outbox_send", default=False)

# Requests that put a message in a chat: the ones Telegram counts against its flood limits.
MESSAGE_ENDPOINTS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendAnimation",
        "sendMediaGroup",
        "sendSticker",
        "sendLocation",
        "sendContact",
        "copyMessage",
        "forwardMessage",
    }
)
NOT_RETRIED = frozenset({"sendChatAction"})  # a late "typing..." is worth nothing
BACKOFF = 0.25  # a reply that met a 5xx or a network error goes again after 0.25, 0.5, 1... seconds
BACKOFF_CAP = 5.0


DEFAULT = type(BaseRequest.DEFAULT_NONE)  # PTB's "not given" (a time-out argument left to us)
JSON_HEADERS = (("User-Agent", BaseRequest.USER_AGENT), ("Content-Type", "application/json"))


@functools.lru_cache(maxsize=64)
def parsed_url(url: str) -> httpx.URL:
    """The method's URL, parsed once (httpx parses a string URL again for every request; a bot calls a
    handful of methods)."""
    return httpx.URL(url)


class GatedRequest(BaseRequest):
    """PTB's requests on httpx's transport (bot.channels.sockets) with a turn at one of `connections`
    first (`Gate`). PTB's own HTTPXRequest goes through httpx's client, whose cookies, redirects and
    authentication the Bot API never uses: they cost a quarter of the event loop at a few hundred
    requests a second. The rest is HTTPXRequest's: its time-outs (20 s to upload a file) and errors."""

    def __init__(
        self,
        base_url: str,
        connections: int,
        verify: ssl.SSLContext | bool = True,
        timeout: float = 5.0,
        media_write_timeout: float = 20.0,
    ) -> None:
        self.transport = sockets.transport(base_url, pool_limits(connections), verify)
        self.gate = Gate(connections)
        self.timeout = timeout
        self.media_write_timeout = media_write_timeout
        self.open = False

    @property
    def read_timeout(self) -> float:
        """Seconds to wait for an answer (PTB adds getUpdates' long-poll time to it)."""
        return self.timeout

    async def initialize(self) -> None:
        """Ready (httpx's pool opens connections when first needed)."""
        self.open = True

    async def shutdown(self) -> None:
        """Close the connections."""
        self.open = False
        await self.transport.aclose()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """The request, once a connection is free for it; PTB's TimedOut or NetworkError if it fails."""
        if not self.open:
            raise RuntimeError("GatedRequest is not initialized")
        files = request_data.multipart_data if request_data else None
        default_write = self.media_write_timeout if files else self.timeout
        timeout = httpx.Timeout(
            connect=self.timeout if isinstance(connect_timeout, DEFAULT) else connect_timeout,
            read=self.timeout if isinstance(read_timeout, DEFAULT) else read_timeout,
            write=default_write if isinstance(write_timeout, DEFAULT) else write_timeout,
            pool=POOL_WAIT,
        )
        if files or request_data is None:  # an upload (multipart), or a file's download
            request = httpx.Request(
                method,
                url,
                headers={"User-Agent": self.USER_AGENT},
                data=request_data.json_parameters if request_data else None,
                files=files,
                extensions={"timeout": timeout.as_dict()},
            )
        else:
            # A JSON body of PTB's parameters as its form would carry them (a keyboard as its JSON
            # text, which the Bot API reads as in a form): no percent-encoding of every Vietnamese
            # letter, and the method's URL parsed once.
            body = json.dumps(request_data.json_parameters, ensure_ascii=False)
            request = httpx.Request(
                method,
                parsed_url(url),
                headers=JSON_HEADERS,
                content=body.encode(),
                extensions={"timeout": timeout.as_dict()},
            )
        try:
            async with self.gate.turn():
                response = await self.transport.handle_async_request(request)
                try:
                    return response.status_code, await response.aread()
                finally:
                    await response.aclose()
        except TimeoutError as exc:
            raise TgTimedOut("Pool timeout: every connection to Telegram stayed busy") from exc
        except httpx.TimeoutException as exc:
            raise TgTimedOut from exc
        except httpx.HTTPError as exc:
            raise TgNetworkError(f"httpx.{type(exc).__name__}: {exc}") from exc


class TelegramBot(ExtBot[int]):
    """PTB's bot, `send_text` and `update_payloads`."""

    async def update_payloads(
        self, offset: int | None, timeout: timedelta, allowed_updates: Sequence[str]
    ) -> list[dict[str, Any]]:
        """getUpdates, its answer kept as Telegram sent it. PTB's get_updates builds an Update of
        each, which the bot turned back into JSON to store it and, on PostgreSQL, parsed again when
        a worker took it: a tenth of the event loop's time under the interactive bench. The same
        request as PTB's (the long poll's seconds added to the read timeout, as it does)."""
        data = {"timeout": timeout, "offset": offset, "allowed_updates": list(allowed_updates)}
        read_timeout = (self._request[0].read_timeout or 0) + timeout.total_seconds()
        return cast("list[dict[str, Any]]", await self._post("getUpdates", data, read_timeout=read_timeout))

    async def send_text(self, chat_id: int | str, text: str, markup: str | None = None) -> int:
        """sendMessage (with the inline keyboard's JSON, `wire.keyboard_json`), its answer read for the
        message's id alone. PTB's send_message builds a whole Message of the answer (its chat, sender
        and keyboard again) and serialises the keyboard each time: a sixth of the event loop's time
        under the interactive bench, for an id. The same request otherwise, through the same lanes."""
        data: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if markup is not None:
            data["reply_markup"] = markup
        sent = await self._post("sendMessage", data)
        return int(sent["message_id"])


class Budget(Protocol):
    """The bot's overall ceiling, shared with the outbox (bot.outbox.Pace)."""

    def spend(self) -> None:
        """A reply went out: take its token first."""
        ...

    def pause(self, seconds: float, slow_down: bool = False) -> None:
        """Telegram asked the bot to wait."""
        ...


class ChatBuckets:
    """One token bucket per chat: `burst` messages at once, then one every `seconds`."""

    def __init__(self, seconds: float, burst: int, now: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.burst = float(burst)
        self.now = now
        self.level: dict[str, tuple[float, float]] = {}  # chat -> (tokens, when counted)

    def wait(self, chat: str) -> float:
        """Take a token for `chat`; the seconds to wait before sending (0: now)."""
        t = self.now()
        if self.seconds <= 0:
            return 0.0
        tokens, stamp = self.level.get(chat, (self.burst, t))
        tokens = min(self.burst, tokens + (t - stamp) / self.seconds) - 1
        self.level[chat] = (tokens, t)
        if len(self.level) > 10_000:  # forget chats whose bucket is full again
            full = self.burst * self.seconds
            self.level = {c: v for c, v in self.level.items() if t - v[1] < full}
        return max(-tokens * self.seconds, 0.0)


class Lanes(BaseRateLimiter[int]):
    """Two lanes on one bot token (PTB's rate-limiter extension point; delivery.md, rule 7).

    Replies to the person writing go at once, limited only by the per-chat rule (`ChatBuckets`);
    each takes its token from the overall `budget` first, which the outbox paces its wave under, so
    the wave yields to chats. A reply Telegram answers with 429 waits `retry_after` and goes again
    (any request but "typing..."); a message that meets a 5xx or a network error goes again after
    a short backoff. Both stop once `max_wait` seconds in all would be passed, and the error is
    raised (the channel hands the reply to the outbox). PTB's guide leaves errors other than 429 to
    the caller; the message lane retries them here so that each request, not each reply, is resent
    (a long text's parts already sent are not sent twice). The outbox's own sends (OUTBOX_SEND set)
    go straight through: the outbox has paced them and owns their retry.
    """

    def __init__(
        self,
        budget: Budget,
        per_chat_seconds: float,
        burst: int,
        max_wait: float,
        now: Callable[[], float] = time.monotonic,
        throttled: Callable[[], None] = lambda: None,
    ) -> None:
        self.budget = budget
        self.throttled = throttled  # told of each 429 (the metrics count them)
        self.chats = ChatBuckets(per_chat_seconds, burst, now)
        self.max_wait = max_wait
        self.now = now
        self.retried = 0  # 429s waited out, for tests and the benchmark

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        """Send a reply in its chat's turn, waiting out 429s; an outbox send as it comes."""
        if OUTBOX_SEND.get():
            return await callback(*args, **kwargs)
        chat = data.get("chat_id")
        message = endpoint in MESSAGE_ENDPOINTS and chat is not None
        deadline = self.now() + self.max_wait
        failures = 0
        while True:
            if message:
                wait = self.chats.wait(str(chat))
                if wait > 0:
                    await asyncio.sleep(wait)
                self.budget.spend()
            try:
                return await callback(*args, **kwargs)
            except (BadRequest, TgInvalidToken):
                raise  # never better the second time
            except TgNetworkError as exc:  # a 5xx, a reset, a time-out (it may have arrived: resent)
                pause = min(BACKOFF * 2**failures, BACKOFF_CAP)
                failures += 1
                if not message or self.now() + pause > deadline:
                    raise
                log.debug(
                    "telegram %s to chat %s failed (%s); sending again in %.2f s",
                    endpoint,
                    chat,
                    type(exc).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
            except TgRetryAfter as exc:
                seconds = retry_seconds(exc)
                self.throttled()
                self.budget.pause(seconds)  # the wave waits too
                if endpoint in NOT_RETRIED or self.now() + seconds > deadline:
                    raise
                self.retried += 1
                log.debug(
                    "telegram asked to wait %.1f s before %s to chat %s; waiting", seconds, endpoint, chat
                )
                await asyncio.sleep(seconds + random.uniform(0.0, min(0.1, seconds / 4)))
