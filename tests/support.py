"""Helpers shared by tests of every layer: a migrated database per test, waiting on a running bot."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from storage import migrate
from storage.db import Database


def migrate_template(path: Path) -> Path:
    """Migrate a new SQLite file at `path` to the latest schema, once, for tests to copy."""
    db = Database(sqlite_url(path))
    try:
        migrate.upgrade(db)
    finally:
        db.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


def migrated_copy(template: Path, target: Path) -> str:
    """A copy of the migrated `template` at `target` (its folder made); the copy's SQLite URL.

    The app still upgrades it when it opens it, and finds nothing to do: 0.03 s against 0.2 s.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    return sqlite_url(target)


def sqlite_url(path: Path) -> str:
    """The database URL of a SQLite file."""
    return f"sqlite:///{path}"


PG_ADMIN_URL = os.environ.get("SCHOOLBOT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def pg_admin() -> Any:
    """An autocommit connection to the local PostgreSQL server; the test skips (saying why) without one."""
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_URL}: {exc}".splitlines()[0])


def pg_database_url(name: str) -> str:
    """The app's URL of database `name` on the server of PG_ADMIN_URL."""
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    return f"{base}/{name}"


async def until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll until `condition()` holds; fail (never hang) after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
