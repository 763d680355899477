"""The dispatcher: the middleware chain around the router, and delivery to other users."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from sqlmodel import Session

from bot.claims import handled_elsewhere
from bot.logs import log_ids
from bot.metrics import Metrics
from bot.outbox import Outbox, reply_source
from bot.workers import Began, Workers
from handlers.calendar import Clock
from handlers.config import Settings
from handlers.i18n import Catalog
from handlers.router import Router
from handlers.types import Context, Fetcher, Incoming, Kind, Media, Reply, numbered
from storage import queries as q
from storage.db import SQLITE_UNIT_THREADS, Database, DriverConnection, reason, running_again
from storage.errors import FetchError, Redelivered, TooLarge
from storage.media import MediaStore
from storage.models import User
from storage.text import label_key

log = logging.getLogger("schoolbot.dispatch")

# Delivers replies to a user who is not the one writing; raises on failure. A channel that can edit
# its messages gives back the platform's id of the last one sent with buttons (else None).
Sender = Callable[[User, list[Reply]], Awaitable[str | None]]
# A `receive` call waiting to be stored: its channel, its updates, its answer (the new rows by key).
Arriving = tuple[str, list[q.Arrival], "asyncio.Future[dict[str, int]]"]
FETCH_TRIES = 3  # downloads of a file before the update is handled without it (kept by reference)


def prefetched(files: dict[str, bytes | Exception]) -> Fetcher:
    """The fetcher an update's handler gets: the files downloaded before its transaction began."""

    async def fetch(media: Media) -> bytes:
        found = files.get(media.file_id)
        if isinstance(found, bytes):
            return found
        raise found if found is not None else FetchError(f"{media.kind} was not downloaded")

    return fetch


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
    metrics: Metrics | None = None
    # Channels that send the writer's replies themselves and settle their standby rows (bot/run.py
    # `attached`): there the replies are outbox rows from the update's commit on (`stand_by`).
    standby: set[str] = field(default_factory=set)
    outbox: Outbox = field(init=False)

    def __post_init__(self) -> None:
        self.outbox = Outbox(self.db, self.clock, self.settings, self.senders, metrics=self.metrics)
        self.workers = Workers(SQLITE_UNIT_THREADS if self.db.is_sqlite else self.db.threads)
        self._arriving: list[Arriving] = []  # `receive` calls waiting for the store in hand to end
        self._in_hand: list[Arriving] = []  # those being stored now
        self._storing: asyncio.Task[None] | None = None
        # PostgreSQL: the durable inbox's INSERT prepared on a connection of its own (`store`).
        self.store_sql = None if self.db.is_sqlite else q.StoreSQL(self.db.engine.dialect)
        self.store_link = None if self.store_sql is None else DriverConnection(self.db, self.store_sql.setup)
        self.store_failed = False  # its last try failed (said once)

    def close(self) -> None:
        """Let the worker threads go (after the update in hand), the outbox's too."""
        self.workers.close()
        self.outbox.close()
        if self.store_link is not None:
            with self.store_link.mutex:
                self.store_link.drop()

    async def handle(
        self, msg: Incoming, received: Sequence[int] = (), began: Began | None = None
    ) -> list[Reply]:
        """Everything the writer should see now, in order. Never raises.

        The update's files are downloaded first (on the event loop); then everything the update
        does in the database, handler included, is one transaction on a worker thread (`unit`).
        `received`: the update's rows in the durable inbox, deleted in that same transaction.
        `began`: marked when the update's own work begins (its downloads, or its unit once it has a
        thread and the database), for the channel's typing indicator.
        """
        with log_ids(update=msg.update_id, chat=msg.chat_id):
            return await self.handled(msg, received, began)

    async def handled(
        self, msg: Incoming, received: Sequence[int], began: Began | None = None
    ) -> list[Reply]:
        """`handle` within the update's log ids."""
        started = time.perf_counter()
        t = self.catalog.translator(msg.language or self.settings.locale, msg.channel)
        try:
            done = await self.transact(msg, received, began)
            if done is None:
                log.info("dropped redelivered update %s", msg.update_id)
                handled_elsewhere()
                return []
            replies, queued = done
            if self.metrics is not None:
                self.metrics.handled(msg.channel, time.perf_counter() - started)
            await self.outbox.deliver_now(queued)  # what the update told others, in its transaction
            return replies
        except Redelivered:  # another worker handled it meanwhile: this one's work was undone
            log.info("update %s was handled meanwhile by another worker; dropped here", msg.update_id)
            handled_elsewhere()
            return []
        except Exception:
            log.exception("update %s from %s:%s failed", msg.update_id, msg.channel, msg.user_id)
            with contextlib.suppress(Exception):  # a failed update is not taken again after a restart
                await self.workers.run(partial(self.close_failed, msg, received))
            return [Reply(t("error.generic"))]
        finally:
            log.debug("update %s took %.1f ms", msg.update_id, (time.perf_counter() - started) * 1000)

    async def transact(
        self, msg: Incoming, received: Sequence[int] = (), began: Began | None = None
    ) -> tuple[list[Reply], list[int]] | None:
        """The update handled and committed, nothing sent yet: the writer's replies and the outbox rows
        to deliver (None: handled before). Its files are downloaded first, on this event loop."""
        began = began or Began()
        if msg.media:
            began.mark()  # a download is the update's own work
        files = await self.prefetch(msg)
        unit = partial(self.db.in_unit, partial(self.unit, msg, files, received, began))
        return await self.workers.run(unit)  # the log ids go along (Workers.run copies the context)

    async def receive(self, channel: str, arrivals: Sequence[q.Arrival]) -> dict[str, int]:
        """Updates stored in the durable inbox as they came (off the event loop); the new rows by key.

        Calls that come while a store is being written (webhook POSTs, one update each, arriving side by
        side) wait for it and are then stored together, in one transaction: at the peak a POST no
        longer costs a transaction of its own queued behind the units on SQLite's one writer. Each call
        returns once its own updates are committed (before the platform hears they arrived)."""
        done: asyncio.Future[dict[str, int]] = asyncio.get_running_loop().create_future()
        self._arriving.append((channel, list(arrivals), done))
        if self._storing is None or self._storing.done():
            self._storing = asyncio.ensure_future(self.store_arriving())
        return await done  # a caller gone (a dropped POST) cancels only its own answer, not the store

    async def store_arriving(self) -> None:
        """Store what `receive` gathered, a transaction at a time, until nothing more has come."""
        while self._arriving:
            batch, self._arriving = self._arriving, []
            self._in_hand = batch
            try:
                stored = await self.workers.run(partial(self.store, batch))
            except Exception as exc:
                for *_, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (*_, done), rows in zip(batch, stored, strict=True):
                if not done.done():
                    done.set_result(rows)
        self._in_hand = []

    def store(self, batch: list[Arriving]) -> list[dict[str, int]]:
        """On a worker thread: one INSERT a channel, in one transaction; each call gets the new rows of
        its own updates (a key two calls brought, a redelivery, is the first one's).

        On PostgreSQL it runs prepared on the dispatcher's own connection (`q.store_prepared`: one
        round trip). Should that fail, the connection is dropped and the batch stored as a unit, which
        runs again when PostgreSQL dropped its connection (a restart) rather than fail; a batch whose
        first try did commit then finds its keys stored and adds nothing."""
        groups: dict[str, list[q.Arrival]] = {}
        for channel, arrivals, _ in batch:
            groups.setdefault(channel, []).extend(arrivals)
        now = self.clock.now()
        rows: dict[str, int] | None = None
        if self.store_link is not None and self.store_sql is not None:
            with self.store_link.mutex:
                try:
                    rows = q.store_prepared(self.store_link.open(), self.store_sql, list(groups.items()), now)
                    if self.store_failed:
                        log.info("updates are stored on their own connection again")
                    self.store_failed = False
                except Exception as exc:
                    self.store_link.drop()
                    if not self.store_failed:  # one line for the fault, not one a batch while it lasts
                        log.warning(
                            "storing updates as a unit while their connection fails (%s)", reason(exc)
                        )
                    self.store_failed = True
        if rows is None:

            def unit(s: Session) -> dict[str, int]:
                found: dict[str, int] = {}
                for channel, arrivals in groups.items():
                    found |= q.store_received(s, channel, arrivals, now)
                return found

            rows = self.db.in_unit(unit)
        return [{a.key: rows.pop(a.key) for a in arrivals if a.key in rows} for _, arrivals, _ in batch]

    async def waiting(self, channel: str) -> list[tuple[int, dict[str, Any]]]:
        """The channel's stored updates not handled yet, oldest first: (row, the platform's update)."""

        def read() -> list[tuple[int, dict[str, Any]]]:
            with self.db.session() as s:
                return [(r.id or 0, r.payload) for r in q.waiting(s, channel)]

        return await self.workers.run(read)

    async def forget(self, rows: Sequence[int]) -> None:
        """Stored updates that needed no handling (a membership change, an update with no message)."""
        if not rows:
            return

        def drop() -> None:
            with self.db.session() as s:
                q.forget_received(s, rows)

        await self.workers.run(drop)

    def unit(
        self,
        msg: Incoming,
        files: dict[str, bytes | Exception],
        received: Sequence[int],
        began: Began,
        s: Session,
    ) -> tuple[list[Reply], list[int]] | None:
        """On a worker thread, in the update's one transaction: dedupe, user, kept messages, route,
        messages to others, the numbers shown. None when the update was handled before.

        On SQLite reads come first and writes as late as they can (SQLite takes its write lock at the
        first write), and the update is marked handled last. On PostgreSQL the mark goes with the first
        read (one round trip fewer): a second worker handling the same update at once waits there for
        this unit's end and then finds it handled.
        """
        began.mark()
        now = self.clock.now()
        key = f"{msg.channel}:{msg.update_id}" if msg.update_id else ""
        # One read: writer, dedupe, kept messages; on PostgreSQL the key marked handled in it too.
        found = q.writer_of(s, msg.channel, msg.user_id, key, mark=now)
        if key and found.seen:
            q.forget_received(s, received)
            return self.still_held(s, msg)
        user = q.touch_user(
            s, msg.channel, msg.user_id, msg.chat_id, msg.display_name, now, msg.language, found=found
        )
        kept = [Reply.from_payload(p) for p in q.take_kept(s, user.id or 0, now)] if found.kept else []
        s.flush()
        s.expunge(user)
        ctx = self.context(msg, user, fetch=prefetched(files))
        replies = self.workers.loop_run(self.router.route(self.resolve_number(msg, user), ctx))
        mine, others = self.deliver_others(user, replies, source=self.source_of(msg))
        self.remember_menu(user, kept + mine, msg.channel)
        shown = self.stand_by(s, msg, user, kept + mine)
        q.forget_received(s, received)
        if key and not found.marked and not q.first_time_seen(s, key, now):
            raise Redelivered(key)  # handled meanwhile elsewhere: undo all of this one
        return shown, ctx.queued + others

    def stand_by(self, s: Session, msg: Incoming, user: User, replies: list[Reply]) -> list[Reply]:
        """The writer's replies written as outbox rows on standby in the update's own transaction (one
        INSERT), on a channel that sends them itself and then settles them (`standby`): a crash between
        the commit and the send loses no reply, the sender delivers it after the restart (at worst
        twice: sent, then killed before its row was settled). Elsewhere (the console) as they are."""
        if msg.channel not in self.standby or not msg.update_id or not replies:
            return replies
        return self.outbox.stand_by(s, user, reply_source(msg.channel, msg.update_id), replies)

    def still_held(self, s: Session, msg: Incoming) -> tuple[list[Reply], list[int]] | None:
        """An update found handled: None, unless this is its unit run again (`running_again`: its first
        run's COMMIT went through but the answer was lost with the connection) and this process still
        holds its replies on standby: then those replies, to send now, in their place in the chat.
        Found handled otherwise (a second claim of an update still in hand here), its replies are being
        sent by the first handling, and are not taken."""
        if msg.channel not in self.standby or not running_again():  # elsewhere they are being sent
            return None
        rows = q.held_replies(s, reply_source(msg.channel, msg.update_id), self.outbox.owner)
        if not rows:
            return None
        return [replace(Reply.from_payload(r.payload), standby=r.id or 0) for r in rows], []

    def close_failed(self, msg: Incoming, received: Sequence[int]) -> None:
        """An update whose handling failed is marked handled and leaves the inbox (it is not retried)."""
        with self.db.session() as s:
            if msg.update_id:
                q.first_time_seen(s, f"{msg.channel}:{msg.update_id}", self.clock.now())
            q.forget_received(s, received)

    async def prefetch(self, msg: Incoming) -> dict[str, bytes | Exception]:
        """The files of a media message, downloaded before the update's transaction (which must not
        wait on the network): each one's bytes, or the error its download met after a few tries.
        The handler's `ctx.fetch` then answers from these at once."""
        fetch = self.fetchers.get(msg.channel)
        files: dict[str, bytes | Exception] = {}
        if fetch is None or not msg.media:
            return files
        for media in msg.media:
            for _ in range(FETCH_TRIES):  # at once: a retry later is the download chore's (scheduler)
                try:
                    files[media.file_id] = await fetch(media)
                    break
                except TooLarge as exc:
                    files[media.file_id] = exc
                    break
                except FetchError as exc:
                    files[media.file_id] = exc
            failed = files.get(media.file_id)
            if isinstance(failed, FetchError) and not isinstance(failed, TooLarge) and self.metrics:
                self.metrics.download_failed(msg.channel)
        return files

    def context(self, msg: Incoming, user: User, fetch: Fetcher | None = None) -> Context:
        """What the handlers of one update may touch (`fetch`: its files, downloaded already)."""
        t = self.catalog.translator(user.locale or msg.language or self.settings.locale, msg.channel)
        return Context(
            self.db,
            self.clock,
            t,
            self.settings,
            user,
            msg.channel,
            self.catalog,
            fetch=fetch or self.fetchers.get(msg.channel),
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
        menu = {"numbers": numbered(replies), "labels": labels}
        if menu == user.menu:
            return  # the same choices as last time: nothing to write
        with self.db.session() as s:
            q.set_menu(s, user.id or 0, menu)

    def deliver_others(
        self, writer: User, replies: list[Reply], source: str = ""
    ) -> tuple[list[Reply], list[int]]:
        """Replies meant for other users become rows on the outbox's priority lane; the writer's own
        replies, and the rows to deliver once the update's transaction is committed.

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
        if not by_user:
            return mine, []
        return mine, self.outbox.enqueue_direct(source or f"local:{secrets.token_hex(8)}", by_user)

    @staticmethod
    def source_of(msg: Incoming) -> str:
        """The update that caused a message to others (part of its outbox key)."""
        return f"{msg.channel}:{msg.update_id}" if msg.update_id else f"local:{secrets.token_hex(8)}"
