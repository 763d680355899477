"""The dispatcher: the middleware chain around the router, and delivery to other users."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from bot.outbox import Outbox
from handlers.calendar import Clock
from handlers.config import Settings
from handlers.i18n import Catalog
from handlers.router import Router
from handlers.types import Context, Fetcher, Incoming, Kind, Reply, numbered
from storage import queries as q
from storage.db import Database
from storage.media import MediaStore
from storage.models import User
from storage.text import label_key

log = logging.getLogger("schoolbot.dispatch")

# Delivers replies to a user who is not the one writing; raises on failure.
Sender = Callable[[User, list[Reply]], Awaitable[None]]


@dataclass
class Dispatcher:
    """Turns one Incoming into replies: dedupe, user, inbox, numbered answers, route, errors."""

    db: Database
    clock: Clock
    catalog: Catalog
    settings: Settings
    router: Router
    buttonless: frozenset[str] = frozenset({"console", "zalo"})
    senders: dict[str, Sender] = field(default_factory=dict)
    fetchers: dict[str, Fetcher] = field(default_factory=dict)
    upload_limits: dict[str, int | None] = field(default_factory=dict)  # absent or None: no limit
    media: MediaStore | None = None
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.db, self.clock, self.settings, self.senders)

    async def handle(self, msg: Incoming) -> list[Reply]:
        """Everything the writer should see now, in order. Never raises."""
        started = time.perf_counter()
        t = self.catalog.translator(msg.language or self.settings.locale, msg.channel)
        try:
            user, kept, fresh = self.enter(msg)
            if not fresh:
                log.info("dropped redelivered update %s", msg.update_id)
                return []
            t = self.catalog.translator(user.locale or msg.language or self.settings.locale, msg.channel)
            ctx = self.context(msg, user)
            replies = await self.router.route(self.resolve_number(msg, user), ctx)
            await self.outbox.deliver_now(ctx.queued)  # what the handler told others, in its transaction
            mine = await self.deliver_others(user, replies, source=self.source_of(msg))
            self.remember_menu(user, kept + mine, msg.channel)
            return kept + mine
        except Exception:
            log.exception("update %s from %s:%s failed", msg.update_id, msg.channel, msg.user_id)
            return [Reply(t("error.generic"))]
        finally:
            log.debug("update %s took %.1f ms", msg.update_id, (time.perf_counter() - started) * 1000)

    def enter(self, msg: Incoming) -> tuple[User, list[Reply], bool]:
        """Record the update (False if seen before), resolve the user, take their kept messages."""
        now = self.clock.now()
        with self.db.session() as s:
            if msg.update_id and not q.first_time_seen(s, f"{msg.channel}:{msg.update_id}", now):
                return User(channel=msg.channel, external_id=msg.user_id, chat_id=msg.chat_id), [], False
            user = q.touch_user(s, msg.channel, msg.user_id, msg.chat_id, msg.display_name, now, msg.language)
            kept = [Reply.from_payload(p) for p in q.take_kept(s, user.id or 0, now)]
            s.flush()
            s.refresh(user)
            s.expunge(user)
        return user, kept, True

    def context(self, msg: Incoming, user: User) -> Context:
        """What the handlers of one update may touch."""
        t = self.catalog.translator(user.locale or msg.language or self.settings.locale, msg.channel)
        return Context(
            self.db,
            self.clock,
            t,
            self.settings,
            user,
            msg.channel,
            self.catalog,
            fetch=self.fetchers.get(msg.channel),
            upload_limit=self.upload_limits.get(msg.channel),
            media=self.media,
        )

    def resolve_number(self, msg: Incoming, user: User) -> Incoming:
        """On a channel without buttons, "2" or a choice's label picks that choice."""
        if msg.channel not in self.buttonless or msg.kind != Kind.TEXT:
            return msg
        menu = user.menu or {}
        text = msg.text.strip()
        value = menu.get("numbers", {}).get(text) or menu.get("labels", {}).get(label_key(text))
        return replace(msg, kind=Kind.CHOICE, choice=value) if value else msg

    def remember_menu(self, user: User, replies: list[Reply], channel: str) -> None:
        """Keep the choices just shown, so the next typed number or label can be resolved."""
        if channel not in self.buttonless:
            return
        labels = {label_key(c.label): c.value for r in replies for c in r.flat_choices()}
        with self.db.session() as s:
            q.set_menu(s, user.id or 0, {"numbers": numbered(replies), "labels": labels})

    async def deliver_others(self, writer: User, replies: list[Reply], source: str = "") -> list[Reply]:
        """Replies meant for other users go through the outbox's priority lane; return the writer's own.

        They are rows before anything is sent, keyed by the update that caused them (a redelivery adds
        none); the running sender takes them ahead of any bulk wave, and with no sender in this process
        (the console, tests) they are sent at once. This is for messages that follow no change of state:
        a handler whose change others must hear of writes them in the change's own transaction
        (`handlers.notify.tell`), so a crash between the two cannot lose them.
        """
        mine = [r for r in replies if r.to is None or r.to == writer.id]
        by_user: dict[int, list[Reply]] = {}
        for reply in replies:
            if reply.to is not None and reply.to != writer.id:
                by_user.setdefault(reply.to, []).append(replace(reply, to=None))
        if by_user:
            ids = self.outbox.enqueue_direct(source or f"local:{secrets.token_hex(8)}", by_user)
            await self.outbox.deliver_now(ids)
        return mine

    @staticmethod
    def source_of(msg: Incoming) -> str:
        """The update that caused a message to others (part of its outbox key)."""
        return f"{msg.channel}:{msg.update_id}" if msg.update_id else f"local:{secrets.token_hex(8)}"
