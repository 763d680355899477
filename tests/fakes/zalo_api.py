"""A loopback fake of Zalo's Bot Platform API (docs/zalo-bot-api.md section 7), for the Zalo channel.

A stdlib `ThreadingHTTPServer` on 127.0.0.1 (a free port) in a background thread. It answers
`POST|GET /bot<token>/<method>` (JSON, form or query parameters) with Zalo's envelope, long-polls
`getUpdates` (one update per call, HTTP 408 when idle), records every call, serves photos under
`/files/<name>` (slow, huge, expired or not images, on demand), counts sends against a monthly quota
(429 after it), and pushes updates to a webhook with the `X-Bot-Api-Secret-Token` header, wrapped
or flat, once or twice.

    with FakeZaloAPI() as api:
        api.push(text_event(user, "/start"))
        ...
        assert api.texts_to(user.id)[-1] == "..."
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx

from tests.fakes.loopback import LoopbackServer, QuietHandler
from tests.support import shown

TOKEN = "3141592653589793238:zalo-TEST-secret-do-not-log"
BOT_ID = "7d1e2c3b4a5968778695"
BOT_NAME = "Bot Schoolbot Test"
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "sendSticker", "sendVoice"})
MAX_TEXT = 2000


@dataclass(frozen=True)
class Call:
    """One request the fake received: method, decoded params, HTTP status."""

    method: str
    params: dict[str, Any]
    status: int


@dataclass
class Failure:
    """How a method should fail: HTTP status, body (None: Zalo's error envelope), for `times` calls."""

    status: int
    description: str
    times: int | None = None
    body: Any = None


@dataclass(frozen=True)
class ZaloUser:
    """Someone writing to the bot in a private chat (chat id = user id, both hex-like strings)."""

    id: str
    display_name: str


@dataclass
class Served:
    """A file under /files/<name>: bytes, type, and how to misbehave."""

    content: bytes
    content_type: str = "image/jpeg"
    delay: float = 0.0  # seconds before answering (a time-out)
    expired: bool = False  # 403, as an expired Zalo CDN link
    declare_length: bool = True  # False: chunked, no Content-Length
    fetches: int = 0


_ids = itertools.count(1)


def hex_id(n: int | None = None) -> str:
    """A 20-hex-character id, as Zalo's message and user ids look."""
    return f"{next(_ids) if n is None else n:020x}"


def event(user: ZaloUser, name: str, **fields: Any) -> dict[str, Any]:
    """A flat update `{event_name, message}` from `user` (the shape OpenClaw saw in live traffic)."""
    message = {
        "message_id": hex_id(),
        "date": int(time.time() * 1000),
        "chat": {"id": user.id, "chat_type": "PRIVATE"},
        "from": {"id": user.id, "display_name": user.display_name, "is_bot": False},
        **fields,
    }
    return {"event_name": name, "message": message}


def text_event(user: ZaloUser, text: str) -> dict[str, Any]:
    """A text message."""
    return event(user, "message.text.received", text=text)


def image_event(user: ZaloUser, url: str, caption: str = "", field_name: str = "photo_url") -> dict[str, Any]:
    """An image: `photo_url` in real payloads, `photo` in the docs."""
    return event(
        user, "message.image.received", message_type="CHAT_PHOTO", caption=caption, **{field_name: url}
    )


def sticker_event(user: ZaloUser) -> dict[str, Any]:
    """A sticker."""
    return event(
        user, "message.sticker.received", sticker="d063f44dc80821567819", url="https://example.invalid/s.png"
    )


def unsupported_event(user: ZaloUser | None = None) -> dict[str, Any]:
    """What a video, a file or a contact card becomes; without a user, an update with no message."""
    if user is None:
        return {"event_name": "message.unsupported.received"}
    return event(user, "message.unsupported.received")


def wrapped(update: dict[str, Any]) -> dict[str, Any]:
    """The documented webhook shape `{ok, result}`."""
    return {"ok": True, "result": update}


@dataclass
class _State:
    updates: list[dict[str, Any]] = field(default_factory=list)
    last_update: dict[str, Any] | None = None
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    files: dict[str, Served] = field(default_factory=dict)
    webhook: dict[str, str] | None = None
    sends: int = 0
    closing: bool = False


class FakeZaloAPI(LoopbackServer):
    """The fake server; `start()`/`stop()` or use it as a context manager.

    Switches: `replay` (getUpdates gives the last update again whenever nothing new is queued, as
    one project measured), `quota` (sends answered 429 once that many went through), `idle_code`
    (False: the idle 408 body carries no `error_code`, as one project measured).
    """

    _state: _State

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.me = {"id": BOT_ID, "account_name": BOT_NAME, "account_type": "BASIC", "can_join_groups": False}
        self.replay = False
        self.quota: int | None = None
        self.idle_code = True
        self.webhook_target = ""  # where pushes go: the bot's local port, standing in for the https URL
        self._cond = threading.Condition()
        self._state = _State()
        self._reset_server()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler serving this fake's routes."""
        return _make_handler(self)

    @property
    def base_url(self) -> str:
        """For zalo.base_url (the client appends /bot<token>/<method>)."""
        return self.url()

    def settings(self) -> dict[str, str]:
        """The [zalo] settings that point the bot at this fake."""
        return {"token": TOKEN, "base_url": self.base_url}

    # ---- scripting ------------------------------------------------------------------------

    def push(self, *updates: dict[str, Any]) -> None:
        """Queue updates for getUpdates (each call hands out one)."""
        with self._cond:
            self._state.updates.extend(updates)
            self._cond.notify_all()

    def fail(
        self,
        method: str,
        status: int = 500,
        description: str = "Internal Server Error",
        times: int | None = None,
        body: Any = None,
    ) -> None:
        """Make `method` answer an error (for `times` calls, or until `clear_failures`)."""
        with self._cond:
            self._state.failures[method] = Failure(status, description, times, body)

    def clear_failures(self) -> None:
        """Every method works again."""
        with self._cond:
            self._state.failures.clear()

    def revoke(self) -> None:
        """The owner reset the token in Zalo Bot Creator: every call now answers 401."""
        with self._cond:
            self.token = "revoked:" + secrets.token_hex(8)
            self._cond.notify_all()

    def add_file(
        self,
        name: str,
        content: bytes,
        content_type: str = "image/jpeg",
        delay: float = 0.0,
        declare_length: bool = True,
    ) -> str:
        """Serve `content` at /files/<name>; its URL."""
        with self._cond:
            self._state.files[name] = Served(content, content_type, delay, declare_length=declare_length)
        return f"{self.base_url}/files/{quote(name)}"

    def expire(self, name: str) -> None:
        """The file's URL now answers 403, as an expired CDN link."""
        with self._cond:
            self._state.files[name].expired = True

    def fetches(self, name: str) -> int:
        """How many times a file was requested."""
        with self._cond:
            return self._state.files[name].fetches

    # ---- webhook push -----------------------------------------------------------------------

    def push_webhook(
        self, update: dict[str, Any], *, wrap: bool = True, times: int = 1, secret: str | None = None
    ) -> list[int]:
        """POST an update to the webhook set with setWebhook (`times` deliveries); the statuses.

        The secret is the one setWebhook registered unless `secret` is given ("" sends no header).
        Blocking: call it with `asyncio.to_thread` from async tests.
        """
        with self._cond:
            hook = dict(self._state.webhook or {})
        assert hook and self.webhook_target, "no webhook set, or no webhook_target to reach it"
        key = hook.get("secret_token", "") if secret is None else secret
        headers = {"X-Bot-Api-Secret-Token": key} if key else {}
        body = wrapped(update) if wrap else update
        with httpx.Client(trust_env=False, timeout=10) as client:
            return [
                client.post(self.webhook_target, json=body, headers=headers).status_code for _ in range(times)
            ]

    # ---- inspection -----------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in order (a copy)."""
        with self._cond:
            return list(self._state.calls)

    def calls_to(self, method: str, ok_only: bool = False) -> list[dict[str, Any]]:
        """The params of every call to `method`."""
        return [c.params for c in self.calls if c.method == method and (c.status == 200 or not ok_only)]

    def statuses(self, method: str) -> list[int]:
        """The HTTP status of every call to `method`."""
        return [c.status for c in self.calls if c.method == method]

    def texts_to(self, chat_id: str) -> list[str]:
        """The texts delivered to a chat (sendMessage calls that succeeded), oldest first."""
        return [
            str(p["text"])
            for p in self.calls_to("sendMessage", ok_only=True)
            if str(p.get("chat_id")) == chat_id
        ]

    @property
    def pending(self) -> int:
        """Updates not yet handed out."""
        with self._cond:
            return len(self._state.updates)

    # ---- the API --------------------------------------------------------------------------

    def handle(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        """Answer one call: (HTTP status, JSON body)."""
        status, body = self._answer(token, method, params)
        if status == 200 and method.lower().startswith("send"):
            shown(params.get("text"), params.get("caption"))  # scanned by tests/conftest.py
        with self._cond:
            self._state.calls.append(Call(method, params, status))
            self._cond.notify_all()
        return status, body

    def _answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, Any]:
        with self._cond:
            if token != self.token:
                return _error(401, "Unauthorized: invalid or expired token")
            failure = self._state.failures.get(method)
            if failure is not None:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._state.failures[method]
                if failure.body is not None:
                    return failure.status, failure.body
                return _error(failure.status, failure.description)
            if method in SEND_METHODS and self.quota is not None and self._state.sends >= self.quota:
                return _error(429, "Quota exceeded")
        handler = getattr(self, f"_m_{method}", None)  # method names are case-sensitive
        if handler is None:
            return _error(404, "Not Found: unknown method")
        status, body = handler(params)
        return int(status), body

    def _m_getMe(self, params: dict[str, Any]) -> tuple[int, Any]:
        return 200, {"ok": True, "result": self.me}

    def _m_getUpdates(self, params: dict[str, Any]) -> tuple[int, Any]:
        try:
            timeout = float(params.get("timeout") or 30)
        except ValueError:
            return _error(400, "Bad Request: timeout")
        deadline = time.monotonic() + timeout
        token = self.token
        with self._cond:
            if self._state.webhook:
                return _error(400, "Bad Request: webhook is set; call deleteWebhook before getUpdates")
            while True:
                if self._state.updates:
                    update = self._state.updates.pop(0)
                    self._state.last_update = update
                    return 200, {"ok": True, "result": update}
                if self.replay and self._state.last_update is not None:
                    return 200, {"ok": True, "result": self._state.last_update}
                if self.token != token:  # revoked while this poll waited
                    return _error(401, "Unauthorized: invalid or expired token")
                remaining = deadline - time.monotonic()
                if self._state.closing or remaining <= 0:
                    body: dict[str, Any] = {"ok": False, "description": "Request timeout"}
                    if self.idle_code:
                        body["error_code"] = 408
                    return 408, body
                self._cond.wait(remaining)

    def _m_setWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        url, secret = str(params.get("url") or ""), str(params.get("secret_token") or "")
        if not url.startswith("https://"):
            return _error(400, "Bad Request: url must be https")
        if not 8 <= len(secret) <= 256:
            return _error(400, "Bad Request: secret_token must be 8-256 characters")
        now = int(time.time() * 1000)
        with self._cond:
            self._state.webhook = {"url": url, "secret_token": secret}
        return 200, {"ok": True, "result": {"url": url, "updated_at": now}}

    def _m_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, Any]:
        with self._cond:
            self._state.webhook = None
        return 200, {"ok": True, "result": {"url": "", "updated_at": int(time.time() * 1000)}}

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> tuple[int, Any]:
        with self._cond:
            hook = self._state.webhook
        if not hook:
            return _error(404, "Not Found")
        return 200, {"ok": True, "result": {"url": hook["url"], "updated_at": int(time.time() * 1000)}}

    def _send(self, params: dict[str, Any], *required: str) -> tuple[int, Any]:
        if not params.get("chat_id") or any(not params.get(name) for name in required):
            return _error(400, "Bad Request: missing parameter")
        with self._cond:
            self._state.sends += 1
        return 200, {
            "ok": True,
            "result": {"message_id": secrets.token_hex(10), "date": int(time.time() * 1000)},
        }

    def _m_sendMessage(self, params: dict[str, Any]) -> tuple[int, Any]:
        text = params.get("text")
        if not isinstance(text, str) or not 1 <= len(text) <= MAX_TEXT:
            return _error(400, "Bad Request: text must be 1-2000 characters")
        return self._send(params, "text")

    def _m_sendPhoto(self, params: dict[str, Any]) -> tuple[int, Any]:
        return self._send(params, "photo")

    def _m_sendSticker(self, params: dict[str, Any]) -> tuple[int, Any]:
        return self._send(params, "sticker")

    def _m_sendVoice(self, params: dict[str, Any]) -> tuple[int, Any]:
        return self._send(params, "voice_url")

    def _m_sendChatAction(self, params: dict[str, Any]) -> tuple[int, Any]:
        if not params.get("chat_id") or params.get("action") != "typing":
            return _error(400, "Bad Request: action")
        return 200, {"ok": True}

    def serve_file(self, name: str) -> tuple[int, Served | None]:
        """The file at /files/<name>, counted; (status, file)."""
        with self._cond:
            served = self._state.files.get(name)
            if served is None:
                return 404, None
            served.fetches += 1
            return (403 if served.expired else 200), served


def _error(status: int, description: str) -> tuple[int, dict[str, Any]]:
    return status, {"ok": False, "error_code": status, "description": description}


def _params(content_type: str, query: str, body: bytes) -> dict[str, Any]:
    """Query, then JSON or form parameters."""
    params: dict[str, Any] = dict(parse_qsl(query))
    kind = content_type.split(";", 1)[0].strip().lower()
    if body and kind == "application/json":
        data = json.loads(body)
        if isinstance(data, dict):
            params.update(data)
    elif body:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


def _make_handler(api: FakeZaloAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        """Routes /bot<token>/<method> and /files/<name>."""

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            body = self.body()
            if parts.path.startswith("/files/"):
                self._file(unquote(parts.path.removeprefix("/files/")))
                return
            if not parts.path.startswith("/bot"):
                self._reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return
            token, _, method = parts.path.removeprefix("/bot").rpartition("/")
            try:
                params = _params(self.headers.get("Content-Type", ""), parts.query, body)
            except ValueError:
                status, answer = _error(400, "Bad Request: can't parse request")
            else:
                status, answer = api.handle(token, method, params)
            self._reply(status, answer)

        def _file(self, name: str) -> None:
            status, served = api.serve_file(name)
            if served is None or status != 200:
                self._raw(status, b"<html>Forbidden</html>", "text/html", True)
                return
            if served.delay:
                time.sleep(served.delay)
            self._raw(200, served.content, served.content_type, served.declare_length)

        def _reply(self, status: int, payload: Any) -> None:
            self._raw(status, json.dumps(payload).encode(), "application/json", True)

        def _raw(self, status: int, payload: bytes, content_type: str, declare_length: bool) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                if declare_length:
                    self.send_header("Content-Length", str(len(payload)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a cancelled long poll, a download cut at its size limit)

    return Handler
