"""Zalo's Bot API over httpx: `<base_url>/bot<token>/<method>` with a JSON body, its error codes as
our typed errors (storage.errors' ChannelError subclasses), and photo downloads within a limit."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx

from bot.channels.base import GONE_WORDS, Gate
from storage.errors import (
    ChannelError,
    FetchError,
    Gone,
    Rejected,
    RetryAfter,
    TimedOut,
    TooLarge,
)


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


# ---- running ---------------------------------------------------------------------------------


class ZaloAPI:
    """Calls `<base_url>/bot<token>/<method>` with a JSON body; returns `result` or raises."""

    def __init__(
        self, base_url: str, token: str, client: httpx.AsyncClient, gate: Gate | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.client = client
        self.gate = gate  # the client's connections, waited for in front of its pool (bot/channels/base.py)

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
            async with self.gate.turn() if self.gate is not None else contextlib.nullcontext():
                response = await self.client.post(url, json=params or {}, timeout=wait)
        except (httpx.TimeoutException, TimeoutError) as exc:
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
