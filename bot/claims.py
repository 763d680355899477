"""Several workers share the durable inbox (PostgreSQL): each handles the chats' oldest stored updates
that no other worker holds.

    claims = Claims(db, workers, "telegram", handle, group_of=album_group, album_wait=0.8)
    claims.start()          # `places` tasks, each: claim a chat's oldest update, handle it, delete it
    claims.kick()           # an update was stored here: a free place looks at once
    await claims.stop()     # no new claims; those in hand are finished

Whichever worker stored an update (the balancer chose it), the first free place of any worker takes it
once it is the oldest of its chat. A worker holds the chats it takes with PostgreSQL advisory locks, all
on one connection of its own (`ChatLocks`; `storage.queries.lock_head`), so a claim costs no connection
while its update is handled in its unit (a transaction of its own, bot/dispatch.py) and its reply goes
out: a worker holds as many chats at once as it has places. At the end, the update's row goes, with
the standby rows of the replies sent meanwhile (`Outbox.settle` leaves them to it: `settled_into`), in
one statement on the locks connection, and only once it has committed is the chat's lock let go: its
next update becomes its oldest first, so each chat goes in order whoever handles it. Should that
statement fail, the replies' rows go the outbox's own way. A worker that dies lets its locks go with
its connection (at once: the server sees the socket close), and what it held is taken again. An
update found handled already (its key: when the claim is taken, or at the end of its unit,
`Redelivered`) is not handled again, and its chat is let go only `REPLY_GRACE` seconds later: the
worker that handled it may have lost its locks to a dropped connection and live on, still sending its
reply, which then still comes before the reply to the chat's next update. A free place that finds
nothing waits for a kick; one of them also looks every `poll` seconds, for updates stored by other
workers or left by a dead one.

An album arrives as one update per item: the place holding its first part waits `album_wait`, then
takes the parts that follow it in the chat (nobody else can: the first part is the chat's oldest and
its chat held), and hands them over together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Connection
from sqlmodel import Session

from bot.outbox import Settling, reply_source, settled_into
from bot.workers import Workers
from storage import queries as q
from storage.db import Database, reason
from storage.models import Received

log = logging.getLogger("schoolbot.claims")

Payloads = list[dict[str, Any]]
POLL_SECONDS = 1.0  # how often an idle worker looks for updates stored elsewhere or left by a dead one
ALBUM_SIZE = 10  # at most this many parts make one album (Telegram's limit)
REPLY_GRACE = 3.0  # seconds a chat is held after an update found handled by a worker that lost its claim
REPLY_OWED = 30.0  # and at most this long while that update's reply is still owed (bot/outbox.py standby)
OWED_LOOK = 0.25  # seconds between two looks at whether it still is


@dataclass(frozen=True)
class Hold:
    """A chat held by this worker: its lock, on the locks connection of that `generation`."""

    lock: int
    generation: int


class ChatLocks:
    """The chats a worker holds in the shared inbox of one channel: advisory locks on one connection of
    its own, in autocommit, used by one thread at a time. The connection is dropped at its first error
    (its locks go with it: none is left held by mistake) and made again when next needed."""

    def __init__(self, db: Database, channel: str) -> None:
        self.db = db
        self.channel = channel
        self.mutex = threading.Lock()
        self.conn: Connection | None = None
        self.session: Session | None = None
        self.generation = 0  # counts the connections made: a hold names the one its lock is on
        self.held: set[int] = set()  # the locks this worker's places hold, on whichever connection

    def take(self) -> tuple[Received, bool, Hold] | None:
        """On a worker thread: the oldest stored update of a chat nobody holds, its chat now held here,
        and whether it was handled already; None when there is none."""
        with self.mutex:
            s = self.open()
            try:
                while (found := q.lock_head(s, self.channel, self.held)) is not None:
                    head, handled, lock = found
                    if handled:  # a worker lost its hold, or let go as the read began: read again
                        again = q.chat_head(s, self.channel, head.chat)
                        if again is None:  # handled and gone
                            q.unlock_chat(s, lock)
                            continue
                        head, handled = again
                    s.expunge_all()
                    self.held.add(lock)
                    return head, handled, Hold(lock, self.generation)
                return None
            except BaseException:
                self.drop()
                raise

    def finish(self, hold: Hold, ids: list[int], settled: list[int], owner: str) -> None:
        """On a worker thread: the held chat's updates `ids` are handled. Their rows go, with the
        standby rows `settled` of the replies sent (one statement, committed: autocommit), and then the
        chat is let go, so that its next update can be taken only once these are gone. Should the
        statement fail, the connection is dropped (letting the chat go) and the error raised."""
        with self.mutex:
            self.held.discard(hold.lock)
            s = self.open()
            try:
                q.let_go(s, ids, settled, owner)
            except BaseException:
                self.drop()
                raise
            if hold.generation == self.generation:  # else its lock went with its connection
                self.unlock(hold)

    def unlock(self, hold: Hold) -> None:
        """The hold's lock goes; should its connection fail, it is dropped, which lets it go all the
        same. The mutex is held."""
        assert self.session is not None
        try:
            q.unlock_chat(self.session, hold.lock)
        except Exception as exc:
            log.warning(
                "the %s chat locks' connection failed (%s); its chats are let go", self.channel, reason(exc)
            )
            self.drop()

    def open(self) -> Session:
        """The locks connection, made when there is none."""
        if self.session is None:
            self.conn = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self.session = Session(bind=self.conn, expire_on_commit=False)
            self.generation += 1
        return self.session

    def drop(self) -> None:
        """Close the connection, and with it every lock it holds (a failed statement may have left one
        in doubt)."""
        conn, self.conn, self.session = self.conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()

    def close(self) -> None:
        """On stop: the connection goes, with whatever it still holds."""
        with self.mutex:
            self.drop()


@dataclass
class Claim:
    """Stored updates of one chat held by this worker (`hold`), the oldest first."""

    hold: Hold
    rows: list[Received]
    handled: bool = False  # handled already, by a worker that lost its hold before letting go
    settling: Settling = field(default_factory=Settling)  # the replies' standby rows sent meanwhile


_held: ContextVar[Claim | None] = ContextVar("schoolbot_claim", default=None)


def handled_elsewhere() -> None:
    """The update in hand (bot/dispatch.py) was found handled by another worker, which may still be
    sending its reply: its chat waits REPLY_GRACE before the next update is taken."""
    claim = _held.get()
    if claim is not None:
        claim.handled = True


def shared_inbox(
    db: Database,
    workers: Workers,
    channel: str,
    handle: Callable[[Payloads], Awaitable[None]],
    concurrent_chats: int,
    **options: Any,
) -> Claims | None:
    """A channel's places in the shared inbox on PostgreSQL (`concurrent_chats` of them); None on
    SQLite, where the one process handles what it stores, from memory."""
    if db.is_sqlite:
        return None
    return Claims(db, workers, channel, handle, places=concurrent_chats, **options)


class Claims:
    """This worker's places taking updates from the shared inbox of one channel."""

    def __init__(
        self,
        db: Database,
        workers: Workers,
        channel: str,
        handle: Callable[[Payloads], Awaitable[None]],
        *,
        places: int,
        poll: float = POLL_SECONDS,
        group_of: Callable[[dict[str, Any]], str | None] | None = None,
        album_wait: float = 0.0,
        reply_grace: float = REPLY_GRACE,
    ) -> None:
        self.db = db
        self.workers = workers
        self.channel = channel
        self.handle = handle
        self.places = places
        self.poll = poll
        self.group_of = group_of
        self.album_wait = album_wait
        self.reply_grace = reply_grace
        self.locks = ChatLocks(db, channel)
        self.stopping = False
        self.wake = asyncio.Semaphore(0)
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start taking updates (on the running event loop); the first place also polls."""
        self.stopping = False
        self.tasks = [
            asyncio.create_task(self.place(polls=index == 0), name=f"{self.channel}:claims:{index}")
            for index in range(self.places)
        ]
        self.kick()  # what is stored already (a restart, another worker's backlog)

    def kick(self) -> None:
        """Something may be waiting: one free place looks (it wakes the next if it found something)."""
        if self.wake.locked():
            self.wake.release()

    async def stop(self) -> None:
        """Take nothing new; finish the updates in hand (their rows deleted, committed)."""
        self.stopping = True
        for _ in self.tasks:
            self.wake.release()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        await self.workers.run(self.locks.close)

    async def place(self, polls: bool) -> None:
        """One place: claim, handle, let go; wait when there is nothing to take."""
        while not self.stopping:
            try:
                claim = await self.workers.run(self.take)
            except Exception as exc:  # the database is restarting: look again a moment later
                log.warning("could not look for stored %s updates (%s)", self.channel, reason(exc))
                await asyncio.sleep(self.poll)
                continue
            if claim is None:
                await self.idle(polls)
                continue
            self.kick()  # more may be waiting: another free place looks
            await self.work(claim)

    async def idle(self, polls: bool) -> None:
        """Wait for a kick (the polling place: at most `poll` seconds)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.acquire(), self.poll if polls else None)

    def take(self) -> Claim | None:
        """On a worker thread: the oldest update of a chat nobody holds, claimed; None when there is none."""
        found = self.locks.take()
        if found is None:
            return None
        head, handled, hold = found
        return Claim(hold, [head], handled=handled)

    def done(self, claim: Claim) -> None:
        """On a worker thread: the claim's updates are handled. Their rows go, and so do the standby
        rows of the replies sent (one statement where the outbox's batch was another transaction), and
        then the chat is let go, so that its next update is taken only once these are gone. Should the
        statement fail, the chat is let go all the same (its update, found handled, is dropped by
        whoever takes it again), and the error is raised."""
        owner = claim.settling.outbox.owner if claim.settling.outbox is not None else ""
        self.locks.finish(claim.hold, [r.id or 0 for r in claim.rows], claim.settling.ids, owner)

    async def work(self, claim: Claim) -> None:
        """Handle the claimed update (an album: with its parts), then delete its rows and commit."""
        held = _held.set(claim)
        try:
            group = self.group_of(claim.rows[0].payload) if self.group_of else None
            if group:
                await asyncio.sleep(self.album_wait)
                await self.workers.run(partial(self.gather, claim, group))
            if not claim.handled:
                with settled_into(claim.settling):  # the replies' rows go with the claim's commit
                    await self.handle([r.payload for r in claim.rows])
            if claim.handled:
                log.info("%s was handled already by a worker that lost hold of it", claim.rows[0].key)
                await self.reply_gone(claim.rows[0].key)  # its reply goes before the chat's next
        except Exception:
            log.exception("a stored %s update could not be handled", self.channel)
        finally:
            _held.reset(held)
            try:
                await self.workers.run(partial(self.done, claim))
            except Exception as exc:  # handled and marked: whoever claims it again drops it
                log.warning("could not let go of a handled %s update (%s)", self.channel, reason(exc))
                if claim.settling.outbox is not None:  # the replies went: their rows go the outbox's way
                    await claim.settling.outbox.settle(claim.settling.ids)

    async def reply_gone(self, key: str) -> None:
        """Hold the chat of an update another worker handled until its reply has gone: `reply_grace`
        seconds, and then while the reply is still owed (its rows on standby with that worker, which
        may live on and be sending it, or released to the sender when it died), at most REPLY_OWED."""
        await asyncio.sleep(self.reply_grace)
        deadline = time.monotonic() + REPLY_OWED - self.reply_grace
        while time.monotonic() < deadline:
            try:
                if not await self.workers.run(partial(self.owed, key)):
                    return
            except Exception as exc:  # the database is restarting: the grace was given
                log.warning("could not look for the reply to %s (%s)", key, reason(exc))
                return
            await asyncio.sleep(OWED_LOOK)

    def owed(self, key: str) -> bool:
        """On a worker thread: whether the reply to the stored update `key` is still to be sent."""
        with self.db.reading() as s:
            channel, _, update_id = key.partition(":")
            return q.reply_owed(s, reply_source(channel, update_id))

    def gather(self, claim: Claim, group: str) -> None:
        """On a worker thread: the album's parts stored after its first, in the chat's order."""
        assert self.group_of is not None
        with self.db.reading() as s:
            for row in q.next_in_chat(s, claim.rows[0], ALBUM_SIZE - 1):
                if self.group_of(row.payload) != group:
                    break
                claim.rows.append(row)
            s.expunge_all()  # the rows stay as read (the read's rollback would expire them)
