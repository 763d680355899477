"""The dispatcher: the middleware chain around the router, and delivery to other users."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from handlers.calendar import Clock
from handlers.i18n import Catalog
from handlers.router import Router
from handlers.types import Context, Fetcher, Incoming, Kind, Reply, numbered
from storage import queries as q
from storage.db import Database
from storage.errors import Blocked
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
    settings: Any
    router: Router
    buttonless: frozenset[str] = frozenset({"console", "zalo"})
    senders: dict[str, Sender] = field(default_factory=dict)
    fetchers: dict[str, Fetcher] = field(default_factory=dict)
    media: MediaStore | None = None

    async def handle(self, msg: Incoming) -> list[Reply]:
        """Everything the writer should see now, in order. Never raises."""
        started = time.perf_counter()
        t = self.catalog.translator(msg.language or self.settings.locale)
        try:
            user, kept, fresh = self.enter(msg)
            if not fresh:
                log.info("dropped redelivered update %s", msg.update_id)
                return []
            t = self.catalog.translator(user.locale or msg.language or self.settings.locale)
            ctx = Context(
                self.db,
                self.clock,
                t,
                self.settings,
                user,
                msg.channel,
                self.catalog,
                fetch=self.fetchers.get(msg.channel),
                media=self.media,
            )
            replies = await self.router.route(self.resolve_number(msg, user), ctx)
            mine = await self.deliver_others(user, replies)
            self.remember_menu(user, mine, msg.channel)
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

    async def deliver_others(self, writer: User, replies: list[Reply]) -> list[Reply]:
        """Send replies meant for other users through their channel; return the writer's own."""
        mine = [r for r in replies if r.to is None or r.to == writer.id]
        by_user: dict[int, list[Reply]] = {}
        for reply in replies:
            if reply.to is not None and reply.to != writer.id:
                by_user.setdefault(reply.to, []).append(replace(reply, to=None))
        for user_id, batch in by_user.items():
            await self.send_to(user_id, batch)
        return mine

    async def send_to(self, user_id: int, batch: list[Reply]) -> None:
        """Deliver to one user now, or keep the messages for when they next write."""
        with self.db.session() as s:
            user = s.get(User, user_id)
            if user is not None:
                s.expunge(user)
        if user is None:
            return
        sender = self.senders.get(user.channel)
        if sender is not None:
            try:
                await sender(user, batch)
                return
            except Blocked:
                log.info("user %s blocked the bot; keeping the message for when they write again", user_id)
            except Exception:
                log.warning(
                    "could not deliver to user %s on %s; keeping it", user_id, user.channel, exc_info=True
                )
        with self.db.session() as s:
            for reply in batch:
                q.keep_for_later(s, user_id, reply.to_payload(), self.clock.now())

    def forget_old_updates(self) -> int:
        """Drop dedupe keys older than two days (platforms redeliver for at most one)."""
        with self.db.session() as s:
            return q.forget_updates_before(s, self.clock.now() - timedelta(days=2))
