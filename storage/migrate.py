"""Alembic, driven from code: `schoolbot db upgrade` and the automatic upgrade at start."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config

from storage.db import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(db: Database) -> Config:
    """An Alembic config pointing at our scripts and this database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def _run(db: Database, step: Callable[[Config], None]) -> None:
    """Run a migration command in one transaction.

    On SQLite, a batch migration copies tables; with foreign keys enforced, dropping the old copy of
    a referenced table fails. They are turned off for the migration (outside the transaction, where
    SQLite honours the pragma) and back on afterwards.
    """
    cfg = alembic_config(db)
    with db.engine.connect() as conn:
        raw = conn.connection.dbapi_connection if db.is_sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                step(cfg)
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")


def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision`."""
    _run(db, lambda cfg: command.upgrade(cfg, revision))


def downgrade(db: Database, revision: str) -> None:
    """Take the schema back to `revision`."""
    _run(db, lambda cfg: command.downgrade(cfg, revision))


def current(db: Database) -> str | None:
    """The revision the database is at, or None when it has no schema yet."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
