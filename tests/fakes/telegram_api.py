"""A loopback fake of the Telegram Bot API, for driving the real python-telegram-bot stack.

A stdlib `ThreadingHTTPServer` on 127.0.0.1 (a free port) in a background thread. It answers
`POST /bot<token>/<method>` (form-encoded, multipart or JSON bodies; PTB 22 sends form fields whose
non-string values are JSON-encoded, and schoolbot sends the same fields as a JSON body; as Telegram
does, a JSON-serialised field such as `reply_markup` is read from a string in either), long-polls
`getUpdates`, records every call, and can be told to fail a method or to answer 403 for sends to a
chat that "blocked the bot". Given `limits`
(`FloodLimits`), it enforces Telegram's flood limits with 429 and `retry_after`, as Telegram does.

    with FakeBotAPI() as api:
        api.push_update(text_update(user, "/start"))
        ...
        assert api.sent_to(user.id)[-1]["text"] == "..."
"""

from __future__ import annotations

import collections
import email.parser
import email.policy
import itertools
import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.fakes.loopback import LoopbackServer, QuietHandler
from tests.support import shown

TOKEN = "123456:TEST-fake-token-do-not-log"
BOT_ID = 123456
BOT_USERNAME = "schoolbot_test_bot"

# Form fields PTB JSON-encodes (everything else, like text and chat_id, arrives as a plain string).
JSON_PARAMS = frozenset(
    {
        "media",
        "reply_markup",
        "commands",
        "scope",
        "allowed_updates",
        "offset",
        "timeout",
        "limit",
        "message_id",
        "show_alert",
        "cache_time",
        "drop_pending_updates",
        "max_connections",
        "entities",
        "caption_entities",
        "link_preview_options",
        "reply_parameters",
        "disable_notification",
        "protect_content",
    }
)
# Methods that deliver something to `chat_id`: a chat that blocked the bot gets 403 for these.
UPLOAD_LIMIT = 50 * 1024 * 1024  # what the cloud Bot API takes in one file from a bot
SEND_METHODS = frozenset(
    {
        "sendmessage",
        "sendphoto",
        "senddocument",
        "sendvideo",
        "sendchataction",
        "sendmediagroup",
        "copymessage",
        "forwardmessage",
    }
)


@dataclass(frozen=True)
class Call:
    """One request the fake received: method as spelled by the client, decoded params, HTTP status."""

    method: str
    params: dict[str, Any]
    status: int


@dataclass
class Failure:
    """How a method should fail: HTTP status, description, and for how many calls (None: always)."""

    status: int
    description: str
    times: int | None = None
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class TgUser:
    """A Telegram user writing to the bot in a private chat (chat id = user id)."""

    id: int
    first_name: str
    last_name: str = ""
    language_code: str = "vi"

    def as_json(self) -> dict[str, Any]:
        """The `User` object."""
        out: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        if self.last_name:
            out["last_name"] = self.last_name
        if self.language_code:
            out["language_code"] = self.language_code
        return out

    def private_chat(self) -> dict[str, Any]:
        """The private `Chat` with this user."""
        return {"id": self.id, "type": "private", "first_name": self.first_name}

    @property
    def full_name(self) -> str:
        """First and last name, as PTB's `User.full_name`."""
        return f"{self.first_name} {self.last_name}".strip()


_message_ids = itertools.count(1)


def message_update(user: TgUser, chat: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An update carrying a new message from `user` with the given fields (text, photo, sticker...)."""
    message = {
        "message_id": next(_message_ids),
        "date": int(time.time()),
        "chat": chat or user.private_chat(),
        "from": user.as_json(),
        **fields,
    }
    return {"message": message}


def text_update(user: TgUser, text: str) -> dict[str, Any]:
    """A text message; a leading /command gets its `bot_command` entity, as Telegram sends it."""
    fields: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        length = len(text.split(" ", 1)[0])
        fields["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return message_update(user, **fields)


def edited_update(update: dict[str, Any], text: str) -> dict[str, Any]:
    """The update Telegram sends when the user edits the text of the message `update` carried."""
    message = update["message"]
    return {"edited_message": {**message, "text": text, "edit_date": message["date"] + 60}}


def callback_update(user: TgUser, data: str, message_id: int = 1) -> dict[str, Any]:
    """A press on an inline button under one of the bot's messages."""
    return {
        "callback_query": {
            "id": f"cq{next(_message_ids)}",
            "from": user.as_json(),
            "chat_instance": f"ci{user.id}",
            "data": data,
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": user.private_chat(),
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Schoolbot"},
                "text": "...",
            },
        }
    }


def _decode(key: str, value: str) -> Any:
    if key in JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's flood limits, enforced: in any `window` seconds at most `overall` messages from the
    bot and at most `per_chat` to one chat; beyond that, HTTP 429 with `retry_after`.

    The defaults are the real limits (30 msg/s overall, 1/s per chat). A shorter `window` runs the
    same limits faster (window=0.25: 120 msg/s overall, 4/s per chat); `retry_after` is then given
    in fractions of a second, as the scaled clock would.
    """

    overall: int = 30
    per_chat: int = 1
    window: float = 1.0


class FloodGate:
    """Sliding-window counters over accepted messages; thread-safe (the server is threaded)."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self.lock = threading.Lock()
        self.recent: collections.deque[float] = collections.deque()
        self.per_chat: dict[str, collections.deque[float]] = {}
        self.accepted: list[tuple[float, str]] = []  # (monotonic time, chat id) of every message let through
        self.refused = 0
        self.refusals: list[tuple[float, str, str]] = []  # (monotonic time, chat id, "overall" or "chat")

    def admit(self, chat_id: str) -> float | None:
        """None when the message may go; otherwise the seconds to wait (and it is counted as a 429)."""
        limits = self.limits
        with self.lock:
            now = time.monotonic()
            while self.recent and self.recent[0] <= now - limits.window:
                self.recent.popleft()
            chat = self.per_chat.setdefault(chat_id, collections.deque())
            while chat and chat[0] <= now - limits.window:
                chat.popleft()
            waits = []
            if len(self.recent) >= limits.overall:
                waits.append(self.recent[0] + limits.window - now)
            if len(chat) >= limits.per_chat:
                waits.append(chat[0] + limits.window - now)
            if waits:
                self.refused += 1
                self.refusals.append(
                    (now, chat_id, "overall" if len(self.recent) >= limits.overall else "chat")
                )
                return max(max(waits), 0.001)
            self.recent.append(now)
            chat.append(now)
            self.accepted.append((now, chat_id))
            return None

    def retry_after(self, wait: float) -> float | int:
        """What the 429 says: whole seconds at the real scale, fractions on a faster one."""
        if self.limits.window >= 1.0:
            return max(1, math.ceil(wait))
        return round(max(wait, 0.001), 3)


@dataclass
class _State:
    updates: list[dict[str, Any]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, Failure] = field(default_factory=dict)
    blocked: set[str] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    in_flight: int = 0  # requests being answered now, long polls apart
    peak: int = 0  # the most ever answered at once, long polls apart
    closing: bool = False


class FakeBotAPI(LoopbackServer):
    """The fake server; `start()`/`stop()` or use it as a context manager."""

    _state: _State

    def __init__(
        self,
        token: str = TOKEN,
        username: str = BOT_USERNAME,
        limits: FloodLimits | None = None,
        upload_limit: int = UPLOAD_LIMIT,
        keep_alive: bool = False,
    ) -> None:
        self.token = token
        # Keep connections open between requests, as Telegram does (the benchmark). Off in the tests:
        # each request on its own connection, so no idle connection outlives a test's bot.
        self.keep_alive = keep_alive
        self.upload_limit = upload_limit  # bytes of one uploaded file; larger ones are refused (413)
        self.flood = FloodGate(limits) if limits is not None else None
        self.username = username
        self.me = {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Schoolbot Test",
            "username": username,
            "can_join_groups": False,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }
        self._cond = threading.Condition()
        self._state = _State()
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._files_open = threading.Event()  # cleared: file downloads wait (a slow network)
        self._files_open.set()
        self._reset_server()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler serving this fake's routes."""
        return _make_handler(self)

    def start(self) -> Self:
        """Serve; then `base_url` and `base_file_url` are the bot's URLs here (PTB appends the token)."""
        super().start()
        self.base_url = self.url("/bot")
        self.base_file_url = self.url("/file/bot")
        return self

    def settings(self) -> dict[str, str]:
        """The [telegram] settings that point the bot at this fake."""
        return {
            "token": TOKEN,
            "username": BOT_USERNAME,
            "base_url": self.base_url,
            "base_file_url": self.base_file_url,
        }

    # ---- scripting ------------------------------------------------------------------------

    def push_update(self, *updates: dict[str, Any]) -> list[int]:
        """Queue updates for getUpdates, atomically (one batch); an update_id is given if missing."""
        ids = []
        with self._cond:
            for update in updates:
                update = dict(update)
                update.setdefault("update_id", next(self._update_ids))
                ids.append(update["update_id"])
                self._state.updates.append(update)
            self._cond.notify_all()
        return ids

    def next_update_id(self) -> int:
        """A fresh update id (for updates posted to a webhook)."""
        return next(self._update_ids)

    def fail(
        self,
        method: str,
        status: int = 500,
        description: str = "Internal Server Error",
        times: int | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> None:
        """Make `method` answer an error (for `times` calls, or until `clear_failures`)."""
        with self._cond:
            self._state.failures[method.lower()] = Failure(status, description, times, parameters)

    def slow(self, method: str, seconds: float) -> None:
        """`method` answers only after `seconds` (a slow platform: calls stay in flight that long)."""
        with self._cond:
            self._state.delays[method.lower()] = seconds

    def clear_failures(self) -> None:
        """Every method works again."""
        with self._cond:
            self._state.failures.clear()

    def block(self, chat_id: int | str) -> None:
        """Sends to this chat answer 403 "bot was blocked by the user"."""
        with self._cond:
            self._state.blocked.add(str(chat_id))

    def unblock(self, chat_id: int | str) -> None:
        """Sends to this chat work again (the user unblocked the bot)."""
        with self._cond:
            self._state.blocked.discard(str(chat_id))

    def forget_chat(self, chat_id: int | str) -> None:
        """Sends to this chat answer 400 "chat not found" (the account was deleted)."""
        with self._cond:
            self._state.gone.add(str(chat_id))

    def add_file(self, file_id: str, content: bytes, file_path: str = "") -> None:
        """A file getFile can describe and the file URL can serve."""
        with self._cond:
            self._state.files[file_id] = (file_path or f"documents/{file_id}", content)

    # ---- inspection -----------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every call so far, in order (a copy)."""
        with self._cond:
            return list(self._state.calls)

    def calls_to(self, method: str, ok_only: bool = False) -> list[dict[str, Any]]:
        """The params of every call to `method` (case-insensitive)."""
        wanted = method.lower()
        return [
            c.params for c in self.calls if c.method.lower() == wanted and (c.status == 200 or not ok_only)
        ]

    def sent_to(self, chat_id: int | str) -> list[dict[str, Any]]:
        """The messages delivered to a chat (sendMessage calls that succeeded), oldest first."""
        return [
            p for p in self.calls_to("sendMessage", ok_only=True) if str(p.get("chat_id")) == str(chat_id)
        ]

    def keyboards(self) -> list[dict[str, Any]]:
        """Every inline keyboard the bot sent or edited in."""
        out = []
        for call in self.calls:
            markup = call.params.get("reply_markup")
            if isinstance(markup, dict) and "inline_keyboard" in markup:
                out.append(markup)
        return out

    @property
    def gate(self) -> FloodGate:
        """The flood limits this fake enforces (one made with `limits`)."""
        assert self.flood is not None, "this fake enforces no flood limits"
        return self.flood

    @property
    def peak_requests(self) -> int:
        """The most requests (long polls apart) this fake was answering at one time."""
        with self._cond:
            return int(self._state.peak)

    @property
    def pending_updates(self) -> int:
        """Updates not yet confirmed by an offset."""
        with self._cond:
            return len(self._state.updates)

    # ---- the API --------------------------------------------------------------------------

    def handle(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Answer one Bot API call: (HTTP status, JSON body)."""
        polling = method.lower() == "getupdates"
        with self._cond:
            delay = self._state.delays.get(method.lower(), 0.0)
            if not polling:
                self._state.in_flight += 1
                self._state.peak = max(self._state.peak, self._state.in_flight)
        try:
            if delay:
                time.sleep(delay)
            status, body = self._answer(token, method, params)
        finally:
            if not polling:
                with self._cond:
                    self._state.in_flight -= 1
        if status == 200 and method.lower().startswith("send"):
            shown(params.get("text"), params.get("caption"))  # scanned by tests/conftest.py
        with self._cond:
            self._state.calls.append(Call(method, params, status))
            self._cond.notify_all()
        return status, body

    def _answer(self, token: str, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if token != self.token:
            return _error(401, "Unauthorized")
        name = method.lower()
        with self._cond:
            failure = self._state.failures.get(name)
            if failure is not None:
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        del self._state.failures[name]
                return _error(failure.status, failure.description, failure.parameters)
            if name in SEND_METHODS and not params.get("chat_id"):  # as Telegram: a request cut short
                return _error(400, "Bad Request: chat_id is empty")  # (its sender killed) sends nothing
            if name in SEND_METHODS and str(params.get("chat_id")) in self._state.blocked:
                return _error(403, "Forbidden: bot was blocked by the user")
            if name in SEND_METHODS and str(params.get("chat_id")) in self._state.gone:
                return _error(400, "Bad Request: chat not found")
        if self.flood is not None and name in SEND_METHODS and name != "sendchataction":
            wait = self.flood.admit(str(params.get("chat_id")))
            if wait is not None:
                after = self.flood.retry_after(wait)
                return _error(429, f"Too Many Requests: retry after {after}", {"retry_after": after})
        if any(isinstance(v, dict) and v.get("size", 0) > self.upload_limit for v in params.values()):
            return _error(413, "Request Entity Too Large")
        handler = getattr(self, f"_m_{name}", None)
        if handler is None:
            return _error(404, "Not Found: method not found")
        return 200, {"ok": True, "result": handler(params)}

    def _m_getme(self, params: dict[str, Any]) -> Any:
        return self.me

    def _m_getupdates(self, params: dict[str, Any]) -> Any:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        with self._cond:
            while True:
                if offset:
                    self._state.updates = [u for u in self._state.updates if u["update_id"] >= offset]
                ready = self._state.updates[:limit]
                remaining = deadline - time.monotonic()
                if ready or self._state.closing or remaining <= 0:
                    return ready
                self._cond.wait(remaining)

    def _m_deletewebhook(self, params: dict[str, Any]) -> Any:
        return True

    def _m_setwebhook(self, params: dict[str, Any]) -> Any:
        return True

    def _m_getwebhookinfo(self, params: dict[str, Any]) -> Any:
        hooks = self.calls_to("setWebhook", ok_only=True)
        url = hooks[-1].get("url", "") if hooks else ""
        return {"url": url, "has_custom_certificate": False, "pending_update_count": 0}

    def _m_setmycommands(self, params: dict[str, Any]) -> Any:
        return True

    def _m_deletemycommands(self, params: dict[str, Any]) -> Any:
        return True

    def _m_answercallbackquery(self, params: dict[str, Any]) -> Any:
        return True

    def _m_sendchataction(self, params: dict[str, Any]) -> Any:
        return True

    def _m_sendmessage(self, params: dict[str, Any]) -> Any:
        extra = {"reply_markup": params["reply_markup"]} if "reply_markup" in params else {}
        return self._message(params, text=params.get("text", ""), **extra)

    def _m_sendphoto(self, params: dict[str, Any]) -> Any:
        photo = {"file_id": "ph1", "file_unique_id": "uph1", "width": 1, "height": 1}
        return self._message(params, photo=[photo])

    def _m_senddocument(self, params: dict[str, Any]) -> Any:
        return self._message(params, document={"file_id": "doc1", "file_unique_id": "udoc1"})

    def _m_sendvideo(self, params: dict[str, Any]) -> Any:
        video = {"file_id": "vd1", "file_unique_id": "uvd1", "width": 1, "height": 1, "duration": 1}
        return self._message(params, video=video)

    def _m_sendmediagroup(self, params: dict[str, Any]) -> Any:
        items = params.get("media") or []
        photo = {"file_id": "ph1", "file_unique_id": "uph1", "width": 1, "height": 1}
        return [self._message(params, photo=[photo]) for _ in items]

    def _m_editmessagetext(self, params: dict[str, Any]) -> Any:
        return self._message(params, text=params.get("text", ""))

    def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> Any:
        return self._message(params, text="...")

    def _m_getfile(self, params: dict[str, Any]) -> Any:
        file_id = str(params.get("file_id", ""))
        with self._cond:
            path, content = self._state.files.get(file_id, (f"documents/{file_id}", b""))
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(content),
            "file_path": path,
        }

    def hold_files(self) -> None:
        """File downloads wait until `release_files` (as on a slow network); the API still answers."""
        self._files_open.clear()

    def release_files(self) -> None:
        """Downloads held by `hold_files` go on."""
        self._files_open.set()

    def file_content(self, token: str, path: str) -> bytes | None:
        """The bytes at a file URL, if the token is right and the file is known."""
        self._files_open.wait(timeout=30)
        if token != self.token:
            return None
        with self._cond:
            return next((c for p, c in self._state.files.values() if p == path), None)

    def _message(self, params: dict[str, Any], **content: Any) -> dict[str, Any]:
        chat_id = str(params.get("chat_id", "0"))
        number = int(chat_id) if chat_id.lstrip("-").isdigit() else 0
        return {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": number, "type": "private" if number > 0 else "supergroup"},
            "from": self.me,
            **content,
        }


def _error(
    status: int, description: str, parameters: dict[str, Any] | None = None
) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


def _parse_body(content_type: str, body: bytes) -> dict[str, Any]:
    """Form-encoded, multipart or JSON parameters."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not body:
        return {}
    if kind == "application/json":
        data = json.loads(body)
        if not isinstance(data, dict):
            return {}
        return {k: _decode(k, v) if isinstance(v, str) else v for k, v in data.items()}
    if kind == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        params: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            raw = part.get_payload(decode=True)
            payload = raw if isinstance(raw, bytes) else b""
            if part.get_filename():
                params[name] = {"filename": part.get_filename(), "size": len(payload), "content": payload}
            else:
                params[name] = _decode(name, payload.decode("utf-8"))
        return params
    return {k: _decode(k, v) for k, v in parse_qsl(body.decode("utf-8"), keep_blank_values=True)}


def _make_handler(api: FakeBotAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        """Routes /bot<token>/<method> and /file/bot<token>/<path>."""

        protocol_version = "HTTP/1.1" if api.keep_alive else "HTTP/1.0"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            body = self.body()
            if parts.path.startswith("/file/bot"):
                # PTB percent-encodes the file URL's path (the token's ":" becomes %3A).
                token, _, path = unquote(parts.path).removeprefix("/file/bot").partition("/")
                content = api.file_content(token, path)
                if content is None:
                    self._reply(404, b"Not Found", "text/plain")
                else:
                    self._reply(200, content, "application/octet-stream")
                return
            if not parts.path.startswith("/bot"):
                self._reply(404, b'{"ok":false,"error_code":404,"description":"Not Found"}')
                return
            token, _, method = parts.path.removeprefix("/bot").rpartition("/")
            try:
                params = {k: _decode(k, v) for k, v in parse_qsl(parts.query)}
                params.update(_parse_body(self.headers.get("Content-Type", ""), body))
            except ValueError:
                status, answer = _error(400, "Bad Request: can't parse request")
            else:
                status, answer = api.handle(token, method, params)
            self._reply(status, json.dumps(answer).encode())

        def _reply(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                if not api.keep_alive:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a cancelled long poll at shutdown)

    return Handler
