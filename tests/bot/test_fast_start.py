"""A fast start: the heavy libraries load when first used, and a migrated database is only checked."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.config import Settings
from storage import migrate
from storage.db import Database
from tests.support import sqlite_url

ROOT = Path(__file__).resolve().parents[2]
# Charts, workbooks, documents, Alembic, calendar files, and on SQLite PostgreSQL's dialect.
HEAVY = ("matplotlib", "openpyxl", "docx", "alembic", "icalendar", "sqlalchemy.dialects.postgresql")
START = """
import sys
from bot.app import open_app
from bot.config import load_settings
import bot.cli
import bot.run
with open_app(load_settings(None, database_url=sys.argv[1], media_dir=sys.argv[2])) as app:
    assert app.dispatcher.outbox is not None
loaded = set(sys.modules) | {name.split(".")[0] for name in sys.modules}
print(" ".join(sorted(loaded & set(sys.argv[3:]))))
"""
# Six threads alive at once, each with memory from malloc; glibc then lists its arenas on stderr.
ARENAS = """
import ctypes, sys, threading
from bot.cli import limit_malloc_arenas
limit_malloc_arenas()
ready = threading.Barrier(7)
done = threading.Event()
def work():
    kept = [bytearray(4000) for _ in range(50)]  # above pymalloc's 512 bytes, below malloc's mmap threshold
    ready.wait()
    done.wait()
threads = [threading.Thread(target=work) for _ in range(6)]
for thread in threads:
    thread.start()
ready.wait()
ctypes.CDLL(None).malloc_stats()  # one "Arena N:" block per arena
done.set()
for thread in threads:
    thread.join()
"""
# The command line alone (`schoolbot --help`, and every command before it runs): no database, no bot.
COMMAND_LINE = """
import sys
import bot.cli
loaded = set(sys.modules) | {name.split(".")[0] for name in sys.modules}
print(" ".join(sorted(loaded & set(sys.argv[1:]))))
"""


def test_importing_the_bot_and_opening_a_migrated_database_loads_no_heavy_library(
    settings: Settings,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", START, settings.database_url, str(settings.media_dir), *HEAVY],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert done.stdout.strip() == ""  # charts, workbooks, documents, Alembic... wait to be needed


def test_the_command_line_imports_neither_the_database_nor_the_bot() -> None:
    done = subprocess.run(
        [sys.executable, "-c", COMMAND_LINE, "sqlalchemy", "pydantic", "telegram", "storage.db", "bot.run"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    assert done.stdout.strip() == ""  # `schoolbot run` imports them itself, with the collector paused


def test_a_run_that_cannot_start_leaves_the_garbage_collector_on(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'database_url = "{sqlite_url(tmp_path / "db.sqlite")}"\n', encoding="utf-8")

    done = CliRunner().invoke(cli, ["run", "--config", str(config)])  # no token: refused

    assert done.exit_code == 2
    assert gc.isenabled() and gc.get_freeze_count() == 0  # paused for the start only


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc arenas")
@pytest.mark.parametrize(("setting", "arenas"), [(None, 2), ("3", 3)])
def test_the_bot_uses_two_malloc_arenas_unless_malloc_arena_max_says_otherwise(
    setting: str | None, arenas: int
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if setting is not None:
        env["MALLOC_ARENA_MAX"] = setting
    done = subprocess.run(
        [sys.executable, "-c", ARENAS], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert done.stderr.count("Arena ") == arenas  # seven threads; without a limit glibc made seven


def test_the_head_read_from_the_file_names_is_alembics_head() -> None:
    assert migrate.head() == ScriptDirectory(str(migrate.MIGRATIONS)).get_current_head()


def test_a_database_behind_the_head_is_upgraded_and_one_at_the_head_only_checked(tmp_path: Path) -> None:
    db = Database(sqlite_url(tmp_path / "new.db"))
    try:
        assert not migrate.at_head(db)  # no schema at all
        assert migrate.upgrade_if_behind(db)
        assert migrate.at_head(db) and migrate.current(db) == migrate.head()
        assert not migrate.upgrade_if_behind(db)  # nothing to do
        migrate.downgrade(db, "-1")
        assert not migrate.at_head(db)
        assert migrate.upgrade_if_behind(db) and migrate.current(db) == migrate.head()
    finally:
        db.dispose()
