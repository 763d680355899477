"""The terminal channel: one message per line in, replies printed, choices as numbered lines."""

from __future__ import annotations

import asyncio
import mimetypes
import secrets
import shlex
import sys
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TextIO, TypedDict

from bot.dispatch import Dispatcher
from handlers.types import Incoming, Kind, Media, Reply, numbered
from storage import queries as q
from storage.errors import FetchError
from storage.models import User

CHANNEL = "console"


class Sender(TypedDict):
    """The fields every Incoming of one typed line shares."""

    channel: str
    user_id: str
    chat_id: str
    display_name: str
    update_id: str


def file_incoming(path: Path, user_id: str, n: int) -> Incoming:
    """A file from disk, sent as a document (as an original photo is on Telegram)."""
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    media = Media(
        kind="document",
        file_id=f"console:{path.resolve()}",
        file_unique_id="",
        mime_type=mime,
        file_name=path.name,
        size=path.stat().st_size,
        local_path=str(path.resolve()),
    )
    return Incoming(
        CHANNEL,
        user_id,
        user_id,
        Kind.MEDIA,
        display_name=user_id,
        media=(media,),
        update_id=f"{user_id}:{n}",
    )


def dropped_path(line: str) -> Path | None:
    """A path dragged into the terminal (maybe quoted) that names an existing file."""
    try:
        parts = shlex.split(line)
    except ValueError:
        return None
    if len(parts) != 1:
        return None
    path = Path(parts[0]).expanduser()
    return path if path.is_file() else None


def to_incoming(line: str, user_id: str, n: int, display_name: str = "") -> Incoming:
    """One typed line as an Incoming: a command, a file, or text."""
    base: Sender = {
        "channel": CHANNEL,
        "user_id": user_id,
        "chat_id": user_id,
        "display_name": display_name or user_id,
        "update_id": f"{user_id}:{n}",
    }
    text = line.rstrip("\r\n")
    if text.startswith("/file "):
        path = Path(text[6:].strip().strip("'\"")).expanduser()
        if path.is_file():
            return file_incoming(path, user_id, n)
        return Incoming(**base, kind=Kind.TEXT, text=text)
    if text.startswith("/") and len(text) > 1 and not text.startswith("//"):
        command, _, args = text[1:].partition(" ")
        return Incoming(
            **base, kind=Kind.COMMAND, command=command.split("@")[0], args=args.strip(), text=text
        )
    dropped = dropped_path(text) if text.strip().startswith(("/", "~", "'", '"', ".")) else None
    if dropped is not None:
        return file_incoming(dropped, user_id, n)
    return Incoming(**base, kind=Kind.TEXT, text=text)


def render(replies: list[Reply]) -> str:
    """Replies as terminal text: numbered choices, or keywords where a typed answer is expected."""
    numbers = {v: k for k, v in numbered(replies).items()}
    blocks = []
    for reply in replies:
        lines = [reply.text]
        lines += [f"  📎 {a.caption}" for a in reply.attachments]  # named by role, never a path or file id
        lines += [f"  🖼 {reply.photo_path}"] if reply.photo_path else []
        lines += [f"  📄 {reply.file_path}"] if reply.file_path else []
        if reply.expects_text and reply.choices:
            lines.append("  [" + " · ".join(c.label for c in reply.flat_choices()) + "]")
        else:
            lines += [f"  {numbers.get(c.value, '-')}. {c.label}" for c in reply.flat_choices()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


async def read_local_file(media: Media) -> bytes:
    """A console "upload" is a file on this machine."""
    try:
        return Path(media.local_path).read_bytes()
    except OSError as exc:
        raise FetchError(f"cannot read {media.file_name}") from exc


class ConsoleChat:
    """A chat session for one console user."""

    def __init__(
        self, dispatcher: Dispatcher, user_id: str, out: TextIO | None = None, display_name: str = ""
    ) -> None:
        self.dispatcher = dispatcher
        self.user_id = user_id
        self.display_name = display_name
        self.out = out or sys.stdout
        self.turn = 0
        self.session_id = secrets.token_hex(4)  # update ids must not repeat across chat sessions

    async def send_to_console_user(self, user: User, replies: list[Reply]) -> None:
        """Print for the user in this session; keep for any other console user."""
        if user.external_id == self.user_id:
            self.show(replies)
            return
        with self.dispatcher.db.session() as s:
            for reply in replies:
                q.keep_for_later(s, user.id or 0, reply.to_payload(), self.dispatcher.clock.now())

    def show(self, replies: list[Reply]) -> None:
        """Print replies."""
        if replies:
            self.out.write(render(replies) + "\n\n")
            self.out.flush()

    async def send(self, line: str) -> list[Reply]:
        """Send one line as this user; the replies are printed and returned."""
        self.turn += 1
        msg = to_incoming(line, self.user_id, self.turn, self.display_name)
        replies = await self.dispatcher.handle(replace(msg, update_id=f"{self.session_id}:{msg.update_id}"))
        self.show(replies)
        return replies

    def remember(self, replies: list[Reply]) -> None:
        """Let "1", "2"... answer the choices of messages shown outside a turn."""
        if not replies:
            return
        with self.dispatcher.db.session() as s:
            user = q.get_user(s, CHANNEL, self.user_id)
        if user is not None:
            self.dispatcher.remember_menu(user, replies, CHANNEL)

    def kept_messages(self) -> list[Reply]:
        """Messages kept while this user was away, shown when the chat opens."""
        db, clock = self.dispatcher.db, self.dispatcher.clock
        with db.session() as s:
            user = q.get_user(s, CHANNEL, self.user_id)
            if user is None:
                return []
            payloads = q.take_kept(s, user.id or 0, clock.now())
        return [Reply.from_payload(p) for p in payloads]

    async def run(
        self, lines: Iterable[str] | AsyncIterator[str] | None = None, prompt: bool = False
    ) -> None:
        """Read lines until end of input, answering each."""
        kept = self.kept_messages()
        self.show(kept)
        self.remember(kept)
        source = lines if lines is not None else stdin_lines(prompt)
        if isinstance(source, AsyncIterator):
            async for line in source:
                await self.send(line)
        else:
            for line in source:
                await self.send(line)


async def stdin_lines(prompt: bool) -> AsyncIterator[str]:
    """Lines from standard input, with a prompt when a person is typing."""
    while True:
        if prompt:
            sys.stdout.write("> ")
            sys.stdout.flush()
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line:
            return
        if line.strip():
            yield line
