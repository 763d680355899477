"""`schoolbot run` as a real process: a start that fails says why in one plain line and exits non-zero;
SIGTERM during a wave stops taking updates, lets the outbox finish or hand back what it holds, then
closes the channel, and exits 0 with nothing sent twice and nothing lost.
"""

from __future__ import annotations

import collections
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.app import open_app
from bot.channels.telegram import TelegramChannel
from bot.config import load_settings
from bot.outbox import SENDER_LEASE
from bot.run import attached
from handlers.types import Reply
from storage import migrate
from storage import queries as q
from storage.db import Database
from tests.bot.test_outbox_telegram import WINDOW
from tests.fakes.telegram_api import TOKEN, FakeBotAPI, FloodLimits
from tests.support import add_principals, migrated_copy, outbox_rows, pg_admin, pg_database_url, until

SCHOOLBOT = Path(sys.executable).with_name("schoolbot")
ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


def toml(value: str) -> str:
    """A TOML basic string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_file(root: Path, database_url: str, base_url: str, *extra: str, media: str = "") -> Path:
    """A config file for `schoolbot run` against `base_url`, plus `extra` lines."""
    path = root / "config.toml"
    lines = [
        f"database_url = {toml(database_url)}",
        f"media_dir = {toml(media or str(root / 'media'))}",
        "[telegram]",
        f"token = {toml(TOKEN)}",
        f"base_url = {toml(base_url)}",
        f"base_file_url = {toml(base_url.replace('/bot', '/file/bot'))}",
        *extra,
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    """This environment without proxies or SCHOOLBOT_* settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SCHOOLBOT_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env["PTB_TIMEDELTA"] = "1"
    return env


def run_briefly(config: Path) -> subprocess.CompletedProcess[str]:
    """`schoolbot run` that is expected to give up at start."""
    return schoolbot("run", "--config", str(config))


def schoolbot(*args: str) -> subprocess.CompletedProcess[str]:
    """A `schoolbot` command run to its end: its exit code and output."""
    return subprocess.run(
        [str(SCHOOLBOT), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=environment(),
        timeout=WAIT,
        check=False,
    )


def plain_refusal(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a failed start printed (its output has nothing else, no traceback, no token)."""
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and TOKEN.partition(":")[2] not in done.stderr + done.stdout
    return lines[0]


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def bot_process(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`schoolbot run --config config`, its output in `log`; killed at the end if it still runs."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(SCHOOLBOT), "run", "--config", str(config)],
            cwd=ROOT,
            env=environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def terminated(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit code."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(WAIT)


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    with FakeBotAPI(limits=FloodLimits(window=WINDOW)) as api:
        yield api


def test_an_unreachable_api_is_one_plain_line(tmp_path: Path, database_url: str) -> None:
    base = f"http://127.0.0.1:{free_port()}/bot"
    line = plain_refusal(run_briefly(config_file(tmp_path, database_url, base)))
    assert "Telegram cannot be reached at telegram.base_url" in line and base in line


def test_a_token_telegram_refuses_is_one_plain_line(tmp_path: Path, database_url: str) -> None:
    with FakeBotAPI(token="654321:another-token-entirely") as api:  # answers 401 to ours
        done = run_briefly(config_file(tmp_path, database_url, api.base_url))
    assert done.returncode == 2
    assert plain_refusal(done) == "telegram.token = ***: Telegram rejected this bot token"


def test_a_config_file_that_is_not_toml_is_one_plain_line(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('database_url = "sqlite:///x.db\n', encoding="utf-8")
    done = run_briefly(config)
    assert done.returncode == 2
    assert plain_refusal(done).startswith(f"{config}: not valid TOML")


def test_a_bad_value_is_one_plain_line(tmp_path: Path, database_url: str) -> None:
    config = config_file(tmp_path, database_url, "http://127.0.0.1:9/bot", "[outbox]", "rate = -5")
    done = run_briefly(config)
    assert done.returncode == 2
    line = plain_refusal(done)
    assert line.startswith("invalid configuration: outbox.rate = -5:")


def test_a_data_folder_that_cannot_be_written_is_one_plain_line(tmp_path: Path, database_url: str) -> None:
    (tmp_path / "plain-file").write_text("not a folder")
    media = tmp_path / "plain-file" / "media"
    with FakeBotAPI() as api:
        done = run_briefly(config_file(tmp_path, database_url, api.base_url, media=str(media)))
    line = plain_refusal(done)
    assert done.returncode == 1
    assert line.startswith(f"could not start: cannot write {media}")


def test_a_database_folder_that_cannot_be_written_is_one_plain_line(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("not a folder")
    url = f"sqlite:///{tmp_path / 'plain-file' / 'schoolbot.db'}"
    with FakeBotAPI() as api:
        done = run_briefly(config_file(tmp_path, url, api.base_url))
    assert done.returncode == 1
    assert plain_refusal(done).startswith("could not start: cannot write")


def test_a_sqlite_database_of_a_newer_schoolbot_is_one_plain_line(tmp_path: Path, database_url: str) -> None:
    db = Database(database_url)
    with db.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    db.dispose()
    with FakeBotAPI() as api:
        done = run_briefly(config_file(tmp_path, database_url, api.base_url))
    assert done.returncode == 1
    assert plain_refusal(done) == (
        f"database_url = {database_url}: schema 9999 is newer than this schoolbot's ({migrate.head()})"
    )
    assert api.calls == []


@pytest.fixture(name="bare_pg")
def bare_pg_fixture() -> Iterator[str]:
    """A database of its own on the local PostgreSQL server, with no schema; dropped afterwards."""
    name = f"schoolbot_bare_{secrets.token_hex(4)}"
    with pg_admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with pg_admin() as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("found", [None, "9999"])
def test_a_postgresql_database_not_at_this_versions_schema_is_one_plain_line(
    tmp_path: Path, bare_pg: str, found: str | None
) -> None:
    """A worker never migrates PostgreSQL (its workers share it): it names the command that does."""
    url = pg_database_url(bare_pg).replace("@", ":s3cret-pass@", 1)  # trust auth ignores it
    if found is not None:
        db = Database(url)
        with db.engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
            conn.exec_driver_sql(f"INSERT INTO alembic_version VALUES ('{found}')")
        db.dispose()
    with FakeBotAPI() as api:
        done = run_briefly(config_file(tmp_path, url, api.base_url))
    line = plain_refusal(done)
    assert done.returncode == 1 and "s3cret-pass" not in done.stderr + done.stdout
    assert line.startswith(f"database_url = postgresql+psycopg://{url.split('//')[1].split(':')[0]}:***@")
    if found is None:
        assert line.endswith(
            f"schema none, this schoolbot needs {migrate.head()}: run `schoolbot db upgrade` first"
        )
    else:
        assert line.endswith(f"schema 9999 is newer than this schoolbot's ({migrate.head()})")
    assert api.calls == []  # refused before a word to Telegram


# ---- SIGTERM during a wave -----------------------------------------------------------------------

ALERTS = 120


async def test_sigterm_during_a_wave_hands_back_the_rest_and_exits_0(
    tmp_path: Path, migrated: Path, api: FakeBotAPI
) -> None:
    """A wave of alerts is going out, four sends in flight on a slow platform, when SIGTERM comes: the
    process exits 0; the sends in flight finish before the channel closes its client (none fails, none
    goes twice); what it had not sent is back in the queue (no claim, no failed attempt, the sender lease
    given up), and the next process delivers it at once, so every recipient gets theirs exactly once."""
    url = migrated_copy(migrated, tmp_path / "wave.db")
    outbox = [
        "[outbox]",
        f"rate = {25 / WINDOW}",
        f"per_chat_seconds = {WINDOW}",
        "concurrency = 4",
        "batch = 40",
        "poll_seconds = 0.05",
    ]
    config = config_file(tmp_path, url, api.base_url, *outbox)
    settings = load_settings(config)
    with open_app(settings) as app:
        users = add_principals(app, ALERTS, [(None, None)], first=6_000_000)
        app.outbox.enqueue_direct(
            "wave:test", {u.id or 0: [Reply(f"Thông báo {u.external_id}")] for u in users}
        )
    api.slow("sendMessage", 0.3)  # four sends are always in flight when SIGTERM comes
    log = tmp_path / "run.log"
    with bot_process(config, log) as proc:
        await until(lambda: len(api.calls_to("sendMessage", ok_only=True)) >= ALERTS // 4, "the wave", WAIT)
        code = terminated(proc)
    output = log.read_text(encoding="utf-8")
    assert code == 0, output
    assert "Traceback" not in output and " ERROR " not in output
    first = collections.Counter(str(m["chat_id"]) for m in api.calls_to("sendMessage", ok_only=True))
    assert first and max(first.values()) == 1  # nothing sent twice
    with open_app(settings) as app:
        rows = outbox_rows(app)
        sent = [r for r in rows if r.status == "sent"]
        assert {r.chat_id for r in sent} == set(first)  # what was sent is recorded as sent
        rest = [r for r in rows if r.status != "sent"]
        assert rest, "the wave should still be going when SIGTERM came"
        assert all((r.status, r.lease_owner, r.attempts) == ("pending", "", 0) for r in rest), [
            (r.status, r.lease_owner, r.attempts, r.last_error) for r in rest
        ]
        with app.db.session() as s:
            assert q.lease_holder(s, SENDER_LEASE) is None  # a next process takes over at once
        api.slow("sendMessage", 0.0)
        async with attached(app, TelegramChannel(app, poll_timeout=0.5, typing_after=60.0)):
            app.outbox.start_sender("next")
            await until(lambda: len(outbox_rows(app, status="sent")) == ALERTS, "the rest of the wave", WAIT)
            await app.outbox.stop_sender()
    delivered = collections.Counter(str(m["chat_id"]) for m in api.calls_to("sendMessage", ok_only=True))
    assert len(delivered) == ALERTS and set(delivered.values()) == {1}  # nothing lost, nothing twice
