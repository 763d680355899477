"""Nothing received is lost to a crash: an update is stored (the `received` table) before Telegram hears
it arrived: the webhook answers 200 only after storing, polling confirms an offset only past stored
updates, and a restarted process handles what was stored, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlmodel import select

from bot.app import App
from bot.config import Settings
from handlers.i18n import Catalog
from storage import queries as q
from storage.db import Database
from storage.models import ProcessedUpdate, Received
from tests.bot.test_telegram import (
    PRINCIPAL,
    SECRET,
    api_fixture,  # noqa: F401  (fixture)
    free_port,
    on_webhook,
    running,
    settings_fixture,  # noqa: F401  (fixture)
)
from tests.fakes.telegram_api import TOKEN, FakeBotAPI, TgUser, text_update
from tests.support import until

ROOT = Path(__file__).resolve().parents[2]


def stored(db: Database) -> list[Received]:
    with db.session() as s:
        return list(s.exec(select(Received)))


def handled_keys(db: Database) -> set[str]:
    with db.session() as s:
        return set(s.exec(select(ProcessedUpdate.key)))


# ---- polling ------------------------------------------------------------------------------------


async def test_polling_confirms_the_offset_only_past_stored_updates(demo: App, api: FakeBotAPI) -> None:
    """While the database refuses to store, getUpdates is asked again without moving the offset (the
    update stays with Telegram); once stored, the offset moves past it and it is handled once."""
    with demo.db.session() as s:
        s.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON received BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    update = text_update(PRINCIPAL, "/help")
    async with running(demo, api) as tg:
        [update_id] = api.push_update(update)
        await until(
            lambda: len(api.calls_to("getUpdates")) >= 2, "getUpdates asked again after a failed store"
        )
        assert all((call.get("offset") or 0) <= update_id for call in api.calls_to("getUpdates"))
        assert api.pending_updates == 1 and not stored(demo.db) and not api.sent_to(PRINCIPAL.id)

        with demo.db.session() as s:
            s.execute(text("DROP TRIGGER refuse"))
        await until(lambda: len(api.sent_to(PRINCIPAL.id)) == 1, "the update handled once stored")
        await until(lambda: api.pending_updates == 0, "the offset moved past the stored update")
        assert [m["text"] for m in api.sent_to(PRINCIPAL.id)] == [tg.t("help.guest")]
    assert not stored(demo.db) and handled_keys(demo.db) == {f"telegram:{update_id}"}


async def test_an_update_stored_and_not_handled_is_handled_at_the_next_start(
    demo: App, api: FakeBotAPI
) -> None:
    """A process died between storing an update and handling it: the next start handles it first (before
    anything newer from that chat), once."""
    update = text_update(PRINCIPAL, "/help") | {"update_id": 77}
    with demo.db.session() as s:
        q.store_received(
            s, "telegram", [q.Arrival("telegram:77", str(PRINCIPAL.id), update)], demo.clock.now()
        )

    async with running(demo, api) as tg:
        await until(lambda: len(api.sent_to(PRINCIPAL.id)) == 1, "the stored update handled after the start")
        await until(lambda: tg.channel.handled == 1, "its handling counted")  # before send() counts
        await tg.send(PRINCIPAL, "/whoami")
    texts = [m["text"] for m in api.sent_to(PRINCIPAL.id)]
    assert len(texts) == 2 and texts[0] == tg.t("help.guest")
    assert not stored(demo.db) and handled_keys(demo.db) >= {"telegram:77"}


# ---- webhook ------------------------------------------------------------------------------------


async def test_posts_arriving_together_are_stored_together_and_each_answered_after_its_store(
    demo: App, api: FakeBotAPI
) -> None:
    """Twenty POSTs come at once while SQLite's writer is held here: none is answered before its update
    is stored; they are stored in one or two transactions (those that came while the first was being
    written go together in the next), not one each; every update is handled once."""
    app, hook = on_webhook(demo, api)
    people = [TgUser(9100 + n, f"Người {n}", "Thử") for n in range(20)]
    updates = [text_update(p, "/help") | {"update_id": api.next_update_id()} for p in people]
    stores: list[int] = []
    writing: dict[int, bool] = {}

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RECEIVED"):
            writing[id(conn)] = True

    def on_commit(conn: Any) -> None:
        if writing.pop(id(conn), False):
            stores.append(1)

    event.listen(demo.db.engine, "before_cursor_execute", on_execute)
    event.listen(demo.db.engine, "commit", on_commit)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with running(app, api) as tg, httpx.AsyncClient(trust_env=False) as client:
        assert demo.db.writer is not None and demo.db.writer.acquire(timeout=5)
        try:
            posts = [asyncio.ensure_future(client.post(hook, json=u, headers=headers)) for u in updates]

            def arrived() -> int:
                return len(app.dispatcher._in_hand) + len(app.dispatcher._arriving)

            await until(lambda: arrived() == 20, "twenty POSTs at the store")
            first = len(app.dispatcher._in_hand)  # being written (held here), if begun; the rest wait
            assert not any(p.done() for p in posts)
            with demo.db.reading() as s:  # the writer is held: nothing is stored, so none is answered
                assert not list(s.exec(select(Received)))
        finally:
            demo.db.writer.release()
        answers = await asyncio.gather(*posts)
        await until(lambda: tg.channel.handled == 20, "every update handled")
        await until(lambda: all(api.sent_to(p.id) for p in people), "every reply")

    assert [a.status_code for a in answers] == [200] * 20
    # All twenty in one transaction when the store had not begun yet (or had taken them all), else two.
    assert len(stores) == (2 if 0 < first < 20 else 1)
    assert all([m["text"] for m in api.sent_to(p.id)] == [tg.t("help.guest")] for p in people)
    assert handled_keys(demo.db) == {f"telegram:{u['update_id']}" for u in updates}
    assert not stored(demo.db)


async def test_posts_whose_store_fails_are_answered_500_and_stored_when_sent_again(
    demo: App, api: FakeBotAPI
) -> None:
    """The database refuses to store: every POST of the batch gets 500 (Telegram sends it again), none
    is handled; sent again once the database takes it, each is stored, answered 200 and handled once."""
    app, hook = on_webhook(demo, api)
    people = [TgUser(9200 + n, f"Người {n}", "Thử") for n in range(3)]
    updates = [text_update(p, "/help") | {"update_id": api.next_update_id()} for p in people]
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    with demo.db.session() as s:
        s.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON received BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    async with running(app, api) as tg, httpx.AsyncClient(trust_env=False) as client:
        refused = await asyncio.gather(*(client.post(hook, json=u, headers=headers) for u in updates))
        assert [a.status_code for a in refused] == [500] * 3
        assert tg.channel.handled == 0 and not any(api.sent_to(p.id) for p in people)

        with demo.db.session() as s:
            s.execute(text("DROP TRIGGER refuse"))
        again = await asyncio.gather(*(client.post(hook, json=u, headers=headers) for u in updates))
        await until(lambda: all(api.sent_to(p.id) for p in people), "every reply once stored")

    assert [a.status_code for a in again] == [200] * 3
    assert all([m["text"] for m in api.sent_to(p.id)] == [tg.t("help.guest")] for p in people)
    assert handled_keys(demo.db) == {f"telegram:{u['update_id']}" for u in updates}


# ---- webhook, a real process killed -------------------------------------------------------------


def webhook_environment(database_url: str, api: FakeBotAPI, media: Path, port: int) -> dict[str, str]:
    """The environment of `schoolbot run` in webhook mode on `port` against the fake (no proxies)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHOOLBOT_")}
    env.update(
        {
            "SCHOOLBOT_DATABASE_URL": database_url,
            "SCHOOLBOT_MEDIA_DIR": str(media),
            "SCHOOLBOT_TELEGRAM__TOKEN": TOKEN,
            "SCHOOLBOT_TELEGRAM__BASE_URL": api.base_url,
            "SCHOOLBOT_TELEGRAM__BASE_FILE_URL": api.base_file_url,
            "SCHOOLBOT_TELEGRAM__MODE": "webhook",
            "SCHOOLBOT_TELEGRAM__WEBHOOK_URL": "https://bot.example.test",
            "SCHOOLBOT_TELEGRAM__PORT": str(port),
            "SCHOOLBOT_TELEGRAM__URL_PATH": "tg",
            "SCHOOLBOT_TELEGRAM__SECRET_TOKEN": SECRET,
            "NO_PROXY": "*",
        }
    )
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    return env


@pytest.fixture(name="webhook_env")
def webhook_env_fixture(settings: Settings, api: FakeBotAPI, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield webhook_environment(settings.database_url, api, tmp_path / "media", free_port())


def start_bot(env: dict[str, str], log: Path, **extra: str) -> subprocess.Popen[bytes]:
    """`schoolbot run` in webhook mode, its output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(Path(sys.executable).parent / "schoolbot"), "run", "--channel", "telegram"],
            cwd=ROOT,
            env={**env, **extra},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(condition: Any, what: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the bot exited ({process.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_an_update_posted_then_kill_9_is_handled_once_after_the_restart(
    settings: Settings, api: FakeBotAPI, webhook_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "bot.log"
    hook = f"http://127.0.0.1:{webhook_env['SCHOOLBOT_TELEGRAM__PORT']}/tg"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    update = text_update(PRINCIPAL, "/help") | {"update_id": api.next_update_id()}
    db = Database(settings.database_url)
    try:
        # hold_seconds (tests only): the update waits a minute after it is stored, before handling
        first = start_bot(webhook_env, log, SCHOOLBOT_TELEGRAM__HOLD_SECONDS="60")
        try:
            wait_for(lambda: api.calls_to("setWebhook"), "the webhook is set", first)
            answer = httpx.post(hook, json=update, headers=headers, timeout=10, trust_env=False)
            assert answer.status_code == 200
            assert [r.key for r in stored(db)] == [f"telegram:{update['update_id']}"]  # stored before the 200
        finally:
            first.send_signal(signal.SIGKILL)  # right after the 200, before any reply
            first.wait(10)
        assert not api.sent_to(PRINCIPAL.id)

        second = start_bot(webhook_env, log)
        try:
            wait_for(lambda: len(api.sent_to(PRINCIPAL.id)) >= 1, "the stored update answered", second)
            # Telegram sends it again (it did not see the 200 of a crashed bot, say): answered 200, dropped
            again = httpx.post(hook, json=update, headers=headers, timeout=10, trust_env=False)
            later = text_update(PRINCIPAL, "/whoami") | {"update_id": api.next_update_id()}
            assert (
                httpx.post(hook, json=later, headers=headers, timeout=10, trust_env=False).status_code == 200
            )
            wait_for(lambda: len(api.sent_to(PRINCIPAL.id)) >= 2, "the next update answered", second)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
        assert again.status_code == 200
        texts = [m["text"] for m in api.sent_to(PRINCIPAL.id)]
        assert len(texts) == 2 and texts[0] == Catalog(default="vi").translator("vi", "telegram")(
            "help.guest"
        )
        assert not stored(db)
        assert handled_keys(db) == {f"telegram:{update['update_id']}", f"telegram:{later['update_id']}"}
    finally:
        db.dispose()
