"""The outbox: rate-limited, retrying, crash-safe delivery of reminders, escalations and alerts.

Every message to someone other than the writer is a row first (`storage.models.Outbox`). One sender per
deployment (it holds the "sender" lease) claims due rows with a lease, paces them per channel (a token
bucket overall, a gap per chat), sends them through the channel's `Sender`, and writes each outcome in
the row. The janitor puts claims whose lease ran out (a dead sender) back in the queue, so nothing is
lost; a duplicate is possible only for a send that was in flight when its sender died.

After a crash nobody waits long: the sender lease is short (outbox.sender_lease_seconds, renewed three
times as often), and a holder on this machine whose process is gone (`storage.holders`) loses its
lease and its claims at once. An alert goes out at once whether or not this process holds the lease:
the holder here is woken, and a process that does not hold it claims and sends the alert itself,
beside its loop: the update that wrote the alert is answered meanwhile.

    outbox = Outbox(db, clock, settings, senders)
    sender = outbox.start_sender()      # in the running bot
    ids = outbox.enqueue_direct(...)     # a message to another user: a row on the priority lane
    await outbox.deliver_now(ids)        # wakes the sender holding the lease here, or sends them at once
    await outbox.stop_sender()

Handlers write an alert in the transaction of the change it reports (`handlers.notify.tell`), and the
dispatcher then calls `deliver_now` with those rows; sweeps write reminders and escalations.

The writer's own replies are rows too, on standby (`stand_by`), written in their update's transaction
so that a crash between its commit and the send loses none:

    replies = outbox.stand_by(s, user, "reply:telegram:42", replies)   # in the unit: one INSERT
    await outbox.settle([r.standby for r in sent])    # the channel sent them: the rows go (batched)
    await outbox.hand_over(channel, user_id, update_id, rest)    # could not go: the sender takes them

A standby row belongs to the live process that wrote it (`Outbox.owner`, renewed with the sender's
lease), which sends it itself: the sender never claims it. If that process dies first, the sender
holding the lease releases its rows within seconds (`rescue`: the process is seen gone on this
machine, or its rows' lease ran out elsewhere) and sends them. A reply may therefore go twice, never
none: sent, then the process killed before its row was settled.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.logs import log_ids
from bot.metrics import Metrics
from bot.workers import Workers
from handlers.calendar import Calendar, Clock
from handlers.config import Settings
from handlers.reminders import PRIORITY_ALERT
from handlers.types import Reply
from storage import holders
from storage import queries as q
from storage.db import Database, reason, transient
from storage.errors import Blocked, Gone, Rejected, RetryAfter, TimedOut
from storage.models import Outbox as Row
from storage.models import User

if TYPE_CHECKING:
    from sqlmodel import Session

log = logging.getLogger("schoolbot.outbox")

# Delivers replies to a user who is not the one writing; raises storage.errors.RetryAfter, Blocked or
# another ChannelError. A channel that can edit what it sent gives back the platform's id of the last
# message sent with buttons, kept in the row (`Outbox.ref`) for a later edit. (As bot.dispatch.Sender.)
Sender = Callable[[User, list[Reply]], Awaitable[str | None]]

UNMETERED = frozenset({"console"})  # printing or keeping for later needs no rate limit
SENDER_LEASE = "sender"
DIRECT = "direct"  # the kind of a message to another user caused by an update (an incident alert)
REPLY = "reply"  # the kind of a reply to the writer (on standby while the channel sends it itself)
CLAIM_GAP = 0.1  # seconds: after a claim that found nothing, the next waits this long (pokes coalesce)
RESCUE_SECONDS = 2.0  # how often the sender holding the lease looks for standby rows of dead processes
AIMD_STEP_SECONDS = 10.0  # after a 429 the rate halves, then climbs back one message/s this often


class Outcome(StrEnum):
    """What became of one attempt."""

    SENT = "sent"
    RETRY_AFTER = "retry_after"  # 429: pause everything, try the row again unchanged
    BLOCKED = "blocked"  # 403: the user blocked the bot; never again
    GONE = "gone"  # 400 chat not found: the chat no longer exists
    BAD = "bad"  # another 400: this message can never be sent
    TRANSIENT = "transient"  # network, 5xx: back off and retry
    AMBIGUOUS = "ambiguous"  # timed out: it may have arrived; resend (a duplicate beats a loss)
    SKIPPED = "skipped"  # no sender for the channel here: left in the queue


def classify(exc: BaseException) -> Outcome:
    """Sort a sender's exception into what the outbox does next (delivery.md §3.2, rule 6).

    Channels raise the typed errors of storage.errors (translated from their platform's at the edge);
    anything else is taken as transient.
    """
    if isinstance(exc, RetryAfter):
        return Outcome.RETRY_AFTER
    if isinstance(exc, Blocked):
        return Outcome.BLOCKED
    if isinstance(exc, TimedOut):
        return Outcome.AMBIGUOUS
    if isinstance(exc, Gone):
        return Outcome.GONE
    if isinstance(exc, Rejected):
        return Outcome.BAD
    return Outcome.TRANSIENT


# ---- pacing ----------------------------------------------------------------------------------


class Pace:
    """One bot's limits: a token bucket overall (rate, small burst), a gap per chat, and pauses.

    A chat is free again `per_chat` seconds after its last send *finished*, so two messages to one
    chat never reach the platform closer than that, whatever the network does in between. The same
    holds overall: a send counts against the platform's window (`window`, by default the per-chat
    gap: Telegram counts both limits per second) from its start until `window` seconds after it
    finished, and at most rate x window + burst count at once. The token bucket alone would let sends
    held up on the way (a stalled server, a loaded machine) reach the platform together with the
    next ones, up to `concurrency` over that.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        per_chat: float,
        now: Callable[[], float] = time.monotonic,
        window: float | None = None,
    ) -> None:
        self.configured = rate
        self.rate = rate
        self.burst = float(burst)
        self.per_chat = per_chat
        self.now = now
        self.tokens = float(burst)
        self.stamp = now()
        self.chat_free: dict[str, float] = {}
        self.busy: set[str] = set()
        self.window = per_chat if window is None else window
        self.finished: collections.deque[float] = collections.deque()  # within the last window
        self.paused_until = 0.0
        self.slowed_at = 0.0

    def _refill(self, t: float) -> None:
        if self.rate < self.configured and t - self.slowed_at >= AIMD_STEP_SECONDS:
            self.rate = min(self.configured, self.rate + 1.0)  # additive increase
            self.slowed_at = t
        self.tokens = min(self.burst, self.tokens + (t - self.stamp) * self.rate)
        self.stamp = t

    def wait(self) -> float:
        """Seconds until the next send may start (0: now)."""
        t = self.now()
        self._refill(t)
        token = 0.0 if self.tokens >= 1 - 1e-9 else (1 - self.tokens) / self.rate
        return max(token, self.paused_until - t, self.window_wait(t), 0.0)

    def window_wait(self, t: float) -> float:
        """Seconds until one more send fits the window: those in flight or finished within it stay under the cap."""
        if self.window <= 0:
            return 0.0
        while self.finished and self.finished[0] <= t - self.window:
            self.finished.popleft()
        over = len(self.busy) + len(self.finished) - max(1, int(self.rate * self.window + self.burst))
        if over < 0:
            return 0.0
        if over >= len(self.finished):
            return float("inf")  # every counted send is still in flight: wait for one to finish
        return self.finished[over] + self.window - t

    def chat_wait(self, chat: str) -> float:
        """Seconds until `chat` may get its next message (inf while one is in flight)."""
        if chat in self.busy:
            return float("inf")
        return max(self.chat_free.get(chat, 0.0) - self.now(), 0.0)

    def take(self, chat: str) -> None:
        """Spend a token on a send to `chat`, which is busy until `done`."""
        self._refill(self.now())
        self.tokens -= 1
        self.busy.add(chat)

    def done(self, chat: str) -> None:
        """A send to `chat` finished (however it went)."""
        t = self.now()
        self.busy.discard(chat)
        self.chat_free[chat] = t + self.per_chat
        if self.window > 0:
            self.finished.append(t)
        if len(self.chat_free) > 10_000:  # forget chats that are long free
            self.chat_free = {c: f for c, f in self.chat_free.items() if f > t}

    def spend(self) -> None:
        """A reply to someone writing went out on this bot: it takes its token first, and the outbox
        waits for the next one (never more than one second's worth behind: a long chat cannot starve
        the wave for longer than that once it ends). It counts against the platform's window too."""
        t = self.now()
        self._refill(t)
        self.tokens = max(self.tokens - 1, -self.rate)
        if self.window > 0:
            self.finished.append(t)

    def touch(self, chat: str) -> None:
        """The bot just answered `chat` itself (an interactive reply): the chat's gap starts again."""
        self.chat_free[chat] = max(self.chat_free.get(chat, 0.0), self.now() + self.per_chat)

    def pause(self, seconds: float, slow_down: bool = False) -> None:
        """Send nothing for `seconds`; after a 429 also halve the rate for a while."""
        t = self.now()
        self.paused_until = max(self.paused_until, t + seconds)
        self.tokens = min(self.tokens, 0.0)
        if slow_down:
            self.rate = max(1.0, self.rate / 2)  # multiplicative decrease
            self.slowed_at = t


class Unmetered(Pace):
    """No limits (the console)."""

    def __init__(self) -> None:
        super().__init__(rate=1e9, burst=10**9, per_chat=0.0)

    def wait(self) -> float:
        """Never waits."""
        return 0.0

    def chat_wait(self, chat: str) -> float:
        """Never waits."""
        return 0.0


# ---- the outbox --------------------------------------------------------------------------------


class Stats(collections.Counter[str]):
    """Counters since start, for logs, tests and the benchmark, read as `stats.sent`: each attempt's
    `Outcome` by its name (sent, retry_after, blocked, gone, bad, transient, ambiguous), and the rows
    that died (`dead`: gone, bad or out of attempts) and claims taken back (`reclaimed`); the writers'
    replies on standby settled once sent (`settled`, in `settle_batches` transactions) and those of dead
    processes released (`rescued`)."""

    def __getattr__(self, name: str) -> int:
        if name.startswith("_"):  # copy, pickle and friends look for dunders: not counters
            raise AttributeError(name)
        return self[name]


class Faults:
    """One log line per fault of a platform, however many calls it fails: the first failure on a
    channel opens the fault with a warning saying what failed and what becomes of the messages; the
    failures while it lasts are only counted (debug); the first call that goes through again closes it
    with one line more. The channels' replies and the outbox's sends report here (`Outbox.faults`)."""

    def __init__(self) -> None:
        self.failing: dict[str, int] = {}  # channel -> calls failed since the fault began

    def failed(self, channel: str, what: str, then: str = "") -> None:
        """A call to `channel` failed (`what`: already without the token); `then`: what becomes of the
        work meanwhile (default: the messages wait in the outbox)."""
        if channel in self.failing:
            self.failing[channel] += 1
            log.debug("%s still failing: %s", channel, what)
            return
        self.failing[channel] = 1
        then = then or f"what cannot go waits in the outbox and goes when {channel} answers again"
        log.warning("%s is failing (%s); %s", channel, what, then)

    def ok(self, channel: str) -> None:
        """A call to `channel` went through: an open fault is over."""
        if channel in self.failing:
            log.info("%s answers again (%d call(s) had failed)", channel, self.failing.pop(channel))


@dataclass
class Settling:
    """The standby rows an update's replies settled while its claim on the shared inbox was held
    (bot/claims.py, PostgreSQL): deleted in the claim's own transaction, which commits before the chat's
    next update can be taken, rather than in a batch of their own (`Outbox.settle`)."""

    ids: list[int] = field(default_factory=list)
    outbox: Outbox | None = None  # whose rows they are (its `owner`); None while there are none
    open: bool = False  # rows are taken (`settled_into`); a task started meanwhile settles later its own way


_settling: ContextVar[Settling | None] = ContextVar("schoolbot_settling", default=None)


@contextlib.contextmanager
def settled_into(settling: Settling) -> Iterator[None]:
    """While open, `Outbox.settle` puts the rows into `settling` for its holder to delete and commit."""
    token = _settling.set(settling)
    settling.open = True
    try:
        yield
    finally:
        settling.open = False
        _settling.reset(token)


def reply_source(channel: str, update_id: str) -> str:
    """The key of the replies to one update's writer, as their outbox rows hold it (`period`)."""
    return f"reply:{channel}:{update_id}"[:100]


def lane_rows(
    user: User, kind: str, source: str, replies: list[Reply], now: datetime
) -> list[dict[str, Any]]:
    """One update's messages to `user` as rows on the priority lane, sent even in quiet hours, keyed by
    the update (`source`) and each one's place, so a redelivered update adds nothing."""
    return [
        q.pending_row(
            user,
            kind,
            source[:100],
            str(index),
            reply.to_payload(),
            now,
            school_id=None,
            priority=PRIORITY_ALERT,
            quiet=False,
        )
        for index, reply in enumerate(replies)
    ]


class Outbox:
    """The outbox as the app sees it: enqueue, deliver now or wake the sender, run the sender."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        settings: Settings,
        senders: dict[str, Sender],
        *,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.clock = clock
        self.settings = settings
        self.config = settings.outbox
        self.senders = senders
        self.monotonic = monotonic
        self.calendar = Calendar(clock, settings.schedule)
        self.paces: dict[str, Pace] = {}
        self.stats = Stats()
        self.faults = Faults()
        self.sender: OutboxSender | None = None
        self.failures = 0  # consecutive transient failures: the whole sender backs off
        # The sender's database work (claims, leases, outcomes) runs on one thread of its own: the
        # event loop, which carries every chat's replies, never waits on SQLite's lock or a PostgreSQL
        # round trip for it, and the outbox's writes keep their order (one at a time, as on the loop).
        self.db_thread = Workers(1, "schoolbot-outbox")
        # This process, as the holder of the writers' replies on standby (`stand_by`).
        self.owner = holders.new_owner()
        self._to_settle: list[int] = []  # standby rows whose replies went, for the next batch
        self._unsettled: list[int] = []  # a batch that could not be written: tried again with the next
        self._batch: asyncio.Future[None] | None = None  # done when the rows in `_to_settle` are settled
        self._settler: asyncio.Task[None] | None = None
        self.stood_by = False  # whether this process wrote any (else `hand_back` has nothing to do)

    def close(self) -> None:
        """Hand back this process's standby rows (`hand_back`), then let the outbox's database thread go."""
        try:
            self.hand_back()
        except Exception as exc:  # their lease runs out instead, and another process sends them
            log.warning("could not hand back the replies on standby: %s", reason(exc))
        self.db_thread.close()

    def pace(self, channel: str) -> Pace:
        """The limits of one channel's bot (created on first use)."""
        if channel not in self.paces:
            c = self.config
            self.paces[channel] = (
                Unmetered()
                if channel in UNMETERED
                else Pace(c.rate, c.burst, c.per_chat_seconds, now=self.monotonic)
            )
        return self.paces[channel]

    # ---- enqueueing ------------------------------------------------------------------------

    def enqueue_direct(self, source: str, by_user: dict[int, list[Reply]], kind: str = DIRECT) -> list[int]:
        """Messages for other users caused by one update (`source`): rows on the priority lane.

        Their key holds the update, so a redelivered update creates nothing new. `kind`: REPLY for
        the writer's own replies that could not go at once (`take_over`).
        """
        now = self.clock.now()
        with self.db.session() as s:
            users = {u.id: u for u in (s.get(User, uid) for uid in by_user) if u is not None}
            rows = [
                row
                for uid, replies in by_user.items()
                if uid in users
                for row in lane_rows(users[uid], kind, source, replies, now)
            ]
            q.enqueue(s, rows)
            keys = {(r["user_id"], r["step"]) for r in rows}
            found = [
                q.outbox_row(s, users[uid].channel, uid, kind, source[:100], step)
                for uid, step in sorted(keys)
            ]
        return [r.id for r in found if r is not None and r.id is not None]

    def poke(self, priority: bool = False) -> None:
        """Something new is waiting: wake the sender running here, if any (`priority`: claim alerts now)."""
        if self.sender is not None:
            self.sender.poke(priority)

    def take_over(
        self, channel: str, external_id: str, update_id: str, replies: list[Reply], blocked: str = ""
    ) -> list[int]:
        """Replies to the writer that could not go at once (a 429 that outlasted the wait, a failing
        platform): rows on the priority lane, so the sender delivers them later or records why it
        cannot. `blocked` (why, without the token): the chat blocked the bot, so the rows are recorded
        as blocked at once, with every other message waiting for them, and kept for when they write
        again; one line in the log. The update is in the rows' key, so a redelivered update adds
        nothing. [] (and an error in the log) when the writer has no account to hold them."""
        source = reply_source(channel, update_id or secrets.token_hex(8))
        with self.db.session() as s:
            user = q.get_user(s, channel, external_id)
            user_id = user.id if user is not None else None
        if user_id is None:
            log.error("a reply to %s user %s is lost: they have no account", channel, external_id)
            return []
        ids = self.enqueue_direct(source, {user_id: replies}, kind=REPLY)
        if blocked:
            with self.db.session() as s:
                stopped = self.unreachable(s, user_id, "blocked", blocked)
            self.log_blocked(channel, external_id, user_id, stopped)
            return ids
        self.poke(priority=True)
        return ids

    @staticmethod
    def log_blocked(channel: str, external_id: str, user_id: int, stopped: int) -> None:
        """The one line for a writer found to have blocked the bot."""
        log.info(
            "%s user %s (#%s) blocked the bot: %d waiting message(s) stopped, the alerts and replies "
            "among them kept for when they write again",
            channel,
            external_id,
            user_id,
            stopped,
        )

    def unreachable(self, s: Session, user_id: int, status: str, error: str) -> int:
        """A recipient who cannot be reached (blocked the bot, chat gone): marked, every message still
        waiting for them stopped with `status` and the reason, the alerts and replies among them kept
        for when they write again (quiet ones, reminders, are not worth it by then). How many stopped."""
        now = self.clock.now()
        q.mark_blocked(s, user_id)
        for payload in q.waiting_alerts(s, user_id):
            q.keep_for_later(s, user_id, payload, now)
        return q.stop_sending_to(s, user_id, status, now, f"recipient unreachable: {error}")

    # ---- the writer's replies, on standby while the channel sends them itself -----------------

    def stand_by(self, s: Session, user: User, source: str, replies: list[Reply]) -> list[Reply]:
        """In the update's own transaction (`s`): the writer's replies as rows on the reply lane, on
        standby for this process (one INSERT), keyed by the update (`source`, as `take_over`'s). The
        replies come back carrying their rows (`Reply.standby`) for the channel to settle or hand over.

        The sender never claims a standby row while this process lives (it renews them with its
        lease); should it die before settling them, they are released to the sender (`rescue`).
        """
        now = self.clock.now()
        until = now + timedelta(seconds=self.config.sender_lease_seconds)
        held = {"status": q.STANDBY, "lease_owner": self.owner, "lease_until": until}
        rows = [row | held for row in lane_rows(user, REPLY, source, replies, now)]
        made = q.stand_by(s, rows)
        self.stood_by = True
        return [replace(reply, standby=made.get(str(index), 0)) for index, reply in enumerate(replies)]

    async def settle(self, ids: list[int]) -> None:
        """Standby rows whose replies the channel sent (or dropped): deleted, in batches on the outbox's
        thread. Callers meanwhile join the next batch, so the replies of many chats are one short
        transaction; returns once the caller's rows are settled (or their batch failed: one line in the
        log, and they go with the next batch). An update taken from the shared inbox (`settled_into`)
        leaves them to its claim, whose commit deletes them with the update's row."""
        ids = [i for i in ids if i]
        if not ids:
            return
        held = _settling.get()
        if held is not None and held.open and held.outbox in (None, self):  # the claim's commit deletes them
            held.outbox = self
            held.ids.extend(ids)
            return
        loop = asyncio.get_running_loop()
        self._to_settle.extend(ids)
        if self._batch is None:
            self._batch = loop.create_future()
        batch = self._batch
        if self._settler is None or self._settler.done():
            self._settler = loop.create_task(self.settle_batches(), name="outbox-settle")
        await asyncio.shield(batch)

    async def settle_batches(self) -> None:
        """Write the batches of settled rows, one at a time, until none is waiting."""
        while self._to_settle:
            ids = self._unsettled + self._to_settle
            self._to_settle, self._unsettled = [], []
            batch, self._batch = self._batch, None
            try:
                await self.db_thread.run(partial(self.settle_now, ids))
            except Exception as exc:
                self._unsettled = ids
                log.warning(
                    "could not settle %d sent replies' rows (%s); trying again", len(ids), reason(exc)
                )
            finally:
                if batch is not None and not batch.done():
                    batch.set_result(None)

    def settle_now(self, ids: list[int]) -> int:
        """`settle`'s one transaction."""
        with self.db.session() as s:
            settled = q.settle_standby(s, ids, self.owner)
        self.stats["settled"] += settled
        self.stats["settle_batches"] += 1
        return settled

    async def hand_over(
        self, channel: str, external_id: str, update_id: str, replies: list[Reply], blocked: str = ""
    ) -> None:
        """Replies to the writer that could not go at once (a 429 past the wait, a failing platform, a
        chat that blocked the bot): their standby rows are released to the sender at once (`blocked`:
        recorded as blocked and kept for when they write again, as `take_over` does). A reply without
        a row (the apology for a failed update) becomes one through `take_over`."""
        held = [r.standby for r in replies if r.standby]
        loose = [r for r in replies if not r.standby]
        if held:
            await self.db_thread.run(partial(self.release_standby, channel, external_id, held, blocked))
            if not blocked:
                self.poke(priority=True)
        if loose:
            self.take_over(channel, external_id, update_id, loose, blocked)

    def release_standby(self, channel: str, external_id: str, ids: list[int], blocked: str) -> None:
        """`hand_over`'s transaction, on the outbox's thread."""
        with self.db.session() as s:
            q.release_standby(s, ids, self.owner, self.clock.now())
            user = q.get_user(s, channel, external_id) if blocked else None
            if user is None or user.id is None:
                return
            stopped = self.unreachable(s, user.id, "blocked", blocked)
        self.log_blocked(channel, external_id, user.id, stopped)

    def rescue(self) -> list[tuple[int, str]]:
        """Standby rows of a process that is gone go to the sender, due now: at once when it ran on
        this machine (`holders.gone`), once their lease ran out when it ran on another; a living
        process's rows here are never taken, nor this process's own. The rows released (id, channel)."""
        now = self.clock.now()
        with self.db.reading() as s:
            found = q.standby_holders(s)
        others = {owner for owner, _ in found if owner != self.owner}
        gone = sorted(owner for owner in others if holders.gone(owner))
        silent = sorted(
            {
                owner
                for owner, until in found
                if owner in others and not holders.here(owner) and until is not None and until < now
            }
        )
        if not gone and not silent:
            return []
        with self.db.session() as s:
            back = q.requeue_standby(s, gone, silent, now)
        if back:
            self.stats["rescued"] += len(back)
            log.warning("%d repl(ies) whose process stopped before sending them go out now", len(back))
        return back

    async def send_left(self, channel: str, send: Sender) -> None:
        """At a channel's start, before the updates stored meanwhile are handled: the replies a process
        that died left on standby go first, through the channel itself (`send`: up, though the sender
        may not be running yet), so that each chat's replies stay in order. Other channels' replies go
        to the sender."""
        rescued = await self.db_thread.run(self.rescue)
        await self.deliver_now([rid for rid, where in rescued if where == channel], (channel, send))

    def hand_back(self) -> None:
        """At the end (`close`): the batch not yet settled is settled, and whatever else this process
        still holds on standby (a reply whose send was cut short) goes to the next sender."""
        if not self.stood_by:
            return
        ids = self._unsettled + self._to_settle
        self._to_settle, self._unsettled = [], []
        with self.db.session() as s:
            q.settle_standby(s, ids, self.owner)
            q.requeue_standby(s, [self.owner], [], self.clock.now())

    async def deliver_now(self, ids: list[int], through: tuple[str, Sender] | None = None) -> None:
        """Alerts just enqueued: the sender holding the lease here takes them first; else they go now.

        A process whose sender runs but does not hold the lease (another worker does, or a dead one
        still seems to) sends the rows itself, so the alert does not wait for the holder: beside its
        loop (`OutboxSender.send_aside`), so the update that wrote them is answered meanwhile (an
        alert may wait its turn in a busy officer's chat, a second or more; the writer's "sent" does
        not wait with it). A claim is taken once, so two processes never both send a row. With no
        sender running here (the console, tests) they are sent before this returns. `through`:
        (channel, its sender), for a channel not yet among the outbox's senders (`send_left`, at its
        start): only its rows, sent before this returns.
        """
        if not ids:
            return
        if through is None and self.sender is not None and self.sender.running:
            if self.sender.holding:
                self.sender.poke(priority=True)
            else:
                self.sender.send_aside(ids)
            return
        await self.send_these(ids, through)

    async def send_these(
        self, ids: list[int], through: tuple[str, Sender] | None = None, busy_to_holder: bool = False
    ) -> None:
        """Claim exactly these rows for a one-off owner and send them, each chat's in order and at its
        pace, the chats side by side (one recipient whose platform is slow holds up no other).
        `busy_to_holder`: a chat that must wait its turn here is not waited for; its rows go back to
        the queue for the sender holding the lease (`send_chat`)."""
        owner = holders.new_owner()
        channels = [through[0]] if through is not None else list(self.senders)
        send = through[1] if through is not None else None
        rows = await self.db_thread.run(partial(self.claim_these, ids, owner, channels))
        chats: dict[tuple[str, str], list[Row]] = {}
        for row in rows:
            chats.setdefault((row.channel, row.chat_id), []).append(row)
        await asyncio.gather(*(self.send_chat(left, owner, send, busy_to_holder) for left in chats.values()))

    async def send_chat(self, left: list[Row], owner: str, send: Sender | None, busy_to_holder: bool) -> None:
        """`send_these` for one chat's rows. Those not sent go back to the queue: when this stops short
        (cancelled at a stop, a failure; the one in flight too: a duplicate beats a loss), or, with
        `busy_to_holder`, when the chat must wait its turn here (an officer alerted a moment ago by
        this process): the holder paces that chat for the whole deployment, and no claim is held
        while it waits (one held past `lease_seconds` would be sent by the holder too)."""
        try:
            while left:
                row = left[0]
                pace = self.pace(row.channel)
                if busy_to_holder and pace.chat_wait(row.chat_id) > 0:
                    return
                while (wait := max(pace.wait(), pace.chat_wait(row.chat_id))) > 0:
                    await asyncio.sleep(min(wait, 1.0))
                pace.take(row.chat_id)
                try:
                    await self.deliver(row, owner, send)
                finally:
                    pace.done(row.chat_id)
                left.pop(0)
        finally:
            if left:
                back = partial(self.release, [row.id or 0 for row in left], owner)
                await asyncio.shield(self.db_thread.run(back))

    def claim_these(self, ids: list[int], owner: str, channels: list[str]) -> list[Row]:
        """Claim exactly these rows for `owner` (those no one else holds)."""
        with self.db.session() as s:
            return q.claim_outbox(
                s,
                owner=owner,
                now=self.clock.now(),
                lease_until=self.lease_until(),
                limit=len(ids),
                channels=channels,
                bulk=True,
                ids=ids,
            )

    def lease_until(self) -> datetime:
        """When a claim made now runs out."""
        return self.clock.now() + timedelta(seconds=self.config.lease_seconds)

    # ---- one attempt ------------------------------------------------------------------------

    async def deliver(self, row: Row, owner: str, send: Sender | None = None) -> Outcome:
        """Send one claimed row through its channel and record what happened, in the row."""
        with log_ids(outbox=row.id, chat=row.chat_id):
            return await self.attempt(row, owner, send)

    async def attempt(self, row: Row, owner: str, through: Sender | None = None) -> Outcome:
        """`deliver` within the row's log ids."""
        send = through or self.senders.get(row.channel)
        if send is None:
            await self.db_thread.run(partial(self.release, [row.id or 0], owner))
            return Outcome.SKIPPED
        user = await self.db_thread.run(partial(self.recipient, row.user_id))
        if user is None:
            await self.db_thread.run(
                partial(self.finish, row, owner, Outcome.BAD, "recipient no longer exists")
            )
            return Outcome.BAD
        reply = Reply.from_payload(row.payload)
        if reply.edit_of:  # an edit: the platform's id of the message it changes, when it was sent
            reply = replace(reply, edit_ref=await self.db_thread.run(partial(self.sent_ref, reply.edit_of)))
        try:
            ref = await send(user, [reply])
        except Exception as exc:
            outcome = classify(exc)
            error = f"{type(exc).__name__}: {exc}"
            await self.db_thread.run(partial(self.finish, row, owner, outcome, error, exc))
            return outcome
        await self.db_thread.run(partial(self.finish, row, owner, Outcome.SENT, ref=ref or ""))
        return Outcome.SENT

    def release(self, ids: list[int], owner: str) -> None:
        """Rows `owner` claimed go back to the queue untouched."""
        with self.db.session() as s:
            q.release_outbox(s, ids, owner, self.clock.now())

    def sent_ref(self, row_id: int) -> str:
        """The platform's id of the message a sent row became ("" when unsent or not known)."""
        with self.db.session() as s:
            return q.outbox_ref(s, row_id)

    def recipient(self, user_id: int) -> User | None:
        """A row's recipient, detached from the session (None: the account is gone)."""
        with self.db.session() as s:
            user = s.get(User, user_id)
            if user is not None:
                s.expunge(user)
            return user

    def finish(
        self,
        row: Row,
        owner: str,
        outcome: Outcome,
        error: str = "",
        exc: BaseException | None = None,
        ref: str = "",
    ) -> None:
        """Write an attempt's outcome in the row (one short transaction), and adjust the pace."""
        now = self.clock.now()
        rid = row.id or 0
        pace = self.pace(row.channel)
        self.stats[outcome.value] += 1
        if self.metrics is not None:
            self.metrics.sent(row.channel, outcome.value)
        with self.db.session() as s:
            if outcome is Outcome.SENT:
                q.outbox_sent(s, rid, now, ref)
                self.failures = 0
                self.faults.ok(row.channel)
            elif outcome is Outcome.RETRY_AFTER:
                seconds = float(getattr(exc, "retry_after", 1.0) or 1.0)
                pace.pause(seconds + random.uniform(0.05, 0.25), slow_down=True)
                q.release_outbox(s, [rid], owner, now)  # a 429 is not an attempt
                self.faults.failed(row.channel, f"asked to wait {seconds:.1f} s; the sender paused")
            elif outcome in (Outcome.BLOCKED, Outcome.GONE):
                status = "blocked" if outcome is Outcome.BLOCKED else "dead"
                if not row.quiet:  # an alert waits in the inbox for when they write again
                    q.keep_for_later(s, row.user_id, row.payload, now)
                q.outbox_failed(s, rid, owner, status=status, now=now, error=error)
                stopped = self.unreachable(s, row.user_id, status, error)
                self.stats["dead"] += outcome is Outcome.GONE
                log.info(
                    "user %s unreachable on %s (%s): %d more waiting message(s) stopped",
                    row.user_id,
                    row.channel,
                    error,
                    stopped,
                )
            elif outcome is Outcome.BAD:
                q.outbox_failed(s, rid, owner, status="dead", now=now, error=error)
                self.stats["dead"] += 1
                log.error("outbox row %s can never be sent: %s", row.key, error)
            else:
                self.retry_later(s, row, owner, outcome, error, now)

    def retry_later(
        self, s: Session, row: Row, owner: str, outcome: Outcome, error: str, now: datetime
    ) -> None:
        """A network error, a 5xx or a time-out: capped exponential backoff; dead after max_attempts."""
        c = self.config
        attempts = row.attempts + 1
        self.failures += 1
        if outcome is Outcome.AMBIGUOUS:
            error = f"ambiguous (may have arrived; resending): {error}"
        # The whole sender slows down while the platform is failing, so rows do not burn attempts.
        self.pace(row.channel).pause(
            min(c.backoff_cap_seconds, c.backoff_seconds * 2 ** min(self.failures - 1, 30))
        )
        if attempts >= c.max_attempts:
            q.outbox_failed(s, row.id or 0, owner, status="dead", now=now, error=error, attempts=attempts)
            self.stats["dead"] += 1
            log.error("outbox row %s dead after %d attempts: %s", row.key, attempts, error)
            return
        delay = min(c.backoff_cap_seconds, c.backoff_seconds * 2 ** (attempts - 1)) * random.uniform(0.8, 1.2)
        q.outbox_failed(
            s,
            row.id or 0,
            owner,
            status="pending",
            now=now,
            error=error,
            attempts=attempts,
            not_before=now + timedelta(seconds=delay),
        )
        self.faults.failed(row.channel, error)
        log.debug(
            "outbox row %s failed (attempt %d), retrying in %.0f s: %s", row.key, attempts, delay, error
        )

    # ---- housekeeping -----------------------------------------------------------------------

    def janitor(self, spare: str = "") -> int:
        """Claims whose lease ran out, or whose process is gone, go back to the queue (not `spare`'s)."""
        with self.db.session() as s:
            dead = [owner for owner in q.claim_owners(s) if owner != spare and holders.gone(owner)]
            back = q.requeue_owned(s, dead, self.clock.now())
            back += q.requeue_expired(s, self.clock.now(), not_owner=spare)
        if back:
            self.stats["reclaimed"] += back
            log.warning("requeued %d outbox rows whose sender stopped answering", back)
        return back

    def prune(self) -> int:
        """Forget finished rows older than outbox.keep_days."""
        with self.db.session() as s:
            return q.prune_outbox(s, self.clock.now() - timedelta(days=self.config.keep_days))

    # ---- the background sender --------------------------------------------------------------

    def start_sender(self, owner: str | None = None) -> OutboxSender:
        """Start draining the outbox in this process (it sends only while it holds the sender lease)."""
        if self.sender is None or not self.sender.running:
            self.sender = OutboxSender(self, owner)
            self.sender.start()
        return self.sender

    async def stop_sender(self) -> None:
        """Finish the sends in flight, hand back the rest, give up the lease."""
        if self.sender is not None:
            await self.sender.stop()
            self.sender = None


@dataclass
class OutboxSender:
    """The loop that claims, paces and sends; one per deployment holds the sender lease."""

    outbox: Outbox
    owner: str | None = None
    buffer: list[Row] = field(default_factory=list)
    inflight: dict[asyncio.Task[Outcome], Row] = field(default_factory=dict)
    aside: set[asyncio.Task[None]] = field(default_factory=set)  # alerts sent without the lease
    holding: bool = False

    def __post_init__(self) -> None:
        self.owner = self.owner or holders.new_owner()
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._priority = False
        self._next_lease = 0.0
        self._next_janitor = 0.0
        self._next_rescue = 0.0
        self._claim_after = 0.0  # a claim that found nothing: none again before this (monotonic)
        self._claim_owed = False  # a claim was put off until then

    @property
    def name(self) -> str:
        """Who this sender is, in leases and claims."""
        assert self.owner is not None
        return self.owner

    @property
    def running(self) -> bool:
        """Whether the loop is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run the loop as a task of the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name=f"outbox-sender:{self.name}")

    def poke(self, priority: bool = False) -> None:
        """Wake the loop (new rows; `priority`: alerts, claim them ahead of the buffer)."""
        self._priority = self._priority or priority
        self._wake.set()

    def send_aside(self, ids: list[int]) -> None:
        """Alerts this process sends itself while another holds the lease (`Outbox.deliver_now`): at
        once, as a task beside the loop; those to a chat that must wait its turn here go to the holder.
        Should that fail, one line; the rows stay in the outbox for the holder (claimed ones once
        their lease runs out)."""

        async def send() -> None:
            try:
                await self.outbox.send_these(ids, busy_to_holder=True)
            except Exception as exc:
                log.warning(
                    "could not send %d alert(s) from here (%s); the sender holding the lease will",
                    len(ids),
                    reason(exc),
                )

        task = asyncio.get_running_loop().create_task(send(), name=f"outbox-aside:{self.name}")
        self.aside.add(task)
        task.add_done_callback(self.aside.discard)

    async def stop(self, grace: float | None = None) -> None:
        """A clean stop: no new sends, wait for those in flight, release what is left, drop the lease."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.inflight or self.aside:
            wait = grace if grace is not None else self.outbox.config.lease_seconds / 2
            await asyncio.wait([*self.inflight, *self.aside], timeout=wait)
        self.kill_inflight()
        aside = list(self.aside)
        for task in aside:
            task.cancel()  # what it had not sent goes back to the queue (`Outbox.send_these`)
        await asyncio.gather(*aside, return_exceptions=True)
        with self.outbox.db.session() as s:
            q.release_outbox(s, [r.id or 0 for r in self.buffer], self.name, self.outbox.clock.now())
            if self.holding:
                q.drop_lease(s, SENDER_LEASE, self.name)
        self.buffer.clear()
        self.holding = False

    def kill(self) -> None:
        """Die without a word, as a crashed process does (tests): claims stay until their lease runs out
        (the alerts sent aside are cancelled too; what they had not sent goes back at once)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        self.kill_inflight()
        for task in self.aside:
            task.cancel()

    def kill_inflight(self) -> None:
        """Cancel the sends still in flight."""
        for task in self.inflight:
            task.cancel()
        self.inflight.clear()

    # ---- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim, pace, send, until stopped."""
        ob = self.outbox
        try:
            while not self._stopping:
                try:
                    await self.step()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # a database hiccup must not end delivery
                    if transient(exc):  # a dropped connection (a restart): one line, not a traceback
                        log.warning("outbox sender step failed (%s); retrying", reason(exc))
                    else:
                        log.exception("outbox sender step failed; retrying")
                    await self.idle(ob.config.poll_seconds)
        finally:
            log.debug("outbox sender %s stopped", self.name)

    async def step(self) -> None:
        """One turn: housekeeping, claims, then start one send or wait."""
        ob = self.outbox
        mono = ob.monotonic()
        if mono >= self._next_lease:
            # a holder renews well before expiry; a waiting sender asks often
            await ob.db_thread.run(partial(self.keep_lease, self.held_ids()))
            self._next_lease = mono + (
                ob.config.sender_lease_seconds / 3 if self.holding else ob.config.poll_seconds
            )
        if not self.holding:
            await self.idle(ob.config.poll_seconds)
            return
        if mono >= self._next_janitor:
            await ob.db_thread.run(partial(ob.janitor, spare=self.name))
            self._next_janitor = mono + ob.config.janitor_seconds
            self._next_rescue = 0.0
        if mono >= self._next_rescue:  # a dead process's replies on standby go out within seconds
            await ob.db_thread.run(ob.rescue)
            self._next_rescue = mono + RESCUE_SECONDS
        await self.claim()
        if len(self.inflight) >= ob.config.concurrency:
            await self.idle(ob.config.poll_seconds)
            return
        row, wait = self.pick()
        if row is None:
            if self._claim_owed:
                wait = min(wait, self._claim_after - ob.monotonic())
            await self.idle(min(wait, ob.config.poll_seconds))
            return
        pace = ob.pace(row.channel)
        pace.take(row.chat_id)
        self.buffer.remove(row)
        task = asyncio.get_running_loop().create_task(self.send(row))
        self.inflight[task] = row

    def held_ids(self) -> list[int]:
        """The rows this sender holds in memory: buffered or being sent (read on the event loop)."""
        return [r.id or 0 for r in [*self.buffer, *self.inflight.values()]]

    def keep_lease(self, held_ids: list[int]) -> None:
        """Take or renew the sender lease (a dead holder's at once); renew the rows held in memory.
        On the outbox's thread, while the loop awaits it (the buffer is the loop's only then)."""
        ob = self.outbox
        now = ob.clock.now()
        until = ob.lease_until()
        mine_until = now + timedelta(seconds=ob.config.sender_lease_seconds)
        with ob.db.session() as s:
            held = q.take_lease(s, SENDER_LEASE, self.name, now, mine_until, gone=holders.gone)
            q.renew_standby(s, ob.owner, mine_until)  # the replies this process is sending are its own
            if held:
                q.renew_outbox_leases(s, held_ids, self.name, until)
            elif self.buffer:  # another worker sends now: what this one held goes back to the queue
                q.release_outbox(s, [r.id or 0 for r in self.buffer], self.name, now)
                self.buffer.clear()
        if held != self.holding:
            log.info("outbox sender %s %s the sender lease", self.name, "holds" if held else "lost")
            self._next_janitor = 0.0  # a new holder takes back a dead one's claims first
        self.holding = held

    async def claim(self) -> None:
        """Top up the buffer: alerts whenever poked, bulk rows when it runs low.

        A claim that found nothing is not repeated for CLAIM_GAP: at the peak every Gửi of an incident
        pokes, and while its officers' chats are busy (an alert of theirs waiting its turn under the
        per-chat rule) each poke's claim found nothing, one statement a poke on the busiest seconds.
        The pokes of the gap are answered by one claim at its end."""
        ob = self.outbox
        c = ob.config
        low = len(self.buffer) < max(1, c.batch // 2)
        if not (low or self._priority):
            return
        channels = list(ob.senders)
        if not channels:
            return
        if ob.monotonic() < self._claim_after:
            self._claim_owed = True
            return
        self._priority = self._claim_owed = False
        busy = sorted({r.chat_id for r in [*self.buffer, *self.inflight.values()]})
        limit = c.batch - len(self.buffer) if low else c.batch

        def claim() -> list[Row]:
            with ob.db.session() as s:
                return q.claim_outbox(
                    s,
                    owner=self.name,
                    now=ob.clock.now(),
                    lease_until=ob.lease_until(),
                    limit=limit,
                    channels=channels,
                    bulk=ob.calendar.can_send(),
                    skip_chats=busy,
                    priority_only=not low,
                )

        rows = await ob.db_thread.run(claim)
        self.buffer.extend(rows)
        self._claim_after = 0.0 if rows else ob.monotonic() + CLAIM_GAP

    def pick(self) -> tuple[Row | None, float]:
        """The next row to send: the first (priority, id) whose chat and bot are free; else how long to wait."""
        ob = self.outbox
        wait = float("inf")
        best: Row | None = None
        seen: set[str] = set()
        for row in sorted(self.buffer, key=lambda r: (r.priority, r.id or 0)):
            if row.chat_id in seen:
                continue  # one chat's messages go in order
            seen.add(row.chat_id)
            pace = ob.pace(row.channel)
            need = max(pace.chat_wait(row.chat_id), pace.wait())
            if need <= 0:
                best = row
                break
            wait = min(wait, need)
        if best is not None:
            return best, 0.0
        return None, wait

    async def send(self, row: Row) -> Outcome:
        """One send, its outcome recorded; the chat is freed and the loop woken either way."""
        pace = self.outbox.pace(row.channel)
        try:
            return await self.outbox.deliver(row, self.name)
        except (
            Exception
        ) as exc:  # the outcome could not be written: the row's lease runs out, the janitor retries
            if transient(exc):  # a dropped connection (a restart): one line, not a traceback
                log.warning("outbox row %s: recording the outcome failed (%s)", row.key, reason(exc))
            else:
                log.exception("outbox row %s: recording the outcome failed", row.key)
            return Outcome.TRANSIENT
        finally:
            pace.done(row.chat_id)
            self._wake.set()
            task = asyncio.current_task()
            if task is not None:
                self.inflight.pop(task, None)

    async def idle(self, timeout: float) -> None:
        """Wait until poked, a send finishes, or `timeout` seconds pass."""
        if timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()


def inbox_sender(db: Database, clock: Clock) -> Sender:
    """A sender that keeps messages for when the user next writes (console users with no live chat)."""

    async def keep(user: User, replies: list[Reply]) -> None:
        with db.session() as s:
            for reply in replies:
                q.keep_for_later(s, user.id or 0, reply.to_payload(), clock.now())

    return keep


def describe(
    db: Database, clock: Clock, errors: int = 10, budgets: dict[str, int] | None = None
) -> list[str]:
    """`schoolbot outbox`: counts by status and kind, who holds the leases, monthly budgets, the latest errors.

    `budgets`: each metered channel's monthly message quota (Zalo's plan), to show what is left.
    """
    month = clock.now().strftime("%Y-%m")
    with db.session() as s:
        used = {channel: q.usage(s, channel, month) for channel in budgets or {}}
        counts = q.outbox_counts(s)
        leases = [q.lease_holder(s, name) for name in (SENDER_LEASE, "scheduler")]
        failed = q.outbox_errors(s, errors)
        for row in failed:
            s.expunge(row)
    lines = ["status     kind                  count"]
    lines += [f"{status:<10} {kind:<20} {n:>6}" for status, kind, n in counts] or ["(empty)"]
    now = clock.now()
    for name, lease in zip((SENDER_LEASE, "scheduler"), leases, strict=True):
        if lease is None:
            lines.append(f"{name} lease: nobody")
        else:
            state = "held" if lease.until > now else "expired"
            until = lease.until.astimezone(clock.tz).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"{name} lease: {lease.owner} ({state}, until {until})")
    for channel, limit in (budgets or {}).items():
        if limit:
            lines.append(
                f"{channel} budget {month}: {used[channel]} of {limit} sent, {max(limit - used[channel], 0)} left"
            )
    if failed:
        lines.append(f"last {len(failed)} error(s):")
        for row in failed:
            when = row.updated_at.astimezone(clock.tz).strftime("%Y-%m-%d %H:%M")
            lines.append(f"  {when} {row.status:<8} attempts={row.attempts} {row.key}: {row.last_error}")
    return lines
