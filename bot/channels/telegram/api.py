"""Telegram's API as PTB gives it, at the edge: its errors translated into ours, and the rate limiter
that lets the outbox own the retry after a 429."""

from __future__ import annotations

import contextvars
import warnings
from datetime import timedelta
from typing import Any

from telegram.error import BadRequest, Forbidden, TelegramError
from telegram.error import RetryAfter as TgRetryAfter
from telegram.error import TimedOut as TgTimedOut
from telegram.ext import (
    AIORateLimiter,
)
from telegram.warnings import PTBDeprecationWarning

from bot.channels.base import GONE_WORDS
from storage.errors import (
    Blocked,
    ChannelError,
    Gone,
    Rejected,
    RetryAfter,
    TimedOut,
)


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
