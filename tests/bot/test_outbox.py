"""The outbox sender: pacing, the priority lane, every platform answer, leases and the janitor.

The channel here is an in-process fake `Sender` (the Telegram wire is tested in test_outbox_telegram.py),
so these tests run at a high configured rate; only the FrozenClock moves for leases and backoff.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from sqlalchemy import event
from sqlmodel import select
from telegram.error import BadRequest, Forbidden, NetworkError, TelegramError, TimedOut

from bot.app import App, open_app
from bot.channels.telegram import channel_error
from bot.config import Settings
from bot.outbox import CLAIM_GAP, DIRECT, Outbox, OutboxSender, Outcome, Pace, Sender, classify
from handlers.notify import ALERT, NOTICE
from handlers.reminders import PRIORITY_ALERT, Planned
from handlers.types import Incoming, Kind, Reply
from storage import queries as q
from storage.errors import Blocked, ChannelError, RetryAfter
from storage.models import Inbox, Incident, User
from tests.storage.test_holders import dead_owner
from tests.support import add_principals, at_once, frozen, outbox_statuses, until
from tests.support import outbox_rows as rows

FAST = {
    "rate": 2000.0,
    "burst": 5,
    "per_chat_seconds": 0.01,
    "concurrency": 4,
    "batch": 20,
    "poll_seconds": 0.02,
    "backoff_seconds": 0.001,
    "backoff_cap_seconds": 0.01,
    "lease_seconds": 60,
    "max_attempts": 4,
}


class FakeChannel:
    """A channel whose answers a test scripts per chat: None delivers, an exception is raised."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, float]] = []  # (chat, text, monotonic time)
        self.tried: list[tuple[str, float]] = []
        self.script: dict[str, list[BaseException | None]] = {}
        self.fail_all: list[BaseException] = []
        self.hang: set[str] = set()

    async def __call__(self, user: User, replies: list[Reply]) -> None:
        self.tried.append((user.chat_id, time.monotonic()))
        await asyncio.sleep(0)
        if user.chat_id in self.hang:  # it arrives, but the answer never comes back
            self.got.extend((user.chat_id, r.text, time.monotonic()) for r in replies)
            await asyncio.Event().wait()
        if self.fail_all:
            raise self.fail_all.pop(0)
        queue = self.script.get(user.chat_id)
        if queue:
            outcome = queue.pop(0)
            if outcome is not None:
                raise outcome
        for reply in replies:
            self.got.append((user.chat_id, reply.text, time.monotonic()))

    def texts_to(self, chat: str) -> list[str]:
        return [t for c, t, _ in self.got if c == chat]


@pytest.fixture(name="fast")
def fast_fixture(settings: Settings, clock: Any) -> Iterator[App]:
    """The demo app with a fast outbox and a scripted Telegram channel."""
    from bot.demo import seed_demo

    fast = settings.model_copy(update={"outbox": settings.outbox.model_copy(update=FAST)})
    with open_app(fast, clock) as app:
        with app.db.session() as s:
            seed_demo(s, clock.now())
        app.dispatcher.senders["telegram"] = FakeChannel()
        yield app


def channel(app: App) -> FakeChannel:
    return fake_of(app.dispatcher.senders)


def fake_of(senders: dict[str, Sender]) -> FakeChannel:
    """The scripted Telegram channel among the senders."""
    sender = senders["telegram"]
    assert isinstance(sender, FakeChannel)
    return sender


def tg_users(app: App, n: int, first: int = 700) -> list[User]:
    return add_principals(app, n, [(3, 2)], first)


def enqueue(app: App, users: list[User], step: str = "d5", **extra: Any) -> int:
    rows = [
        Planned(u, "article-remind", "2026-11", step, Reply(f"nhắc {u.chat_id} {step}"), 3, **extra).row(
            app.clock.now()
        )
        for u in users
    ]
    with app.db.session() as s:
        return q.enqueue(s, rows)


# ---- pacing (a fake monotonic clock) --------------------------------------------------------------


class Tick:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def start_when_free(pace: Pace, tick: Tick, chat: str) -> None:
    """Move the fake clock on until the pace lets a send start, and start it to `chat`."""
    while (wait := pace.wait()) > 0:
        tick.t += wait
    pace.take(chat)


def test_the_pace_spaces_sends_evenly_after_a_small_burst() -> None:
    tick = Tick()
    pace = Pace(rate=25, burst=3, per_chat=1.0, now=tick)
    starts = []
    for n in range(60):
        start_when_free(pace, tick, f"chat{n}")
        pace.done(f"chat{n}")
        starts.append(tick.t)
    # In any one-second window: at most the burst plus the rate (28 < Telegram's 30).
    assert max(sum(1 for s in starts if t <= s < t + 1.0) for t in starts) <= 28
    assert starts[-1] - starts[0] == pytest.approx((60 - 3) / 25, abs=0.01)


def test_sends_held_up_on_the_way_cannot_bunch_up_over_the_platforms_window() -> None:
    """The platform counts a send when it arrives, somewhere between its start and its end."""
    tick = Tick()
    pace = Pace(rate=100, burst=2, per_chat=0.25, now=tick)  # the restart test's pace: window 0.25 s
    arrivals = []
    for n in range(4):  # four sends leave and hang on the way (a stalled server) ...
        start_when_free(pace, tick, f"slow{n}")
    tick.t += 0.1  # ... while the bucket fills up again
    for n in range(4):
        pace.done(f"slow{n}")  # the platform counts all four only now, together
        arrivals.append(tick.t)
    for n in range(60):  # then every send arrives the moment it leaves
        start_when_free(pace, tick, f"chat{n}")
        pace.done(f"chat{n}")
        arrivals.append(tick.t)

    # The platform's sliding window (a send is forgotten once it is a whole window old): at most
    # rate x window + burst, under the fake's 30. The bucket alone lets 4 + 2 + 24 = 30 through: the
    # fake's limit, so one more arrival the pace did not count (a request cut off by a crash) is a 429.
    assert max(sum(1 for a in arrivals if t <= a < t + 0.25) for t in arrivals) <= 27
    assert arrivals[-1] - arrivals[4] == pytest.approx(60 / 100, abs=0.3)  # still at about the rate


def test_one_chat_waits_its_gap_after_the_last_send_finished() -> None:
    tick = Tick()
    pace = Pace(rate=25, burst=3, per_chat=1.0, now=tick)
    pace.take("a")
    assert pace.chat_wait("a") == float("inf")  # in flight
    tick.t += 0.3
    pace.done("a")
    assert pace.chat_wait("a") == pytest.approx(1.0)
    assert pace.chat_wait("b") == 0
    tick.t += 1.0
    assert pace.chat_wait("a") == 0


def test_an_interactive_reply_starts_the_chats_gap_again() -> None:
    tick = Tick()
    pace = Pace(rate=25, burst=3, per_chat=1.0, now=tick)
    pace.touch("a")  # the bot just answered someone chatting in "a"
    assert pace.chat_wait("a") == pytest.approx(1.0) and pace.chat_wait("b") == 0
    tick.t += 0.6
    pace.touch("a")  # and again: the gap runs from the latest reply
    assert pace.chat_wait("a") == pytest.approx(1.0)
    tick.t += 1.0
    assert pace.chat_wait("a") == 0


def test_a_429_pauses_and_halves_the_rate_which_then_climbs_back() -> None:
    tick = Tick()
    pace = Pace(rate=24, burst=1, per_chat=0, now=tick)
    pace.pause(3.0, slow_down=True)
    assert pace.wait() == pytest.approx(3.0) and pace.rate == 12
    for _ in range(20):
        tick.t += 10
        pace.wait()
    assert pace.rate == 24


# ---- outcomes ------------------------------------------------------------------------------------------


def wrapped(exc: TelegramError) -> ChannelError:
    """As the Telegram channel raises it: PTB's exception translated into ours at the edge."""
    return channel_error(exc)


@pytest.mark.parametrize(
    ("exc", "outcome"),
    [
        (RetryAfter(3), Outcome.RETRY_AFTER),
        (Blocked("x"), Outcome.BLOCKED),
        (wrapped(Forbidden("bot was blocked by the user")), Outcome.BLOCKED),
        (wrapped(BadRequest("Chat not found")), Outcome.GONE),
        (wrapped(BadRequest("Message is too long")), Outcome.BAD),
        (wrapped(TimedOut()), Outcome.AMBIGUOUS),
        (wrapped(NetworkError("Bad Gateway")), Outcome.TRANSIENT),
        (wrapped(NetworkError("Internal Server Error (500)")), Outcome.TRANSIENT),
        (ChannelError("anything else"), Outcome.TRANSIENT),
        (RuntimeError("a bug"), Outcome.TRANSIENT),
    ],
)
def test_each_platform_answer_is_sorted(exc: BaseException, outcome: Outcome) -> None:
    assert classify(exc) is outcome


def test_zalo_errors_are_sorted_too() -> None:
    zalo = pytest.importorskip("bot.channels.zalo")
    assert classify(zalo.error_for("sendMessage", 429, "quota", 2.0)) is Outcome.RETRY_AFTER
    assert classify(zalo.error_for("sendMessage", 503, "down")) is Outcome.TRANSIENT
    assert classify(zalo.error_for("sendMessage", 404, "user not found")) is Outcome.GONE
    assert classify(zalo.NetworkTimeout("x")) is Outcome.AMBIGUOUS


# ---- the sender ----------------------------------------------------------------------------------------


async def run_sender(app: App) -> OutboxSender:
    return app.outbox.start_sender("test-sender")


async def test_every_row_is_sent_once_and_recorded(fast: App) -> None:
    users = tg_users(fast, 50)
    assert enqueue(fast, users) == 50
    assert enqueue(fast, users) == 0  # the same keys again: nothing new
    await run_sender(fast)
    await until(lambda: len(channel(fast).got) == 50, "50 sends")
    await fast.outbox.stop_sender()
    assert sorted(c for c, _, _ in channel(fast).got) == sorted(u.chat_id for u in users)
    assert outbox_statuses(fast) == {"sent": 50}
    assert all(r.sent_at is not None and r.attempts == 0 and r.lease_owner == "" for r in rows(fast))


async def test_one_chat_gets_its_messages_in_order_one_gap_apart(fast: App) -> None:
    [user] = tg_users(fast, 1)
    for step in ("d5", "d2", "d1"):
        enqueue(fast, [user], step=step, quiet=False)  # not superseded: quiet=False rows are never cancelled
    fast.outbox.config = fast.outbox.config.model_copy(update={"per_chat_seconds": 0.05})
    await run_sender(fast)
    await until(lambda: len(channel(fast).got) == 3, "3 sends")
    await fast.outbox.stop_sender()
    got = channel(fast).got
    assert [t.split()[-1] for _, t, _ in got] == ["d5", "d2", "d1"]
    assert all(b[2] - a[2] >= 0.05 for a, b in itertools.pairwise(got))


async def test_an_alert_never_waits_behind_a_bulk_wave(fast: App) -> None:
    fast.outbox.config = fast.outbox.config.model_copy(update={"rate": 100.0, "burst": 1})
    enqueue(fast, tg_users(fast, 300))
    [officer] = tg_users(fast, 1, first=9000)
    await run_sender(fast)
    await until(lambda: len(channel(fast).got) >= 30, "the wave to be under way")
    ids = fast.outbox.enqueue_direct("telegram:42", {officer.id or 0: [Reply("SỰ CỐ #1")]})
    before = len(channel(fast).got)
    await fast.outbox.deliver_now(ids)  # the sender runs here: it is woken, not bypassed
    await until(lambda: channel(fast).texts_to(officer.chat_id) == ["SỰ CỐ #1"], "the alert")
    position = next(i for i, (c, _, _) in enumerate(channel(fast).got) if c == officer.chat_id)
    await fast.outbox.stop_sender()
    assert position - before <= fast.outbox.config.concurrency + 2  # only sends already in flight went first
    [alert] = rows(fast, kind="direct")
    assert alert.priority == PRIORITY_ALERT and not alert.quiet and alert.status == "sent"
    assert outbox_statuses(fast)["pending"] > 100  # the wave was still far from done


async def test_pokes_while_the_chat_waits_its_turn_cost_one_claim_a_gap_and_every_alert_goes(
    fast: App,
) -> None:
    """Twenty alerts to one officer within a moment (twenty incidents sent at once): the first goes,
    the second waits its chat's turn in the buffer, and the pokes of the others find that chat busy.
    Their claims would all find nothing, so they coalesce into one a CLAIM_GAP; every alert still
    goes, in order."""
    fast.outbox.config = fast.outbox.config.model_copy(update={"per_chat_seconds": 0.1})
    [officer] = tg_users(fast, 1, first=9000)
    claims: list[float] = []

    @event.listens_for(fast.db.engine, "before_cursor_execute")
    def count(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_rest: Any) -> None:
        values = parameters.values() if isinstance(parameters, dict) else parameters
        # a claim, not a row marked sent (the alerts go meanwhile, one each 0.1 s)
        if statement.lstrip().upper().startswith("UPDATE OUTBOX SET STATUS") and "claimed" in values:
            claims.append(time.monotonic())

    await run_sender(fast)
    first = fast.outbox.enqueue_direct("telegram:1", {officer.id or 0: [Reply("SỰ CỐ #1")]})
    await fast.outbox.deliver_now(first)
    await until(lambda: channel(fast).texts_to(officer.chat_id) == ["SỰ CỐ #1"], "the first alert")
    began = time.monotonic()
    for n in range(2, 22):
        ids = fast.outbox.enqueue_direct(f"telegram:{n}", {officer.id or 0: [Reply(f"SỰ CỐ #{n}")]})
        await fast.outbox.deliver_now(ids)
        await asyncio.sleep(0.002)
    poked = time.monotonic() - began
    during = [t for t in claims if began <= t <= began + poked]
    await until(lambda: len(channel(fast).texts_to(officer.chat_id)) == 21, "21 alerts", timeout=10)
    await fast.outbox.stop_sender()
    assert channel(fast).texts_to(officer.chat_id) == [f"SỰ CỐ #{n}" for n in range(1, 22)]
    # the pokes cost a claim a gap, and each alert that went meanwhile freed the chat for one claim more
    went = [t for c, _, t in channel(fast).got if c == officer.chat_id and began <= t <= began + poked]
    assert len(during) <= 2 + poked / CLAIM_GAP + len(went)  # the old sender claimed once a poke: 20
    assert outbox_statuses(fast) == {"sent": 21}


async def test_a_429_pauses_everything_for_retry_after_and_the_row_goes_again_unchanged(fast: App) -> None:
    users = tg_users(fast, 10)
    channel(fast).script[users[3].chat_id] = [RetryAfter(0.2)]
    enqueue(fast, users)
    await run_sender(fast)
    await until(lambda: len(channel(fast).got) == 10, "10 sends")
    await fast.outbox.stop_sender()
    starts = sorted(t for _, t in channel(fast).tried)
    assert max(b - a for a, b in itertools.pairwise(starts)) >= 0.2  # nothing at all went out for 0.2 s
    assert fast.outbox.stats.retry_after == 1
    [row] = rows(fast, chat_id=users[3].chat_id)
    assert row.status == "sent" and row.attempts == 0  # a 429 is not an attempt
    assert fast.outbox.paces["telegram"].rate < FAST["rate"]  # and the rate was lowered for a while


async def test_a_user_who_blocked_the_bot_is_marked_and_never_tried_again(fast: App) -> None:
    users = tg_users(fast, 3)
    blocked = users[1]
    channel(fast).script[blocked.chat_id] = [Blocked("403")]
    enqueue(fast, users, step="d5")
    with fast.db.session() as s:  # an alert waiting for the same user
        q.enqueue(
            s,
            [
                Planned(
                    blocked,
                    "direct",
                    "telegram:9",
                    "0",
                    Reply("SỰ CỐ"),
                    priority=PRIORITY_ALERT,
                    quiet=False,
                    not_before=datetime(2030, 1, 1, tzinfo=fast.clock.tz),
                ).row(fast.clock.now())
            ],
        )
    await run_sender(fast)
    await until(
        lambda: len(channel(fast).got) == 2 and rows(fast, chat_id=blocked.chat_id)[0].status != "claimed",
        "sends",
    )
    await fast.outbox.stop_sender()
    mine = rows(fast, chat_id=blocked.chat_id)
    assert [r.status for r in mine] == ["blocked", "blocked"]
    assert channel(fast).texts_to(blocked.chat_id) == []
    assert [c for c, _ in channel(fast).tried].count(blocked.chat_id) == 1
    with fast.db.session() as s:
        user = s.get(User, blocked.id)
        assert user is not None and user.blocked
        kept = s.exec(select(Inbox).where(Inbox.user_id == blocked.id)).all()
    # The reminder that met 403 is not kept for later; the alert stopped behind it is (nothing lost).
    assert [k.payload["text"] for k in kept] == ["SỰ CỐ"]
    assert fast.outbox.stats.blocked == 1


async def test_an_alert_to_a_user_who_blocked_the_bot_waits_in_the_inbox(fast: App) -> None:
    [officer] = tg_users(fast, 1, first=9100)
    channel(fast).script[officer.chat_id] = [Blocked("403")]
    ids = fast.outbox.enqueue_direct("telegram:77", {officer.id or 0: [Reply("SỰ CỐ #2")]})
    await fast.outbox.deliver_now(ids)  # no sender running here: sent at once
    [row] = rows(fast, kind="direct")
    assert row.status == "blocked"
    with fast.db.session() as s:
        assert [k["text"] for k in q.take_kept(s, officer.id or 0, fast.clock.now())] == ["SỰ CỐ #2"]


async def test_a_chat_that_no_longer_exists_is_dead_and_the_others_still_go(fast: App) -> None:
    users = tg_users(fast, 4)
    channel(fast).script[users[0].chat_id] = [wrapped(BadRequest("Bad Request: chat not found"))]
    channel(fast).script[users[1].chat_id] = [wrapped(BadRequest("Bad Request: message is too long"))]
    enqueue(fast, users)
    await run_sender(fast)
    await until(lambda: outbox_statuses(fast) == {"dead": 2, "sent": 2}, "outcomes")
    await fast.outbox.stop_sender()
    gone, bad = rows(fast, chat_id=users[0].chat_id)[0], rows(fast, chat_id=users[1].chat_id)[0]
    assert "chat not found" in gone.last_error.lower() and "too long" in bad.last_error.lower()
    with fast.db.session() as s:
        unreachable, wrong = s.get(User, users[0].id), s.get(User, users[1].id)
        assert unreachable is not None and unreachable.blocked  # unreachable: the next sweeps skip them
        assert wrong is not None and not wrong.blocked  # only that message was wrong


async def test_5xx_and_time_outs_for_a_while_lose_nothing(fast: App) -> None:
    users = tg_users(fast, 6)
    channel(fast).fail_all = [
        *(wrapped(NetworkError("Internal Server Error (500)")) for _ in range(5)),
        *(wrapped(TimedOut()) for _ in range(3)),
    ]
    enqueue(fast, users)
    sender = await run_sender(fast)
    await until(lambda: len(channel(fast).tried) >= 6 and not sender.inflight, "a first round of failures")
    waiting = rows(fast)
    assert all(r.status == "pending" and r.not_before > fast.clock.now() and r.attempts == 1 for r in waiting)
    for _ in range(40):  # time passes; the backoff ends
        if outbox_statuses(fast).get("sent") == 6:
            break
        frozen(fast).advance(minutes=10)
        fast.outbox.poke()
        await asyncio.sleep(0.05)
    await until(lambda: outbox_statuses(fast) == {"sent": 6}, "every row sent")
    await fast.outbox.stop_sender()
    assert sorted(c for c, _, _ in channel(fast).got) == sorted(u.chat_id for u in users)
    assert fast.outbox.stats.transient == 5 and fast.outbox.stats.ambiguous == 3
    assert max(r.attempts for r in rows(fast)) == 2


async def test_after_max_attempts_a_row_is_dead_and_an_operator_can_requeue_it(fast: App) -> None:
    [user] = tg_users(fast, 1)
    channel(fast).script[user.chat_id] = [wrapped(NetworkError("Bad Gateway"))] * 4
    enqueue(fast, [user])
    await run_sender(fast)
    for _ in range(40):
        if rows(fast)[0].status == "dead":
            break
        frozen(fast).advance(hours=1)
        fast.outbox.poke()
        await asyncio.sleep(0.02)
    assert rows(fast)[0].status == "dead" and rows(fast)[0].attempts == 4
    # The operator requeues it on a working morning: how many hours the retries took depends on the
    # machine's speed, and a row requeued in the night would wait for the morning (quiet hours).
    frozen(fast).set(datetime(2026, 11, 20, 9, 0))
    with fast.db.session() as s:
        assert q.requeue_dead(s, fast.clock.now()) == 1
    fast.outbox.poke()
    await until(lambda: rows(fast)[0].status == "sent", "the requeued row")
    await fast.outbox.stop_sender()


async def test_quiet_hours_hold_the_bulk_but_not_alerts(fast: App) -> None:
    frozen(fast).set(datetime(2026, 11, 10, 21, 0))
    users = tg_users(fast, 3)
    enqueue(fast, users[:2])
    ids = fast.outbox.enqueue_direct("telegram:5", {users[2].id or 0: [Reply("SỰ CỐ đêm")]})
    await run_sender(fast)
    await fast.outbox.deliver_now(ids)
    await until(lambda: channel(fast).texts_to(users[2].chat_id) == ["SỰ CỐ đêm"], "the alert at night")
    await asyncio.sleep(0.1)
    assert len(channel(fast).got) == 1
    frozen(fast).set(datetime(2026, 11, 11, 7, 0))
    fast.outbox.poke()
    await until(lambda: len(channel(fast).got) == 3, "the morning")
    await fast.outbox.stop_sender()


async def test_a_killed_sender_loses_nothing_and_duplicates_at_most_what_was_in_flight(fast: App) -> None:
    users = tg_users(fast, 40)
    stuck = {u.chat_id for u in users[10:12]}
    channel(fast).hang = set(stuck)
    enqueue(fast, users)
    sender = await run_sender(fast)
    await until(
        lambda: len(channel(fast).got) >= 30 and len(sender.inflight) == 2, "two sends stuck in flight"
    )
    sender.kill()  # as a crash: no clean-up at all
    fast.outbox.sender = None
    await asyncio.sleep(0)
    claimed = [r for r in rows(fast) if r.status == "claimed"]
    assert {r.chat_id for r in claimed} >= stuck
    channel(fast).hang.clear()
    # A new process: its janitor takes back nothing until the dead sender's lease has run out.
    frozen(fast).advance(seconds=FAST["lease_seconds"] - 1)
    assert fast.outbox.janitor() == 0
    frozen(fast).advance(seconds=2)
    assert fast.outbox.janitor() >= 2
    fast.outbox.start_sender("second")
    await until(lambda: outbox_statuses(fast) == {"sent": 40}, "every row sent")
    await fast.outbox.stop_sender()
    chats = [c for c, _, _ in channel(fast).got]
    assert set(chats) == {u.chat_id for u in users}  # nothing lost
    assert len(chats) - len(set(chats)) == 2  # duplicates: the two sends in flight at the crash, no more
    assert [r.last_error for r in rows(fast) if r.chat_id in stuck] == ["", ""]


async def test_only_the_holder_of_the_sender_lease_sends(fast: App) -> None:
    other = Outbox(fast.db, fast.clock, fast.settings, {"telegram": FakeChannel()})
    enqueue(fast, tg_users(fast, 20))
    first = fast.outbox.start_sender("first")
    await until(lambda: first.holding, "the first sender to hold the lease")
    second = other.start_sender("second")
    await until(lambda: len(channel(fast).got) == 20, "20 sends")
    assert not second.holding and fake_of(other.senders).got == []
    await fast.outbox.stop_sender()  # a clean stop gives the lease up
    enqueue(fast, tg_users(fast, 5, first=800), step="d2")
    await until(lambda: len(fake_of(other.senders).got) == 5, "the second sender to take over")
    await other.stop_sender()


def hold_sender_lease(app: App, owner: str, seconds: float) -> None:
    """As another process would: `owner` holds the sender lease for `seconds` from now."""
    now = app.clock.now()
    with app.db.session() as s:
        assert q.take_lease(s, "sender", owner, now, now + timedelta(seconds=seconds))


def sender_lease_owner(app: App) -> str:
    with app.db.session() as s:
        lease = q.lease_holder(s, "sender")
        return lease.owner if lease is not None else ""


async def test_a_restarted_process_takes_a_dead_holders_lease_and_claims_at_once(fast: App) -> None:
    """kill -9: the dead process held the lease for a minute more and had claimed an alert; its
    successor on the same machine sees it is gone and sends the alert first, with no time passing."""
    dead = dead_owner()
    hold_sender_lease(fast, dead, 60)
    enqueue(fast, tg_users(fast, 5))
    [officer] = tg_users(fast, 1, first=9000)
    ids = fast.outbox.enqueue_direct("telegram:42", {officer.id or 0: [Reply("SỰ CỐ #1")]})
    with fast.db.session() as s:  # the dead sender had claimed the alert, and never sent it
        q.claim_outbox(
            s,
            owner=dead,
            now=fast.clock.now(),
            lease_until=fast.clock.now() + timedelta(seconds=60),
            limit=1,
            channels=["telegram"],
            bulk=True,
            ids=ids,
        )
    frozen = fast.clock.now()
    sender = fast.outbox.start_sender()
    await until(lambda: len(channel(fast).got) == 6, "the alert and the wave")
    await fast.outbox.stop_sender()
    assert fast.clock.now() == frozen  # no lease ran out: the dead holder was seen to be gone
    assert sender.holding is False and sender_lease_owner(fast) == ""  # held, then given up at the stop
    assert channel(fast).got[0][:2] == (officer.chat_id, "SỰ CỐ #1")  # the alert went first
    assert outbox_statuses(fast) == {"sent": 6} and fast.outbox.stats.reclaimed == 1


async def test_an_alert_goes_at_once_from_a_process_that_does_not_hold_the_lease(fast: App) -> None:
    """Another worker holds the lease (alive, or dead on another machine): this one sends its alert
    itself; the bulk waits for the holder, or for the short sender lease to run out."""
    hold_sender_lease(fast, "web-2-elsewhere", fast.outbox.config.sender_lease_seconds)
    users = tg_users(fast, 3)
    enqueue(fast, users)
    sender = fast.outbox.start_sender()
    [officer] = tg_users(fast, 1, first=9000)
    await until(lambda: sender._next_lease > 0, "the sender to ask for the lease")
    assert not sender.holding
    ids = fast.outbox.enqueue_direct("telegram:43", {officer.id or 0: [Reply("SỰ CỐ #2")]})
    await fast.outbox.deliver_now(ids)  # sent from here, beside the loop
    await until(lambda: channel(fast).texts_to(officer.chat_id) == ["SỰ CỐ #2"], "the alert, from here")
    await until(lambda: outbox_statuses(fast) == {"pending": 3, "sent": 1}, "the alert's row written")
    await until(lambda: not sender.aside, "the send beside the loop to end")
    assert sender_lease_owner(fast) == "web-2-elsewhere"
    frozen(fast).advance(seconds=fast.outbox.config.sender_lease_seconds - 1)
    await asyncio.sleep(0.1)
    assert not sender.holding and outbox_statuses(fast)["pending"] == 3  # the holder's lease still runs
    frozen(fast).advance(seconds=2)
    await until(lambda: outbox_statuses(fast) == {"sent": 4}, "the wave, once the short lease ran out")
    assert sender_lease_owner(fast) == sender.name
    await fast.outbox.stop_sender()


async def test_an_alert_to_a_chat_that_waits_its_turn_here_goes_to_the_holder(fast: App) -> None:
    """A worker without the lease sends an alert to a free chat at once; a second alert to the same
    officer a moment later must wait its turn under the per-chat rule here, so it goes back to the
    queue for the holder, who paces that chat, rather than held claimed while it waits."""
    fast.outbox.config = fast.outbox.config.model_copy(update={"per_chat_seconds": 30.0})
    hold_sender_lease(fast, "web-2-elsewhere", 60)
    sender = fast.outbox.start_sender()
    await until(lambda: sender._next_lease > 0, "the sender to ask for the lease")
    [officer] = tg_users(fast, 1, first=9000)
    first = fast.outbox.enqueue_direct("telegram:1", {officer.id or 0: [Reply("SỰ CỐ #1")]})
    await fast.outbox.deliver_now(first)
    await until(lambda: outbox_statuses(fast) == {"sent": 1}, "the first alert, from here")
    second = fast.outbox.enqueue_direct("telegram:2", {officer.id or 0: [Reply("SỰ CỐ #2")]})
    await fast.outbox.deliver_now(second)
    await until(lambda: not sender.aside, "the second's turn here to end")
    assert channel(fast).texts_to(officer.chat_id) == ["SỰ CỐ #1"]
    [row] = [r for r in rows(fast, kind=DIRECT) if r.id == second[0]]
    assert row.status == "pending" and row.lease_owner == ""  # no claim held through a 30 s wait
    await fast.outbox.stop_sender()


async def test_two_processes_never_both_send_a_row(fast: App) -> None:
    other = Outbox(fast.db, fast.clock, fast.settings, {"telegram": FakeChannel()})
    users = tg_users(fast, 30)
    enqueue(fast, users)
    officers = tg_users(fast, 6, first=9000)
    fast.outbox.start_sender()
    other.start_sender()
    for n, officer in enumerate(officers):  # each alert offered by both at once
        ids = fast.outbox.enqueue_direct(f"telegram:{n}", {officer.id or 0: [Reply(f"SỰ CỐ {n}")]})
        await asyncio.gather(fast.outbox.deliver_now(ids), other.deliver_now(ids))
    await until(lambda: outbox_statuses(fast) == {"sent": 36}, "every row")
    await fast.outbox.stop_sender()
    await other.stop_sender()
    got = [c for c, _, _ in channel(fast).got] + [c for c, _, _ in fake_of(other.senders).got]
    assert sorted(got) == sorted(u.chat_id for u in [*users, *officers])  # each exactly once


async def test_the_incident_alert_goes_at_once_while_another_worker_holds_the_lease(
    demo: App, chat_as: Any
) -> None:
    from tests.handlers.helpers import fill_incident, inbox_texts

    hold_sender_lease(demo, "web-2-elsewhere", 60)
    sender = demo.outbox.start_sender()
    await until(lambda: sender._next_lease > 0, "the sender to ask for the lease")
    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    await until(lambda: {r.status for r in rows(demo, kind=ALERT)} == {"sent"}, "both alerts, from here")
    assert any("SỰ CỐ TRUYỀN THÔNG #1" in t for t in inbox_texts(demo, "officer"))
    assert not sender.holding
    await demo.outbox.stop_sender()


async def test_gui_is_answered_while_the_alert_is_still_on_its_way(demo: App, chat_as: Any) -> None:
    """Another worker holds the lease, so this one sends the incident's alerts itself; the officer's
    Telegram takes the alert and never answers (a slow upload, a platform that hangs). The principal's
    "sent" does not wait for it; at a stop the alert goes back to the queue, for the holder."""
    from tests.handlers.helpers import fill_incident

    with demo.db.session() as s:
        officer = s.exec(select(User).where(User.external_id == "officer")).one()
        officer.channel, officer.external_id, officer.chat_id = "telegram", "9100", "9100"
    hung = FakeChannel()
    hung.hang.add("9100")
    demo.dispatcher.senders["telegram"] = hung
    hold_sender_lease(demo, "web-2-elsewhere", 60)
    sender = demo.outbox.start_sender()
    await until(lambda: sender._next_lease > 0, "the sender to ask for the lease")
    principal = chat_as("principal")
    await fill_incident(principal)
    answer = await asyncio.wait_for(principal.press("Gửi"), 60)  # before: waited on the officer's send
    assert "#1" in answer[0].text
    await until(lambda: hung.texts_to("9100") != [], "the alert, on its way")
    await until(lambda: "sent" in {r.status for r in rows(demo, kind=ALERT)}, "the leader's alert")
    officer_row = next(r for r in rows(demo, kind=ALERT) if r.chat_id == "9100")
    assert officer_row.status == "claimed" and len(sender.aside) == 1
    await sender.stop(grace=0.1)  # the hung send is not waited for as long as a stop would
    officer_row = next(r for r in rows(demo, kind=ALERT) if r.chat_id == "9100")
    assert officer_row.status == "pending" and officer_row.lease_owner == ""  # the holder sends it


async def test_rows_for_a_channel_with_no_sender_wait_for_it(fast: App) -> None:
    users = tg_users(fast, 2)
    enqueue(fast, users)
    fake = fast.dispatcher.senders.pop("telegram")
    await run_sender(fast)
    await asyncio.sleep(0.1)
    assert outbox_statuses(fast) == {"pending": 2}
    fast.dispatcher.senders["telegram"] = fake
    await until(lambda: outbox_statuses(fast) == {"sent": 2}, "the channel to come up")
    await fast.outbox.stop_sender()


async def test_a_clean_stop_hands_back_what_it_had_not_sent(fast: App) -> None:
    fast.outbox.config = fast.outbox.config.model_copy(update={"rate": 50.0, "burst": 1})
    enqueue(fast, tg_users(fast, 60))
    await run_sender(fast)
    await until(lambda: len(channel(fast).got) >= 5, "a few sends")
    await fast.outbox.stop_sender()
    counts = outbox_statuses(fast)
    assert "claimed" not in counts and counts["sent"] == len(channel(fast).got)
    assert counts["pending"] == 60 - counts["sent"]


# ---- the incident alert, through the dispatcher ----------------------------------------------------------


async def test_the_incident_alert_is_a_row_on_the_priority_lane(demo: App, chat_as: Any) -> None:
    from tests.handlers.helpers import fill_incident, inbox_texts

    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    alerts = rows(demo, kind=ALERT)
    assert len(alerts) == 2 and {r.status for r in alerts} == {"sent"}  # officer and leader
    assert all(r.priority == PRIORITY_ALERT and not r.quiet and r.period == "incident:1" for r in alerts)
    assert any("SỰ CỐ TRUYỀN THÔNG #1" in t for t in inbox_texts(demo, "officer"))


async def test_an_incident_stored_is_an_incident_alerted_even_if_the_bot_dies_at_once(
    demo: App, chat_as: Any, settings: Settings, clock: Any
) -> None:
    """The alert is written in the incident's own transaction: a bot that dies the moment the handler
    returns (before any sending) has lost nothing, and the next process alerts everyone once."""
    from tests.handlers.helpers import fill_incident, inbox_texts

    principal = chat_as("principal")
    await fill_incident(principal)
    press = Incoming(
        "console", "principal", "principal", Kind.CHOICE, choice=principal.value_of("Gửi"), update_id="9001"
    )
    done = await demo.dispatcher.transact(press)  # handled and committed; nothing delivered yet
    assert done is not None
    replies, queued = done
    assert "#1" in replies[0].text and len(queued) == 2  # the principal was told it is sent ...
    # ... and here the process dies: nothing was sent, but both alerts are already rows.
    alerts = rows(demo, kind=ALERT)
    assert len(alerts) == 2 and {r.status for r in alerts} == {"pending"}
    assert not any("SỰ CỐ" in t for t in inbox_texts(demo, "officer"))

    with open_app(settings, clock) as restarted:
        await restarted.dispatcher.handle(press)  # the platform redelivers the update: nothing new
        await run_sender(restarted)
        await until(lambda: {r.status for r in rows(restarted, kind=ALERT)} == {"sent"}, "both alerts sent")
        await restarted.outbox.stop_sender()
        for who in ("officer", "leader"):
            assert sum("SỰ CỐ TRUYỀN THÔNG #1" in t for t in inbox_texts(restarted, who)) == 1
        assert len(rows(restarted, kind=ALERT)) == 2
        with restarted.db.session() as s:
            assert len(s.exec(select(Incident)).all()) == 1


async def test_an_acknowledgement_tells_the_school_once(demo: App, chat_as: Any) -> None:
    """The notice to the school is a row keyed by the acknowledgement: pressing again adds none."""
    from tests.handlers.helpers import fill_incident, inbox_texts

    principal = chat_as("principal")
    await fill_incident(principal)
    await principal.press("Gửi")
    officer = chat_as("officer")
    await officer.send("/incidents")
    ack = officer.value_of("Đã nắm thông tin")
    await officer.press("Đã nắm thông tin")
    await officer.send(ack)  # the same button again: already acknowledged, no second notice
    notices = rows(demo, kind=NOTICE)
    assert [(r.period, r.status) for r in notices] == [("ack:1", "sent")]
    assert sum("#1" in t for t in inbox_texts(demo, "principal")) == 1


async def test_messages_to_others_from_one_update_are_enqueued_once(fast: App) -> None:
    [user] = tg_users(fast, 1)
    first = fast.outbox.enqueue_direct("telegram:100", {user.id or 0: [Reply("a"), Reply("b")]})
    again = fast.outbox.enqueue_direct("telegram:100", {user.id or 0: [Reply("a"), Reply("b")]})
    assert first == again and len(first) == 2
    await fast.outbox.deliver_now(first)
    await fast.outbox.deliver_now(again)
    assert channel(fast).texts_to(user.chat_id) == ["a", "b"]


# ---- claims from several workers --------------------------------------------------------------------------


def test_concurrent_claims_take_disjoint_rows_on_sqlite(fast: App) -> None:
    enqueue(fast, tg_users(fast, 200))
    claimed: list[list[int]] = []

    def claimer(name: str) -> None:
        got: list[int] = []
        while True:
            with fast.db.session() as s:
                batch = q.claim_outbox(
                    s,
                    owner=name,
                    now=fast.clock.now(),
                    lease_until=fast.clock.now(),
                    limit=7,
                    channels=["telegram"],
                    bulk=True,
                )
            if not batch:
                break
            got += [r.id or 0 for r in batch]
        claimed.append(got)

    at_once(*(partial(claimer, f"w{i}") for i in range(4)))
    every = [i for got in claimed for i in got]
    assert len(every) == len(set(every)) == 200
