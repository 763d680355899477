"""Several workers share the durable inbox (PostgreSQL): each handles the chats' oldest stored updates
that no other worker holds.

    claims = Claims(db, workers, "telegram", handle, group_of=album_group, album_wait=0.8)
    claims.start()          # `places` tasks, each: claim a chat's oldest update, handle it, delete it
    claims.kick()           # an update was stored here: a free place looks at once
    await claims.stop()     # no new claims; those in hand are finished

Whichever worker stored an update (the balancer chose it), the first free place of any worker takes it
once it is the oldest of its chat. A worker holds the chats it takes with PostgreSQL advisory locks, all
on one connection of its own (`ChatLocks`; storage/queries/locks.py), so a claim costs no connection
while its update is handled in its unit (a transaction of its own, bot/dispatch.py) and its reply goes
out: a worker holds as many chats at once as it has places. At the end, the update's row goes, with
the standby rows of the replies sent meanwhile (`Outbox.settle` leaves them to it: `settled_into`), in
one statement on the locks connection, and only once it has committed is the chat's lock let go: its
next update becomes its oldest first, so each chat goes in order whoever handles it. The place then
takes its next chat in the same round trip (one plain query of prepared statements). Should that
statement fail, the replies' rows go the outbox's own way. A worker that dies lets its locks go with
its connection (at once: the server sees the socket close), and what it held is taken again. An
update found handled already (its key: when the claim is taken, or by its unit, which marks the key
in its first read) is not handled again, and its chat is let go only `REPLY_GRACE` seconds later: the
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
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from bot.outbox import Settling, reply_source, settled_into
from bot.workers import Workers
from storage import queries as q
from storage.db import Database, DriverConnection, reason
from storage.queries import locks
from storage.queries.locks import LockSQL, Stored

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
    its own (the driver's, in autocommit: storage/queries/locks.py), used by one thread at a time. The
    connection is dropped at its first error (its locks go with it: none is left held by mistake) and
    made again when next needed."""

    def __init__(self, db: Database, channel: str) -> None:
        self.db = db
        self.channel = channel
        self.sql = LockSQL(db.engine.dialect)
        # Its `generation` counts the connections made: a hold names the one its lock is on.
        self.link = DriverConnection(db, self.sql.setup)
        self.mutex = self.link.mutex
        self.held: set[int] = set()  # the locks this worker's places hold, on whichever connection

    def take(self) -> Taken | None:
        """On a worker thread: the oldest stored update of a chat nobody holds, its chat now held here,
        and whether it was handled already; None when there is none."""
        with self.mutex:
            conn, sql = self.open()
            try:
                return self.hold(locks.lock_head(conn, sql, self.channel, self.held))
            except BaseException:
                self.drop()
                raise

    def finish(
        self, hold: Hold, ids: list[int], settled: list[int], owner: str, take: bool = False
    ) -> Taken | None:
        """On a worker thread: the held chat's updates `ids` are handled. Their rows go, with the
        standby rows `settled` of the replies sent (committed), and then the chat is let go, so that
        its next update can be taken only once these are gone; given `take`, the next chat is taken
        in the same round trip (as `take`). Should that fail, the connection is dropped (letting the
        chat go) and the error raised."""
        with self.mutex:
            self.held.discard(hold.lock)
            conn, sql = self.open()
            unlock = (
                hold.lock if hold.generation == self.link.generation else None
            )  # else it went with its connection
            try:
                found = locks.let_go(
                    conn,
                    sql,
                    ids,
                    settled,
                    owner,
                    unlock=unlock,
                    take=(self.channel, self.held) if take else None,
                )
                return self.hold(found)
            except BaseException:
                self.drop()
                raise

    def hold(self, found: locks.Found | None) -> Taken | None:
        """The chat just taken, held here; one whose update reads as handled is read again first (a
        worker lost its hold, or let go as the read began), and let go when that update is gone. The
        mutex is held."""
        conn, sql = self.open()
        while found is not None:
            head, handled, lock, more = found
            if handled:
                again = locks.chat_head(conn, sql, self.channel, head.chat)
                if again is None:  # handled and gone
                    locks.unlock_chat(conn, sql, lock)
                    found = locks.lock_head(conn, sql, self.channel, self.held)
                    continue
                head, handled = again
            self.held.add(lock)
            return head, handled, Hold(lock, self.link.generation), more
        return None

    def open(self) -> tuple[Any, LockSQL]:
        """The locks connection, made when there is none, and its statements."""
        return self.link.open(), self.sql

    def drop(self) -> None:
        """Close the connection, and with it every lock it holds (a failed statement may have left one
        in doubt)."""
        self.link.drop()

    def close(self) -> None:
        """On stop: the locks are let go, then the connection goes. Said before closing, the server has
        let them go when this returns (a closed connection's go a moment later, when its backend ends):
        another worker's next look takes those chats."""
        with self.mutex:
            if self.link.conn is not None:
                with contextlib.suppress(Exception):  # a lost connection: its locks went with it
                    self.link.conn.execute("SELECT pg_advisory_unlock_all()")
            self.drop()


# A chat taken: its oldest update, whether handled already, its hold, whether another chat's update waits.
Taken = tuple[Stored, bool, Hold, bool]


@dataclass
class Claim:
    """Stored updates of one chat held by this worker (`hold`), the oldest first."""

    hold: Hold
    rows: list[Stored]
    handled: bool = False  # handled already, by a worker that lost its hold before letting go
    settling: Settling = field(default_factory=Settling)  # the replies' standby rows sent meanwhile
    more: bool = True  # another chat's update was waiting when this one was taken

    @staticmethod
    def of(taken: Taken | None) -> Claim | None:
        """The claim of a chat just taken (`ChatLocks.take`)."""
        if taken is None:
            return None
        head, handled, hold, more = taken
        return Claim(hold, [head], handled=handled, more=more)


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
        self.unreachable = False  # the last look failed (one line said so, for every place)
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
        """One place: claim, handle, let go (taking the next in the same round trip); wait when there is
        nothing to take, and wake another place only while another chat's update waits (at a steady
        rate a second place looked and found nothing, and the first looked again after its let-go had:
        three looks an update where one does)."""
        while not self.stopping:
            try:
                claim = await self.workers.run(self.take)
            except Exception as exc:  # the database is restarting: look again a moment later
                if not self.unreachable:  # one line for the fault, not one per place and look
                    log.warning("could not look for stored %s updates (%s)", self.channel, reason(exc))
                self.unreachable = True
                await asyncio.sleep(self.poll)
                continue
            if self.unreachable:
                self.unreachable = False
                log.info("stored %s updates can be read again", self.channel)
            while claim is not None:
                if claim.more:  # another chat's update waits: another free place looks
                    self.kick()
                claim = await self.work(claim)
            # Nothing found: by this look, or by the last let-go's, which looked in its round trip.
            await self.idle(polls)

    async def idle(self, polls: bool) -> None:
        """Wait for a kick (the polling place: at most `poll` seconds)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.acquire(), self.poll if polls else None)

    def take(self) -> Claim | None:
        """On a worker thread: the oldest update of a chat nobody holds, claimed; None when there is none."""
        return Claim.of(self.locks.take())

    def done(self, claim: Claim, take: bool) -> Claim | None:
        """On a worker thread: the claim's updates are handled. Their rows go, and so do the standby
        rows of the replies sent (one statement where the outbox's batch was another transaction), and
        then the chat is let go, so that its next update is taken only once these are gone; given
        `take`, the next update waiting is claimed in the same round trip. Should that fail, the chat
        is let go all the same (its update, found handled, is dropped by whoever takes it again), and
        the error is raised."""
        owner = claim.settling.outbox.owner if claim.settling.outbox is not None else ""
        ids = [r.id for r in claim.rows]
        return Claim.of(self.locks.finish(claim.hold, ids, claim.settling.ids, owner, take))

    async def work(self, claim: Claim) -> Claim | None:
        """Handle the claimed update (an album: with its parts), then delete its rows, commit and let its
        chat go; the next update claimed meanwhile (none when stopping)."""
        taking = False
        try:
            await self.handle_claimed(claim)
            taking = not self.stopping
        finally:
            following = await self.let_go(claim, taking)
        return following

    async def handle_claimed(self, claim: Claim) -> None:
        """The claimed update handled (a failure is logged: its key marks it handled all the same)."""
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

    async def let_go(self, claim: Claim, take: bool) -> Claim | None:
        """The claim's end (`done`) on a worker thread; should it fail, the replies' rows go the
        outbox's way and nothing is taken."""
        try:
            return await self.workers.run(partial(self.done, claim, take))
        except Exception as exc:  # handled and marked: whoever claims it again drops it
            log.warning("could not let go of a handled %s update (%s)", self.channel, reason(exc))
            if claim.settling.outbox is not None:  # the replies went: their rows go the outbox's way
                await claim.settling.outbox.settle(claim.settling.ids)
            self.kick()  # nothing was looked for: a free place looks (this one, when it idles)
            return None

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
            for row in q.next_in_chat(s, self.channel, claim.rows[0], ALBUM_SIZE - 1):
                if self.group_of(row.payload) != group:
                    break
                claim.rows.append(row)
            s.expunge_all()  # the rows stay as read (the read's rollback would expire them)
