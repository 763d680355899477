"""Shared fixtures: a real SQLite file per test, a frozen clock, the real app and console chats.

The schema is migrated once per session into a template file (`migrated`), and the demo district
seeded once into another (`demo_templates`); each test gets a copy of the one it needs.
"""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, open_app
from bot.config import Settings, load_settings
from bot.demo import USERS, seed_demo
from bot.run import console_chat
from handlers.calendar import FrozenClock
from handlers.types import Reply, numbered
from storage import migrate
from storage.db import Database
from tests.support import (
    SHOWN,
    keys_shown,
    migrate_template,
    migrated_copy,
    outbox_rows,
    pg_admin,
    pg_database_url,
    shown,
    sqlite_url,
)

# A Tuesday in the first half of a month, mid-morning in Vietnam.
START = datetime(2026, 11, 10, 9, 0)


@pytest.fixture(name="migrated", scope="session")
def migrated_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to the latest schema once per session; tests copy it, never open it."""
    return migrate_template(tmp_path_factory.mktemp("template") / "schoolbot.db")


@pytest.fixture(name="pg_template", scope="session")
def pg_template_fixture() -> Iterator[str]:
    """A database on the local PostgreSQL server migrated once per session; `pg_url` copies it."""
    name = f"schoolbot_template_{secrets.token_hex(4)}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        db = Database(pg_database_url(name))
        try:
            migrate.upgrade(db)
        finally:
            db.dispose()  # CREATE DATABASE ... TEMPLATE needs it without connections
        yield name
    finally:
        with pg_admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(name="demo_templates", scope="session")
def demo_templates_fixture(
    tmp_path_factory: pytest.TempPathFactory, migrated: Path
) -> Callable[[datetime], Path]:
    """demo_templates(now): a migrated SQLite file with the demo district seeded at `now`, made once."""
    made: dict[datetime, Path] = {}

    def template(now: datetime) -> Path:
        if now not in made:
            path = tmp_path_factory.mktemp("demo") / "schoolbot.db"
            db = Database(migrated_copy(migrated, path))
            try:
                with db.session() as s:
                    seed_demo(s, now)
            finally:
                db.dispose()
            made[now] = path
        return made[now]

    return template


@pytest.fixture(name="database_url")
def database_url_fixture(request: pytest.FixtureRequest, tmp_path: Path, migrated: Path) -> str:
    """The URL of the test's own migrated SQLite file (a copy of the session's template).

    A test that uses `demo` gets the template with the demo district already seeded at its clock's time.
    """
    template = migrated
    if "demo" in request.fixturenames:
        now = request.getfixturevalue("clock").now()
        template = request.getfixturevalue("demo_templates")(now)
    return migrated_copy(template, tmp_path / "schoolbot.db")


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, database_url: str) -> Settings:
    """Default settings over the test's own migrated SQLite file."""
    return load_settings(None, database_url=database_url, media_dir=str(tmp_path / "media"))


@pytest.fixture(name="clock")
def clock_fixture() -> FrozenClock:
    """A clock frozen at START; tests move it."""
    return FrozenClock(START)


@pytest.fixture(name="app")
def app_fixture(settings: Settings, clock: FrozenClock) -> Iterator[App]:
    """The real app (migrated database, router, dispatcher)."""
    with open_app(settings, clock) as built:
        yield built
        shown(*(row.payload.get("text") for row in outbox_rows(built)))  # what the outbox holds for people


@pytest.fixture(name="demo")
def demo_fixture(app: App, database_url: str) -> App:
    """The app with the demo district seeded (console users principal, officer, leader)."""
    if app.settings.database_url != database_url:  # a module's own settings: its database is not a copy
        with app.db.session() as s:
            seed_demo(s, app.clock.now())
    return app


class Chat:
    """A console chat as one user, keeping everything it was shown."""

    def __init__(self, app: App, user_id: str, display_name: str = "") -> None:
        self.out = io.StringIO()
        self.session = console_chat(
            app.dispatcher, user_id, out=self.out, display_name=display_name or user_id
        )
        self.replies: list[Reply] = []
        self.batch: list[Reply] = []

    async def send(self, line: str) -> list[Reply]:
        """Send one line; return (and keep) what came back."""
        got = await self.session.send(line)
        self.replies.extend(got)
        shown(*(r.text for r in got), *(c.label for r in got for c in r.flat_choices()))
        self.batch = got
        return got

    async def press(self, label: str) -> list[Reply]:
        """Answer a shown choice the way a person at a terminal does: by its number, or its words."""
        choice = next((c for r in self.batch for c in r.flat_choices() if label in c.label), None)
        assert choice is not None, (
            f"no choice {label!r} in {[c.label for r in self.batch for c in r.flat_choices()]}"
        )
        number = next((n for n, v in numbered(self.batch).items() if v == choice.value), None)
        return await self.send(number or choice.label)

    def value_of(self, label: str) -> str:
        """The callback value of a shown choice (to replay a button press later)."""
        return next(c.value for r in self.batch for c in r.flat_choices() if label in c.label)

    @property
    def last(self) -> Reply:
        """The latest reply."""
        return self.replies[-1]

    def text(self) -> str:
        """Everything printed so far."""
        return self.out.getvalue()


@pytest.fixture(name="chat_as")
def chat_as_fixture(demo: App) -> Callable[[str], Chat]:
    """chat_as("principal") opens a console chat as that user (the live console session)."""

    def make(user_id: str) -> Chat:
        display = next((d for u, d, _, _ in USERS if u == user_id), user_id)
        return Chat(demo, user_id, display)

    return make


@pytest.fixture(autouse=True)
def _words_not_keys() -> Iterator[None]:
    """Issue 14: every period is shown by its name, every deadline in words. Whatever a test's chats,
    outbox and fake platforms showed a person holds no internal key ("nam-2026", "2026-11",
    "2026-2027-HK1") and no negative number of days ("còn -15 ngày")."""
    SHOWN.clear()
    yield
    found = keys_shown(SHOWN)
    SHOWN.clear()
    assert not found, "shown to a person: " + "; ".join(found[:5])


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets counts: no SCHOOLBOT_* from the shell, no proxy in front of 127.0.0.1."""
    for name in list(os.environ):
        if name.startswith("SCHOOLBOT_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name)


class CliEnv:
    """The real command line over a database in a test's folder (SCHOOLBOT_DATABASE_URL, an empty
    config file).

    Given the session's `migrated` template, the database starts as a copy of it.
    """

    def __init__(self, root: Path, migrated: Path | None = None) -> None:
        self.root = root
        self.url = sqlite_url(root / "x.db")
        if migrated is not None:
            migrated_copy(migrated, root / "x.db")

    def cli(self, *args: str) -> Any:
        """Run `schoolbot ARGS`; the result has exit_code and output."""
        from typer.testing import CliRunner

        from bot.cli import app as cli

        env = {"SCHOOLBOT_DATABASE_URL": self.url, "SCHOOLBOT_MEDIA_DIR": str(self.root / "media")}
        settings = self.root / "empty.toml"  # every setting from the environment
        settings.touch()
        return CliRunner().invoke(cli, [*args, "--config", str(settings)], env=env)
