"""The outbox on PostgreSQL: SKIP LOCKED claims, concurrent sweeps, leases, the sender end to end.

Skips (saying why) when there is no local server, like test_postgres.py.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session, col, select

from bot.app import App
from handlers import reminders
from handlers.types import Reply
from storage import queries as q
from storage.models import Outbox, School, User
from tests import support
from tests.storage.test_postgres import pg_app_fixture, pg_url_fixture  # noqa: F401  (fixtures)
from tests.support import at_once, frozen


def add_principals(app: App, n: int, channel: str = "telegram") -> list[User]:
    with app.db.session() as s:
        places = [(sc.id, sc.office_id) for sc in s.exec(select(School).order_by(col(School.id)))]
    return support.add_principals(app, n, places, 600, channel)


def test_concurrent_sweeps_on_postgres_create_each_row_once(pg_app: App) -> None:
    add_principals(pg_app, 30)
    frozen(pg_app).set(datetime(2026, 11, 10, 8, 0))
    created: list[int] = []

    def run() -> None:
        created.append(reminders.sweep(pg_app.db, pg_app.clock, pg_app.settings, pg_app.catalog).created)

    at_once(*[run] * 4)
    with pg_app.db.session() as s:
        rows = s.exec(select(Outbox)).all()
    assert sum(created) == len(rows) == 31  # the 30 and the demo principal


def test_a_claim_skips_rows_another_transaction_holds(pg_app: App) -> None:
    add_principals(pg_app, 10)
    frozen(pg_app).set(datetime(2026, 11, 10, 8, 0))
    reminders.sweep(pg_app.db, pg_app.clock, pg_app.settings, pg_app.catalog)
    now = pg_app.clock.now()
    args: dict[str, Any] = {"now": now, "lease_until": now, "channels": ["telegram", "console"], "bulk": True}
    with Session(pg_app.db.engine) as first, first.begin():
        held = {r.id for r in q.claim_outbox(first, owner="a", limit=4, **args)}  # uncommitted: locked
        with Session(pg_app.db.engine) as second, second.begin():
            other = {r.id for r in q.claim_outbox(second, owner="b", limit=100, **args)}  # no waiting
    assert len(held) == 4 and len(other) == 7
    assert not held & other


def test_many_claimers_on_postgres_take_disjoint_rows(pg_app: App) -> None:
    add_principals(pg_app, 120)
    frozen(pg_app).set(datetime(2026, 11, 10, 8, 0))
    reminders.sweep(pg_app.db, pg_app.clock, pg_app.settings, pg_app.catalog)
    taken: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while True:
            with pg_app.db.session() as s:
                now = pg_app.clock.now()
                batch = q.claim_outbox(
                    s,
                    owner=name,
                    now=now,
                    lease_until=now,
                    limit=9,
                    channels=["telegram", "console"],
                    bulk=True,
                )
            if not batch:
                return
            with lock:
                taken.extend(r.id or 0 for r in batch)

    at_once(*(partial(claimer, f"w{i}") for i in range(5)))
    assert len(taken) == len(set(taken)) == 121


def test_leases_on_postgres(pg_app: App) -> None:
    now = pg_app.clock.now()
    later = datetime(2030, 1, 1, tzinfo=pg_app.clock.tz)
    with pg_app.db.session() as s:
        assert q.take_lease(s, "sender", "a", now, later)
        assert not q.take_lease(s, "sender", "b", now, later)
        assert q.take_lease(s, "sender", "a", now, later)  # renewing
        assert q.take_lease(
            s, "sender", "b", later + timedelta(seconds=1), later + timedelta(hours=1)
        )  # expired


async def test_the_sender_end_to_end_on_postgres(pg_app: App) -> None:
    users = add_principals(pg_app, 12)
    got: list[str] = []

    async def fake(user: User, replies: list[Reply]) -> None:
        got.append(user.chat_id)

    pg_app.dispatcher.senders["telegram"] = fake
    frozen(pg_app).set(datetime(2026, 11, 10, 8, 0))
    reminders.sweep(pg_app.db, pg_app.clock, pg_app.settings, pg_app.catalog)
    pg_app.outbox.start_sender("pg")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(got) < 12 and loop.time() < deadline:
        await asyncio.sleep(0.01)
    await pg_app.outbox.stop_sender()
    assert sorted(got) == sorted(u.chat_id for u in users)
    with pg_app.db.session() as s:
        assert {r.status for r in s.exec(select(Outbox))} == {"sent"}
