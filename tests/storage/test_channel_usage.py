"""A channel's monthly message count: a reservation is checked and counted in one statement.

On SQLite and on PostgreSQL (skipped, saying why, without a local server).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from storage import queries as q
from storage.db import Database
from tests.storage.test_postgres import pg_url_fixture  # noqa: F401  (fixture)
from tests.support import at_once


@pytest.fixture(name="db", params=["sqlite", "postgresql"])
def db_fixture(request: pytest.FixtureRequest, database_url: str) -> Iterator[Database]:
    """A migrated database of the test's own on each engine."""
    url = database_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    db = Database(url)
    yield db
    db.dispose()


def reserve(db: Database, count: int, limit: int, month: str = "2026-11") -> bool:
    """One reservation for Zalo in its own transaction."""
    with db.session() as s:
        return q.reserve_usage(s, "zalo", month, count, limit)


def used(db: Database, month: str = "2026-11") -> int:
    """Zalo's count for `month`."""
    with db.session() as s:
        return q.usage(s, "zalo", month)


def test_a_reservation_takes_messages_only_while_they_fit(db: Database) -> None:
    assert reserve(db, 2, limit=3) and used(db) == 2
    assert not reserve(db, 2, limit=3) and used(db) == 2  # refused: nothing counted
    assert reserve(db, 1, limit=3) and used(db) == 3
    assert not reserve(db, 1, limit=3)
    with db.session() as s:
        assert q.add_usage(s, "zalo", "2026-11", -1) == 2  # a message that did not go is given back
    assert reserve(db, 1, limit=3) and used(db) == 3
    assert reserve(db, 3, limit=3, month="2026-12") and used(db, "2026-12") == 3  # each month its own


def test_senders_racing_for_the_last_messages_take_exactly_the_limit(db: Database) -> None:
    start = threading.Barrier(8)
    taken: list[bool] = []

    def sender() -> None:
        start.wait()
        for _ in range(3):
            taken.append(reserve(db, 1, limit=10))

    at_once(*[sender] * 8)

    assert (taken.count(True), taken.count(False), used(db)) == (10, 14, 10)
