"""The shared inbox's chat locks (bot/claims.py `ChatLocks`) on a real PostgreSQL server: two workers,
each with its locks connection, taking the chats' oldest stored updates.

A session's advisory lock is granted again to the same session, so the places of one worker must be
kept apart by the worker itself: these tests fail if a chat could be taken twice at once, by two places
of one worker or by two workers, or if a lock outlived its connection or its release.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest

from bot.claims import ChatLocks, Claim, Claims, Hold, Payloads
from bot.workers import Workers
from storage import queries as q
from storage.db import Database
from storage.queries.locks import CHAT_LOCKS, Stored
from tests.storage.test_postgres import pg_url_fixture as pg_url_fixture  # a database of its own
from tests.support import pg_admin, until

NOW = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)


@pytest.fixture(name="db")
def db_fixture(pg_url: str) -> Iterator[Database]:
    db = Database(pg_url)
    yield db
    db.dispose()


def store(db: Database, *updates: tuple[int, str]) -> None:
    """Stored updates (update id, chat), in this order."""
    arrivals = [q.Arrival(f"telegram:{u}", chat, {"update_id": u}) for u, chat in updates]
    with db.session() as s:
        q.store_received(s, "telegram", arrivals, NOW)


def handled(head: Stored, locks: ChatLocks, hold: Hold) -> None:
    """A claim's end: the update's row goes, then its chat is let go."""
    locks.finish(hold, [head.id], [], "")


def taken(locks: ChatLocks) -> tuple[Stored, Hold]:
    head, hold, _ = taken_more(locks)
    return head, hold


def taken_more(locks: ChatLocks) -> tuple[Stored, Hold, bool]:
    """A take that finds an update not handled yet: it, its hold, whether another chat's update waits."""
    found = locks.take()
    assert found is not None
    head, was_handled, hold, more = found
    assert not was_handled
    return head, hold, more


def update_of(head: Stored) -> int:
    return int(head.payload["update_id"])


def test_each_chat_is_held_by_one_place_and_its_next_update_waits_for_the_first(db: Database) -> None:
    """Two workers (each a locks connection): a chat's oldest update is taken by one place only, by a
    place of the same worker neither (the server would grant its lock again), and the chat's next
    update is taken only once the first is handled and let go, by whichever worker looks."""
    store(db, (1, "a"), (2, "a"), (3, "b"))
    one, two = ChatLocks(db, "telegram"), ChatLocks(db, "telegram")
    try:
        first, first_hold = taken(one)
        assert update_of(first) == 1
        assert locks_held(one) == 1  # only the chat taken: not every candidate tried
        second, second_hold = taken(one)  # another place of the same worker: not chat a again
        assert update_of(second) == 3
        assert one.take() is None and two.take() is None  # a and b held; a's second waits
        assert locks_held(one) == 2 and locks_held(two) == 0
        handled(first, one, first_hold)
        assert locks_held(one) == 1
        assert update_of(taken(two)[0]) == 2  # the other worker, now that a's first is gone
        assert one.take() is None
        handled(second, one, second_hold)
        assert one.take() is None  # nothing left but what `two` holds
    finally:
        one.close()
        two.close()


def test_a_claims_end_takes_the_next_chat_in_the_same_round_trip(db: Database) -> None:
    """A place that lets go of its chat takes the next update waiting in the same call: the chat's own
    next update among them, which it can take only because the first one's row is gone, committed, and
    its lock let go before the take (the other worker cannot take it meanwhile)."""
    store(db, (1, "a"), (2, "a"), (3, "b"))
    one, two = ChatLocks(db, "telegram"), ChatLocks(db, "telegram")
    try:
        first, hold = taken(one)
        assert update_of(taken(two)[0]) == 3  # b, held by the other worker
        following = one.finish(hold, [first.id], [], "", take=True)
        assert following is not None
        head, was_handled, next_hold, _ = following
        assert (update_of(head), was_handled) == (2, False)
        assert next_hold.lock == hold.lock and one.held == {hold.lock}  # chat a again, held once
        assert locks_held(one) == 1 and two.take() is None
        assert one.finish(next_hold, [head.id], [], "", take=True) is None  # nothing else waiting
        assert locks_held(one) == 0 and not one.held
        assert two.take() is None and locks_held(two) == 1  # b is still the other's, and nothing waits
    finally:
        one.close()
        two.close()


def test_a_worker_whose_connection_ends_lets_its_chats_go_at_once(db: Database) -> None:
    """The server ends the locks connection of a worker (as when its process dies, or restarts):
    another worker takes the chat at once. The first worker's end of the lost hold fails and drops the
    connection, and its next look makes a new one, which cannot take the chats the other holds."""
    store(db, (1, "a"), (2, "b"))
    one, two = ChatLocks(db, "telegram"), ChatLocks(db, "telegram")
    try:
        head, hold = taken(one)
        assert update_of(head) == 1
        assert update_of(taken(two)[0]) == 2
        assert two.take() is None
        with pg_admin() as admin:
            ended = admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM unnest(%s) AS pid", (locks_pids(one),)
            )
            ended = ended.fetchall()
        assert ended == [(True,)]
        again, _ = taken(two)  # chat a, let go with the connection that held it
        assert update_of(again) == 1
        with pytest.raises(psycopg.OperationalError):  # its end fails (Claims falls back to the outbox's way)
            handled(head, one, hold)
        assert one.link.pooled is None and not one.held
        assert one.take() is None  # a new connection: a and b are the other worker's
        assert one.link.generation == 2 and locks_held(one) == 0
    finally:
        one.close()
        two.close()


def test_a_stop_lets_every_chat_go(db: Database) -> None:
    """Closing a worker's locks (its channel stops with updates taken but not handled) lets go of
    every chat it held: another worker takes their updates."""
    store(db, (1, "a"), (2, "b"))
    one, two = ChatLocks(db, "telegram"), ChatLocks(db, "telegram")
    try:
        assert sorted(update_of(taken(one)[0]) for _ in range(2)) == [1, 2]
        assert two.take() is None
        one.close()
        assert sorted(update_of(taken(two)[0]) for _ in range(2)) == [1, 2]
    finally:
        one.close()
        two.close()


def test_an_update_found_handled_says_so(db: Database) -> None:
    """The head's key was handled already (a worker lost its hold after its unit committed): the take
    says so, in the read made after the lock; another chat's update does not."""
    store(db, (1, "a"), (2, "b"))
    with db.session() as s:
        assert q.first_time_seen(s, "telegram:1", NOW)
    locks = ChatLocks(db, "telegram")
    try:
        found = [locks.take() for _ in range(2)]
        assert [(update_of(f[0]), f[1]) for f in found if f is not None] == [(1, True), (2, False)]
    finally:
        locks.close()


def locks_pids(locks: ChatLocks) -> list[int]:
    """The server's process behind a worker's locks connection."""
    assert locks.link.conn is not None
    with locks.mutex:
        return [int(locks.link.conn.execute("SELECT pg_backend_pid()").fetchone()[0])]


def locks_held(locks: ChatLocks) -> int:
    """How many chat locks the server sees held by a worker's locks connection (each taken once)."""
    with pg_admin() as admin:
        found = admin.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND granted"
            " AND pid = ANY(%s)",
            (CHAT_LOCKS, locks_pids(locks)),
        ).fetchone()
    return int(found[0]) if found else 0


async def test_a_database_that_cannot_be_read_is_one_line_for_every_place_and_one_when_it_can_again(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Four places look every 20 ms while the inbox cannot be read (its table gone, as in a restore):
    one warning, not one a look; one line when it reads again, and the update stored meanwhile is handled."""
    handled_ids: list[int] = []

    async def handle(payloads: Payloads) -> None:
        handled_ids.extend(int(p["update_id"]) for p in payloads)

    workers = Workers(2)
    claims = Claims(db, workers, "telegram", handle, places=4, poll=0.02)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE received RENAME TO received_away")
    caplog.set_level(logging.INFO, logger="schoolbot.claims")
    claims.start()
    try:
        await asyncio.sleep(0.5)  # some 100 looks
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE received_away RENAME TO received")
        store(db, (7, "a"))
        claims.kick()
        await until(lambda: handled_ids == [7], "the update stored meanwhile handled")
    finally:
        await claims.stop()
        workers.close()
    said = [r.getMessage() for r in caplog.records if r.name == "schoolbot.claims"]
    assert len([line for line in said if line.startswith("could not look for stored telegram")]) == 1
    assert said.count("stored telegram updates can be read again") == 1


def test_a_take_says_whether_another_chats_update_waits(db: Database) -> None:
    """So that a place wakes another only when there is something for it: chats a and b waiting, the
    take of a says b waits; the take of b (a held here) says nothing else does, nor does a's second
    update, which waits for a's first."""
    store(db, (1, "a"), (2, "b"), (3, "a"))
    locks = ChatLocks(db, "telegram")
    try:
        first, _, more = taken_more(locks)
        assert update_of(first) == 1 and more
        second, _, more = taken_more(locks)
        assert update_of(second) == 2 and not more
    finally:
        locks.close()


class CountedClaims(Claims):
    """Claims that count their places' looks (a take each)."""

    looks = 0

    def take(self) -> Claim | None:
        self.looks += 1
        return super().take()


async def test_a_lone_update_costs_one_look_and_two_chats_updates_wake_a_second_place(db: Database) -> None:
    """Four places, nothing stored: each looks once (and one more for the start's kick). A lone update:
    the place that takes it wakes no other, and after its let-go (which looked for the next in its
    round trip) it waits: one look in all. Two chats' updates: both are handled."""
    handled_ids: list[int] = []

    async def handle(payloads: Payloads) -> None:
        handled_ids.extend(int(p["update_id"]) for p in payloads)

    workers = Workers(2)
    claims = CountedClaims(db, workers, "telegram", handle, places=4, poll=60.0)
    claims.start()
    try:
        await until(lambda: claims.looks == 5, "each place's first look, and the start's kick")
        for update_id, chat in ((1, "a"), (2, "b")):
            looked = claims.looks
            store(db, (update_id, chat))
            claims.kick()
            await until(lambda: handled_ids[-1:] == [update_id], "the lone update handled")  # noqa: B023
            await asyncio.sleep(0.2)  # a place woken meanwhile would have looked by now
            assert claims.looks == looked + 1
        store(db, (3, "c"), (4, "d"))
        claims.kick()
        await until(lambda: sorted(handled_ids) == [1, 2, 3, 4], "both chats' updates handled")
    finally:
        await claims.stop()
        workers.close()
