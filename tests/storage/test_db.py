"""The engine, the schema and the migrations, on real SQLite files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlmodel import SQLModel, func, select

from storage import migrate
from storage import queries as q
from storage.db import Database, insert_ignore, table_of
from storage.models import Office, ProcessedUpdate
from tests.support import at_once


def test_migrations_build_exactly_the_models(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    assert migrate.current(db) is not None
    migrate.upgrade(db)  # a second upgrade is a no-op
    db.dispose()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'p.db'}")
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        busy_timeout = conn.execute(text("PRAGMA busy_timeout")).scalar()
        assert busy_timeout is not None and busy_timeout >= 5000
    db.dispose()


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    import pytest
    from sqlalchemy.exc import IntegrityError

    db = Database(f"sqlite:///{tmp_path / 'f.db'}")
    migrate.upgrade(db)
    with pytest.raises(IntegrityError), db.session() as s:
        s.add(Office(code="X", name="X", kind="district", parent_id=12345))
    db.dispose()


def test_concurrent_writers_never_hit_database_is_locked(tmp_path: Path) -> None:
    """Two processes' worth of engines writing at once: every write lands, none fails."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    migrate.upgrade(Database(url))
    errors: list[BaseException] = []
    now = datetime.now(UTC)

    def writer(prefix: str) -> None:
        db = Database(url)
        try:
            for i in range(150):
                with db.session() as s:
                    count = s.exec(select(func.count()).select_from(ProcessedUpdate)).one()
                    insert_ignore(
                        s, table_of(ProcessedUpdate), {"key": f"{prefix}:{i}:{count}", "created_at": now}
                    )
        except BaseException as exc:
            errors.append(exc)
        finally:
            db.dispose()

    at_once(*(partial(writer, name) for name in ("a", "b", "c")))
    assert errors == []
    db = Database(url)
    with db.session() as s:
        assert s.exec(select(func.count()).select_from(ProcessedUpdate)).one() == 450
    db.dispose()


def test_datetimes_come_back_aware_in_utc(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 't.db'}")
    migrate.upgrade(db)
    hanoi = timezone(timedelta(hours=7))
    at = datetime(2026, 11, 15, 23, 59, tzinfo=hanoi)
    with db.session() as s:
        assert q.first_time_seen(s, "tg:1", at)
        assert not q.first_time_seen(s, "tg:1", at)
    with db.session() as s:
        row = s.get(ProcessedUpdate, "tg:1")
        assert row is not None and row.created_at == at and row.created_at.tzinfo is not None
        assert q.forget_updates_before(s, at + timedelta(seconds=1)) == 1
    db.dispose()


def test_upgrading_a_database_with_data_keeps_it_and_downgrade_works(tmp_path: Path) -> None:
    from bot.demo import seed_demo
    from storage.models import Submission

    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    migrate.upgrade(db, "0001")
    now = datetime.now(UTC)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO office (code, name, kind) VALUES ('P', 'P', 'district')"))
        conn.execute(
            text(
                "INSERT INTO school (code, name, name_folded, level, office_id) VALUES ('S', 'S', 's', 'TH', 1)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO user (channel, external_id, chat_id, display_name, blocked, menu, created_at, locale) "
                "VALUES ('console', 'u', 'u', '', 0, '{}', :now, '')"
            ),
            {"now": now.replace(tzinfo=None)},
        )
        conn.execute(
            text(
                "INSERT INTO submission (kind, school_id, user_id, status, answers, token, version, created_at, updated_at) "
                "VALUES ('incident', 1, 1, 'submitted', '{}', 't', 1, :now, :now)"
            ),
            {"now": now.replace(tzinfo=None)},
        )
    migrate.upgrade(db)
    with db.session() as s:
        row = s.exec(select(Submission)).one()
        assert row.late is False and row.review_note == "" and row.submitted_at is None
        seed_demo(s, now)
    migrate.downgrade(db, "0001")
    assert migrate.current(db) == "0001"
    db.dispose()


def test_the_drafts_move_to_a_table_that_never_gives_an_id_again(tmp_path: Path) -> None:
    """0018 rebuilds SQLite's draft and cancelled draft tables with AUTOINCREMENT: the drafts written
    before stay whole, with their unique (user, form), their index and their user's foreign key; a
    dropped draft's id is not given to the next one."""
    db = Database(f"sqlite:///{tmp_path / 'd.db'}")
    migrate.upgrade(db, "0017")
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    with db.session() as s:
        user = q.touch_user(s, "console", "lan", "lan", "Lan", now)
        s.flush()
        uid = user.id or 0
        kept = q.start_draft(s, uid, "article", "title", now, {"title": "Ngày hội đọc sách"})
        last = q.start_draft(s, uid, "incident", "what", now, {})
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        table = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'draft'")).scalar()
        indexes = conn.execute(text("SELECT name FROM sqlite_master WHERE tbl_name = 'draft'")).scalars()
        assert "AUTOINCREMENT" in str(table) and "UNIQUE (user_id, form)" in str(table)
        assert "REFERENCES user (id)" in str(table) and "ix_draft_user_id" in set(indexes)
        kept_table = conn.execute(
            text("SELECT sql FROM sqlite_master WHERE name = 'cancelleddraft'")
        ).scalar()
        assert "AUTOINCREMENT" in str(kept_table) and "REFERENCES user (id)" in str(kept_table)
    with db.session() as s:
        read = q.get_draft(s, uid, "article")
        assert read is not None and (read.id, read.answers) == (kept.id, {"title": "Ngày hội đọc sách"})
        s.execute(text("DELETE FROM draft WHERE id = :id"), {"id": last.id})
        again = q.start_draft(s, uid, "incident", "what", now, {})
    assert again.id is not None and last.id is not None and again.id > last.id
    db.dispose()
