"""The PostgreSQL path, for real: migrations, the incident flow, dedupe. Skips (saying why) without a server."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, update
from sqlmodel import SQLModel, col, func, select

from bot.app import App, open_app
from bot.config import load_settings
from bot.demo import seed_demo
from handlers.calendar import FrozenClock
from storage import migrate
from storage import queries as q
from storage.db import Database
from storage.models import Incident, IncidentAck, Office, Received, School, Submission, User
from tests.conftest import Chat
from tests.handlers.helpers import fill_incident, inbox_texts
from tests.support import pg_admin, pg_database_url


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_template: str) -> Iterator[str]:
    """A database of its own on the local server, a copy of the session's migrated one; dropped afterwards."""
    name = f"schoolbot_test_{secrets.token_hex(4)}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    yield pg_database_url(name)
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(name="pg_app")
def pg_app_fixture(pg_url: str, clock: FrozenClock) -> Iterator[App]:
    settings = load_settings(None, database_url=pg_url)
    with open_app(settings, clock, upgrade=False) as app:
        migrate.upgrade(app.db)
        with app.db.session() as s:
            seed_demo(s, clock.now())
        yield app


def test_migrations_build_exactly_the_models_on_postgres(pg_app: App) -> None:
    with pg_app.db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []


async def test_incident_flow_on_postgres(pg_app: App) -> None:
    principal = Chat(pg_app, "principal")
    await fill_incident(principal)
    send = principal.value_of("Gửi")
    replies = await principal.press("Gửi")
    assert "#1" in replies[0].text
    from handlers.types import Incoming, Kind

    again = await pg_app.dispatcher.handle(
        Incoming("console", "principal", "principal", Kind.CHOICE, choice=send, update_id="x")
    )
    assert "này đã được gửi." in again[0].text
    assert any("SỰ CỐ TRUYỀN THÔNG #1" in t for t in inbox_texts(pg_app, "officer"))
    officer = Chat(pg_app, "officer")
    await officer.session.run([])
    await officer.send("1")
    with pg_app.db.session() as s:
        assert s.exec(select(func.count()).select_from(Submission)).one() == 1
        assert s.exec(select(func.count()).select_from(IncidentAck)).one() == 1


async def test_redelivery_is_dropped_on_postgres(pg_app: App) -> None:
    from handlers.types import Incoming, Kind

    msg = Incoming("console", "principal", "principal", Kind.COMMAND, command="help", update_id="77")
    assert await pg_app.dispatcher.handle(msg)
    assert await pg_app.dispatcher.handle(msg) == []


async def test_find_and_published_on_postgres(pg_app: App) -> None:
    from tests.handlers.test_vetting import seed_articles

    seed_articles(pg_app, 3, status="approved")
    officer = Chat(pg_app, "officer")
    found = await officer.send("/find PU NHI bai so thang 11")
    assert "“pu nhi bai so” · tháng 11/2026: 3 mục" in found[0].text
    assert "Không tìm thấy" in (await officer.send("/find pu nhi tháng 10"))[0].text
    waiting = await officer.send("/published")
    assert "3 bài đã duyệt, chưa ghi nhận đăng" in waiting[0].text


@pytest.fixture(name="either_db", params=["sqlite", "postgresql"])
def either_db_fixture(request: pytest.FixtureRequest) -> Iterator[Database]:
    """The test's own migrated database on each engine in turn (PostgreSQL skips, saying why, without a server)."""
    db = Database(request.getfixturevalue("database_url" if request.param == "sqlite" else "pg_url"))
    yield db
    db.dispose()


def test_a_submission_and_its_incident_are_made_once_and_read_back_whole(either_db: Database) -> None:
    """The insert returns the row it made (one round trip); the same token again finds that row."""
    db = either_db
    now = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    with db.session() as s:
        seed_demo(s, now)
        school = q.school_by_code(s, "THCS-PUNHI")
        assert school is not None and school.id is not None
        user = s.exec(select(User).where(User.school_id == school.id)).first()
        assert user is not None and user.id is not None
        made = [
            q.create_submission(
                s,
                kind="incident",
                school_id=school.id,
                user_id=user.id,
                token="tok-1",
                answers={"what": "Tin sai"},
                status="submitted",
                now=now,
            )
            for _ in range(2)
        ]
        (first, created), (again, created_again) = made
        assert (created, created_again) == (True, False)
        assert first is again and first.id is not None  # the same row, in the session
        assert (first.answers, first.version, first.created_at) == ({"what": "Tin sai"}, 1, now)
        incidents = [q.create_incident(s, first, "high", now, phone="0912") for _ in range(2)]
        assert incidents[0] is incidents[1] and incidents[0].state == "new"
        assert incidents[0].phone == "0912" and incidents[0].created_at == now
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(Submission)).one() == 1
        assert s.exec(select(func.count()).select_from(Incident)).one() == 1


def test_a_new_draft_replaces_the_older_one_and_comes_back_as_stored(either_db: Database) -> None:
    """Starting a form drops the user's older draft of it and inserts the new one in one round trip
    each; the draft comes back with its id, version 1, a fresh token and the answers as stored."""
    db = either_db
    now = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    with db.session() as s:
        seed_demo(s, now)
        user = q.get_user(s, "console", "principal")
        assert user is not None and user.id is not None
        uid = user.id
        first_token = q.start_draft(s, uid, "incident", "what", now, {"what": "Tin sai"}).token
        again = q.start_draft(s, uid, "incident", "when", now, {"n": (1, 2)})
        other = q.start_draft(s, uid, "article", "theme", now, {})
    assert again.id is not None
    assert (again.step, again.mode, again.version, again.answers) == ("when", "fill", 1, {"n": [1, 2]})
    assert len(again.token) == 32 and again.token != first_token
    with db.session() as s:
        assert q.get_draft(s, uid, "incident") is not None
        assert [d.id for d in q.drafts_of(s, uid)] == sorted([again.id, other.id or 0], reverse=True)


def test_on_postgresql_a_form_started_twice_at_once_keeps_the_first_and_says_stale(pg_url: str) -> None:
    """Two transactions start the same user's form at once: the second waits for the first's row and
    then finds it made (StaleDraft, which the form engine answers as a stale button), not a unique
    constraint's error; the first one's draft stands."""
    db = Database(pg_url)
    now = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    try:
        with db.session() as s:
            seed_demo(s, now)
            user = q.get_user(s, "console", "principal")
            assert user is not None and user.id is not None
            uid = user.id
        failed: list[BaseException] = []
        waiting = threading.Event()

        def second() -> None:
            try:
                with db.session() as s:
                    waiting.set()
                    q.start_draft(s, uid, "incident", "when", now, {"by": "second"})
            except BaseException as exc:  # what it raised is the point
                failed.append(exc)

        with db.session() as s:
            mine = q.start_draft(s, uid, "incident", "what", now, {"by": "first"})
            other = threading.Thread(target=second)
            other.start()
            waiting.wait(5)
            blocked = _wait_for_lock_wait(db)
        other.join(10)
        assert blocked, "the second transaction never waited on the first's row"
        assert [type(exc).__name__ for exc in failed] == ["StaleDraft"]
        with db.session() as s:
            stored = q.get_draft(s, uid, "incident")
            assert stored is not None and (stored.id, stored.answers) == (mine.id, {"by": "first"})
    finally:
        db.dispose()


def _wait_for_lock_wait(db: Database) -> bool:
    """True once another backend of this database waits on a lock (up to 5 s)."""
    probe = Database(db.url)
    try:
        for _ in range(100):
            with probe.engine.connect() as conn:
                waits = conn.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                ).scalar()
            if waits:
                return True
            time.sleep(0.05)
        return False
    finally:
        probe.dispose()


def test_an_offices_chain_is_one_query_nearest_first_and_a_loop_ends_it(either_db: Database) -> None:
    db = either_db
    statements: list[str] = []
    now = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)
    with db.session() as s:
        province = Office(code="P", name="Sở", kind="province")
        s.add(province)
        s.flush()
        district = Office(code="D", name="Phòng", kind="district", parent_id=province.id)
        s.add(district)
        s.flush()
        ward = Office(code="W", name="Cụm", kind="district", parent_id=district.id)
        s.add(ward)
        s.flush()
        assert province.id is not None and district.id is not None and ward.id is not None
        ids = (province.id, district.id, ward.id)
        aside = Office(code="X", name="Phòng khác", kind="district", parent_id=province.id)
        s.add(aside)
        s.flush()
        school = School(code="S", name="Trường", name_folded="truong", level="THCS", office_id=ward.id)
        s.add(school)
        staff = [("d", district.id, "officer"), ("p", province.id, "leader"), ("x", aside.id, "officer")]
        staff += [("w", ward.id, "principal")]
        for who, office, role in staff:
            s.add(
                User(
                    channel="telegram",
                    external_id=who,
                    chat_id=who,
                    role=role,
                    office_id=office,
                    created_at=now,
                )
            )
        s.flush()
        school_id = school.id
    event.listen(db.engine, "before_cursor_execute", lambda _c, _cur, sql, *_: statements.append(sql))
    with db.session() as s:
        assert [o.code for o in q.office_chain(s, ids[2])] == ["W", "D", "P"]
        assert len([x for x in statements if "office" in x]) == 1  # one statement, not one a level
        assert [o.code for o in q.office_chain(s, ids[0])] == ["P"]
        assert q.office_chain(s, 999_999) == []
        statements.clear()
        assert [u.external_id for u in q.staff_over_school(s, school_id or 0)] == ["d", "p"]
        reads = [x for x in statements if not x.startswith("BEGIN")]
        assert len(reads) == 2 and "FROM school" in reads[0]  # the school, then offices and staff at once
    with db.session() as s:  # P's parent made W: a loop
        s.exec(update(Office).where(col(Office.id) == ids[0]).values(parent_id=ids[2]))
    with db.session() as s:
        assert [o.code for o in q.office_chain(s, ids[1])] == ["D", "P", "W"]
        assert [u.external_id for u in q.staff_over_school(s, school_id or 0)] == ["d", "p"]


async def test_database_threads_run_side_by_side_each_with_a_pooled_connection(
    pg_url: str, clock: FrozenClock
) -> None:
    """On PostgreSQL `database_threads` units run side by side (all of them meet at a barrier), each with
    a pooled connection of its own, and some are left for the claims, the outbox and the clock."""
    for threads in (3, 6):
        settings = load_settings(None, database_url=pg_url, database_threads=threads)
        with open_app(settings, clock, upgrade=False) as app:
            workers = app.dispatcher.workers
            assert workers.size == threads
            assert app.db.engine.pool.size() == threads + 8  # type: ignore[attr-defined]
            barrier = threading.Barrier(threads, timeout=10)  # broken unless all run at once
            await asyncio.gather(*(workers.run(barrier.wait) for _ in range(threads)))


def received_rows(app: App) -> dict[str, tuple[str, str, dict[str, Any], datetime]]:
    """The durable inbox as stored: key -> (channel, chat, payload, received_at)."""
    with app.db.session() as s:
        rows = s.exec(select(Received)).all()
        return {r.key: (r.channel, r.chat, r.payload, r.received_at) for r in rows}


async def test_updates_stored_prepared_are_the_rows_a_unit_stores(pg_app: App, clock: FrozenClock) -> None:
    """On PostgreSQL the dispatcher stores arriving updates with an INSERT prepared on a connection of
    its own (one round trip): the rows are those `store_received` writes in a unit, payload (quotes,
    backslashes, Vietnamese) and UTC time alike; a redelivery adds nothing, a key twice is the first's."""
    tricky = {"update_id": 1, "message": {"text": "Trường 'Hoa Sen' \\ \"x\" ✓\n", "chat": {"id": 7}}}
    d = pg_app.dispatcher
    first = q.Arrival("telegram:1", "7", tricky)
    same_twice = [q.Arrival("zalo:9", "z", {"n": 1}), q.Arrival("zalo:9", "z", {"n": 2})]
    stored, zalo = await asyncio.gather(d.receive("telegram", [first]), d.receive("zalo", same_twice))
    assert set(stored) == {"telegram:1"} and set(zalo) == {"zalo:9"}
    assert d.store_link is not None and d.store_link.generation == 1  # the prepared way, not a unit
    with pg_app.db.session() as s:  # the unit's way, for comparison
        q.store_received(s, "telegram", [q.Arrival("telegram:2", "7", tricky)], clock.now())
    rows = received_rows(pg_app)
    expected_time = clock.now().astimezone(UTC)
    assert rows["telegram:1"] == ("telegram", "7", tricky, expected_time)
    assert rows["telegram:1"][1:] == rows["telegram:2"][1:]
    assert rows["zalo:9"] == ("zalo", "z", {"n": 1}, expected_time)
    assert await d.receive("telegram", [first]) == {}  # stored already: nothing new
    assert len(received_rows(pg_app)) == 3


async def test_a_store_whose_connection_was_dropped_goes_as_a_unit_and_says_so_once(
    pg_app: App, caplog: pytest.LogCaptureFixture
) -> None:
    """The store's own connection ended by the server (a restart): the next updates are stored all the
    same, as a unit, with one line for the fault; the store after that makes a new connection."""
    d = pg_app.dispatcher
    assert await d.receive("telegram", [q.Arrival("telegram:1", "1", {"update_id": 1})])
    assert d.store_link is not None and d.store_link.conn is not None
    backend = d.store_link.conn.info.backend_pid
    with pg_admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (backend,))
    with caplog.at_level("INFO", logger="schoolbot.dispatch"):
        assert await d.receive("telegram", [q.Arrival("telegram:2", "1", {"update_id": 2})])
    said = [r.getMessage() for r in caplog.records if "as a unit" in r.getMessage()]
    assert len(said) == 1
    with caplog.at_level("INFO", logger="schoolbot.dispatch"):
        assert await d.receive("telegram", [q.Arrival("telegram:3", "1", {"update_id": 3})])
    assert d.store_link.generation == 2 and d.store_link.conn.info.backend_pid != backend
    assert [r.getMessage() for r in caplog.records].count(
        "updates are stored on their own connection again"
    ) == 1
    assert set(received_rows(pg_app)) == {"telegram:1", "telegram:2", "telegram:3"}
