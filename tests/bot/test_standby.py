"""A reply is never lost to a kill -9 between the update's commit and the send (issue #13).

The writer's replies are outbox rows on standby from the update's own commit on: the live process sends
them itself and then settles them (the rows go); what cannot go is released to the sender; a process
killed before its rows were settled leaves them to the next sender, which sends them within seconds of
the restart. Real parts: a SQLite file, `schoolbot run` subprocesses, the fake Bot API.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import col, select

from bot.app import App, open_app
from bot.claims import Claims
from bot.config import Settings, load_settings
from bot.outbox import REPLY, reply_source
from handlers.calendar import FrozenClock
from handlers.i18n import Catalog
from handlers.reminders import PRIORITY_ALERT
from handlers.types import Incoming, Kind, Reply
from storage import holders
from storage import queries as q
from storage.db import Database, rerun
from storage.models import Outbox, User
from tests.bot.test_lanes import CLOCK, WAIT, texts_to
from tests.bot.test_lanes import running as with_lanes
from tests.bot.test_lanes import settings_for as lanes_settings
from tests.bot.test_received import handled_keys, start_bot, stored, wait_for, webhook_environment
from tests.bot.test_telegram import (
    PRINCIPAL,
    SECRET,
    api_fixture,  # noqa: F401  (fixture)
    free_port,
    running,
    settings_fixture,  # noqa: F401  (fixture)
)
from tests.bot.test_zalo import running as zalo_running
from tests.fakes.telegram_api import FakeBotAPI, TgUser, text_update
from tests.fakes.zalo_api import FakeZaloAPI, ZaloUser, text_event
from tests.storage.test_postgres import pg_url_fixture as pg_url_fixture  # a database of its own
from tests.support import outbox_rows, outbox_statuses, pg_admin, until

HELP = Catalog(default="vi").translator("vi", "telegram")("help.guest")


def reply_rows(db: Database) -> list[Outbox]:
    """The outbox's replies to writers, whatever their status."""
    with db.session() as s:
        return list(s.exec(select(Outbox).where(col(Outbox.kind) == REPLY).order_by(col(Outbox.id))))


def connected_at(log: Path) -> float:
    """When the latest process writing `log` connected to Telegram (its log line's time, local)."""
    line = [line for line in log.read_text().splitlines() if "connected to Telegram as" in line][-1]
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


@pytest.fixture(name="env")
def env_fixture(settings: Settings, api: FakeBotAPI, tmp_path: Path) -> Iterator[dict[str, str]]:
    yield webhook_environment(settings.database_url, api, tmp_path / "media", free_port())


# ---- kill -9 between the commit and the send: a real process ------------------------------------


@pytest.mark.parametrize("mode", ["webhook", "polling"])
def test_a_reply_committed_then_kill_9_is_sent_once_within_seconds_of_the_restart(
    settings: Settings, api: FakeBotAPI, env: dict[str, str], tmp_path: Path, mode: str
) -> None:
    """The update is handled and committed, its reply held back (hold_reply_seconds, tests only), the
    chat's next update stored meanwhile, and the process killed: the next start sends the reply (its
    row on standby, left by a dead process) within seconds, once, and before the reply to the next
    update; the first update is not handled again (a redelivery is dropped)."""
    log = tmp_path / "bot.log"
    update = text_update(PRINCIPAL, "/help") | {"update_id": api.next_update_id()}
    later = text_update(PRINCIPAL, "/whoami") | {"update_id": api.next_update_id()}
    key, later_key = f"telegram:{update['update_id']}", f"telegram:{later['update_id']}"
    hook = f"http://127.0.0.1:{env['SCHOOLBOT_TELEGRAM__PORT']}/tg"
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}

    def post(one: dict[str, object]) -> None:
        if mode == "polling":
            api.push_update(one)
            return
        assert httpx.post(hook, json=one, headers=headers, timeout=10, trust_env=False).status_code == 200

    db = Database(settings.database_url)
    try:
        first = start_bot(
            env, log, SCHOOLBOT_TELEGRAM__MODE=mode, SCHOOLBOT_TELEGRAM__HOLD_REPLY_SECONDS="60"
        )
        try:
            ready = "setWebhook" if mode == "webhook" else "deleteWebhook"  # polling begins after it
            wait_for(lambda: api.calls_to(ready), "the channel up", first)
            post(update)
            wait_for(lambda: key in handled_keys(db), "the update's unit committed", first)
            [row] = reply_rows(db)
            assert (row.status, row.payload["text"]) == (q.STANDBY, HELP)
            post(later)  # waits for the chat's turn, which the held reply keeps
            wait_for(lambda: [r.key for r in stored(db)] == [later_key], "the next update stored", first)
        finally:
            first.send_signal(signal.SIGKILL)  # after the commit, before the reply went
            first.wait(10)
        assert not api.sent_to(PRINCIPAL.id)

        second = start_bot(env, log, SCHOOLBOT_TELEGRAM__MODE=mode)
        try:
            wait_for(lambda: bool(api.sent_to(PRINCIPAL.id)), "the reply sent after the restart", second)
            took = time.time() - connected_at(log)  # the process's own start varies with the machine's load
            wait_for(lambda: len(api.sent_to(PRINCIPAL.id)) >= 2, "the next update answered", second)
            if mode == "webhook":  # Telegram sends it again: answered 200, dropped (handled already)
                post(update)
            time.sleep(1.0)  # a second copy, or an answer to the redelivery, would come meanwhile
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
        whoami = Catalog(default="vi").translator("vi", "telegram")("whoami.none")
        assert [m["text"] for m in api.sent_to(PRINCIPAL.id)] == [HELP, whoami]  # once each, in order
        assert took < 5.0, f"the reply went {took:.1f} s after the restarted process connected"
        assert handled_keys(db) == {key, later_key} and not stored(db)
        assert [(r.period, r.status) for r in reply_rows(db)] == [(f"reply:{key}", "sent")]
    finally:
        db.dispose()


# ---- a living process ---------------------------------------------------------------------------


async def test_replies_sent_directly_settle_their_rows_and_the_sender_leaves_them(
    settings: Settings, api: FakeBotAPI
) -> None:
    """While the reply is held (after the commit), its row waits on standby for this process and the
    running sender does not take it; once the channel has sent it, the row is gone: each reply went
    once, by the channel, and the outbox ends empty."""
    telegram = settings.telegram.model_copy(update={"hold_reply_seconds": 1.5})
    held = settings.model_copy(update={"telegram": telegram})
    with open_app(held, FrozenClock(CLOCK)) as bot:
        async with running(bot, api) as tg:
            bot.outbox.start_sender("settle")
            try:
                api.push_update(text_update(PRINCIPAL, "/help"))
                await until(lambda: bool(reply_rows(bot.db)), "the reply's row, committed")
                [row] = reply_rows(bot.db)
                assert (row.status, row.lease_owner) == (q.STANDBY, bot.outbox.owner)
                await asyncio.sleep(1.0)  # the sender's turns meanwhile: it claims nothing
                assert reply_rows(bot.db)[0].status == q.STANDBY and not api.sent_to(PRINCIPAL.id)
                await until(lambda: tg.channel.handled >= 1, "the reply sent")
                assert reply_rows(bot.db) == []  # settled as it went
                for text in ("/whoami", "/help"):
                    await tg.send(PRINCIPAL, text)
                await asyncio.sleep(1.5)  # the sender's turns: nothing of the replies is left to it
            finally:
                await bot.outbox.stop_sender()
        t = bot.catalog.translator("vi")
        assert texts_to(api, PRINCIPAL) == [HELP, t("whoami.none"), HELP]
        assert reply_rows(bot.db) == [] and bot.outbox.stats.sent == 0


async def test_a_reply_meeting_500s_past_the_wait_is_its_row_released_and_sent_once_later(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """Telegram answers 500 for longer than outbox.reply_wait_seconds: the reply's standby row (the
    same row, not a new one) is released to the sender, which delivers it once Telegram works again."""
    person = TgUser(7500, "Thu", "Hà Thị")
    settings = lanes_settings(tmp_path, api, database_url, reply_wait_seconds=0.6)
    telegram = settings.telegram.model_copy(update={"hold_reply_seconds": 0.3})
    with open_app(settings.model_copy(update={"telegram": telegram}), FrozenClock(CLOCK)) as app:
        async with with_lanes(app) as channel:
            api.fail("sendMessage", 500)
            [update_id] = api.push_update(text_update(person, "/help"))
            await until(lambda: bool(outbox_rows(app, kind=REPLY)), "the reply's row, committed", WAIT)
            [standby] = outbox_rows(app, kind=REPLY)
            assert standby.status == q.STANDBY
            await until(lambda: channel.handled >= 1, "the update handled", WAIT)
            [row] = outbox_rows(app, kind=REPLY)
            assert (row.id, row.status, row.lease_owner) == (standby.id, "pending", "")
            assert (row.period, row.step) == (f"reply:telegram:{update_id}", "0")
            assert texts_to(api, person) == []
            api.clear_failures()
            app.outbox.start_sender("later")
            await until(lambda: outbox_statuses(app)["sent"] == 1, "the reply sent by the outbox", WAIT)
            await asyncio.sleep(1.0)  # nothing goes twice
        assert texts_to(api, person) == [HELP]
        assert app.outbox.stats.sent == 1


# ---- PostgreSQL: an update taken from the shared inbox settles with its claim --------------------


async def test_on_postgresql_the_replies_rows_go_with_the_claims_commit(
    tmp_path: Path, pg_url: str, api: FakeBotAPI
) -> None:
    """The claim holding an update of the shared inbox deletes the standby rows of the replies that went
    in its own transaction, with the update's row (the outbox runs no batch of its own for them): each
    reply once, in the order asked, and no row left."""
    person = TgUser(7600, "Thu", "Hà Thị")
    with open_app(lanes_settings(tmp_path, api, pg_url), FrozenClock(CLOCK), upgrade=False) as app:
        async with with_lanes(app) as channel:
            api.push_update(*[text_update(person, text) for text in ("/help", "/whoami", "/help")])
            await until(lambda: channel.handled >= 3, "three updates handled", WAIT)
            await until(lambda: not reply_rows(app.db) and not stored(app.db), "the claims committed", WAIT)
        t = app.catalog.translator("vi")
        assert texts_to(api, person) == [HELP, t("whoami.none"), HELP]
        assert app.outbox.stood_by and app.outbox.stats.settle_batches == 0


async def test_on_postgresql_a_claim_that_cannot_commit_leaves_its_replies_rows_to_the_outbox(
    tmp_path: Path, pg_url: str, api: FakeBotAPI
) -> None:
    """Every connection of the worker is cut after the reply went (as a restart would), so the claim's
    last transaction fails: the reply's standby row is settled by the outbox's own batch instead, not
    left on standby for good, and the update (its chat let go with the lost connection) is taken again."""
    database = make_url(pg_url).database
    with open_app(lanes_settings(tmp_path, api, pg_url), FrozenClock(CLOCK), upgrade=False) as app:

        def stored_with_its_reply(s: Any) -> int:
            now = app.clock.now()
            user = q.touch_user(s, "telegram", "7700", "7700", "Thu", now)
            s.flush()
            [reply] = app.outbox.stand_by(s, user, reply_source("telegram", "1"), [Reply("Đã nhận")])
            q.store_received(s, "telegram", [q.Arrival("telegram:1", "7700", {"update_id": 1})], now)
            return reply.standby

        row = app.db.in_unit(stored_with_its_reply)
        handled: list[object] = []

        async def handle(payloads: list[dict[str, Any]]) -> None:
            handled.append(payloads)
            if len(handled) > 1:
                return  # taken again (this handling marks nothing): nothing more to settle
            await app.outbox.settle([row])  # the reply went: its row is the claim's to delete
            assert [r.status for r in reply_rows(app.db)] == [q.STANDBY]
            with pg_admin() as admin:  # the pool's connections and the chat locks' one
                admin.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = %s"
                    " AND pid <> pg_backend_pid() AND application_name <> 'observer'",
                    (database,),
                )

        claims = Claims(app.db, app.dispatcher.workers, "telegram", handle, places=1, poll=0.1)
        observer = Database(f"{pg_url}?application_name=observer")  # the worker's connections are cut
        claims.start()
        try:
            await until(lambda: not reply_rows(observer), "the reply's row settled", WAIT)
            await until(lambda: not stored(observer), "the update let go", WAIT)
        finally:
            await claims.stop()
            observer.dispose()
        assert app.outbox.stats.settle_batches == 1 and len(handled) == 2


# ---- Zalo: all of an update's replies go in one send, or are handed over whole -------------------


async def test_zalo_replies_settle_once_sent_and_are_released_whole_when_zalo_fails(
    tmp_path: Path, database_url: str
) -> None:
    """On Zalo too: the replies that went leave no row; when Zalo keeps failing past the retries, the
    update's standby rows (the same rows) go to the sender, which sends them once Zalo answers again."""
    person = ZaloUser("z7700", "Lan")
    with FakeZaloAPI() as zapi:
        zalo = {**zapi.settings(), "hold_reply_seconds": 0.3}
        settings = load_settings(
            None, database_url=database_url, media_dir=str(tmp_path / "media"), zalo=zalo
        )
        with open_app(settings, FrozenClock(CLOCK)) as app:
            async with zalo_running(app, zapi) as zl:
                assert await zl.send(person, "/help") == zl.t("help.guest")
                assert reply_rows(app.db) == []
                zapi.fail("sendMessage", 500)
                zapi.push(text_event(person, "/whoami"))
                await until(lambda: bool(reply_rows(app.db)), "the reply's row, committed")
                [standby] = reply_rows(app.db)
                assert standby.status == q.STANDBY
                await until(lambda: zl.channel.handled >= 2, "the update handled")
                [row] = reply_rows(app.db)
                assert (row.id, row.status, row.lease_owner) == (standby.id, "pending", "")
                zapi.clear_failures()
                app.outbox.start_sender("zalo-later")
                try:
                    await until(lambda: reply_rows(app.db)[0].status == "sent", "the reply sent later")
                    await asyncio.sleep(1.0)  # nothing goes twice
                finally:
                    await app.outbox.stop_sender()
                assert zapi.texts_to(person.id) == [zl.t("help.guest"), zl.t("whoami.none")]


async def test_zalo_at_its_start_sends_the_replies_a_dead_process_left_before_the_stored_updates(
    tmp_path: Path, database_url: str
) -> None:
    """A process died after committing an update (its reply on standby) with the chat's next update
    stored: the restarted Zalo channel sends the old reply first, then answers the stored update."""
    person = ZaloUser("z7800", "Hoa")
    with FakeZaloAPI() as zapi:
        settings = load_settings(
            None, database_url=database_url, media_dir=str(tmp_path / "media"), zalo=zapi.settings()
        )
        with open_app(settings, FrozenClock(CLOCK)) as app:
            now = app.clock.now()
            living = holders.new_owner()
            parsed = holders.parse(living)
            assert parsed is not None
            dead = living.replace(f":{parsed.pid}:", ":4194999:", 1)
            later = text_event(person, "/whoami")
            with app.db.session() as s:
                user = User(channel="zalo", external_id=person.id, chat_id=person.id, created_at=now)
                s.add(user)
                s.flush()
                row = q.pending_row(
                    user, REPLY, "reply:zalo:old", "0", {"text": "Trả lời cũ"}, now,
                    school_id=None, priority=PRIORITY_ALERT, quiet=False,
                )  # fmt: skip
                q.enqueue(s, [row | {"status": q.STANDBY, "lease_owner": dead, "lease_until": now}])
                q.store_received(s, "zalo", [q.Arrival("zalo:later", person.id, later)], now)
            async with zalo_running(app, zapi) as zl:
                await until(lambda: len(zapi.texts_to(person.id)) >= 2, "both replies")
                assert zapi.texts_to(person.id) == ["Trả lời cũ", zl.t("whoami.none")]
            assert [r.status for r in reply_rows(app.db)] == ["sent"]


# ---- what the sender holding the lease takes: a dead process's, never a living one's -------------


def test_the_sender_rescues_the_standby_rows_of_dead_processes_only(app: App) -> None:
    """A process of this machine that is gone: its rows at once. One on another machine: once its
    rows' lease ran out (it stopped renewing). A living process here, and this one: never, however
    old their lease."""
    now = app.clock.now()
    expired, fresh = now - timedelta(seconds=30), now + timedelta(seconds=30)
    living = holders.new_owner()  # this very process, under another name
    parsed = holders.parse(living)
    assert parsed is not None
    dead = living.replace(f":{parsed.pid}:", ":4194999:", 1)  # past the kernel's pid_max
    assert holders.gone(dead) and not holders.gone(living)
    owners = {
        "dead here": (dead, fresh),
        "living here": (living, expired),
        "ours": (app.outbox.owner, expired),
        "silent elsewhere": ("web-9:1234:5678:0badcafe:abcdef", expired),
        "renewing elsewhere": ("web-9:4321:8765:0badcafe:fedcba", fresh),
    }
    with app.db.session() as s:
        user = User(channel="telegram", external_id="7600", chat_id="7600", created_at=now)
        s.add(user)
        s.flush()
        q.enqueue(
            s,
            [
                q.pending_row(
                    user,
                    REPLY,
                    f"reply:telegram:{n}",
                    "0",
                    {"text": name},
                    now,
                    school_id=None,
                    priority=PRIORITY_ALERT,
                    quiet=False,
                )
                | {"status": q.STANDBY, "lease_owner": owner, "lease_until": until}
                for n, (name, (owner, until)) in enumerate(owners.items())
            ],
        )
    assert [channel for _, channel in app.outbox.rescue()] == ["telegram", "telegram"]
    assert app.outbox.rescue() == []
    statuses = {r.payload["text"]: r.status for r in outbox_rows(app, kind=REPLY)}
    assert statuses == {
        "dead here": "pending",
        "silent elsewhere": "pending",
        "living here": q.STANDBY,
        "ours": q.STANDBY,
        "renewing elsewhere": q.STANDBY,
    }


async def test_an_update_run_again_after_its_commit_gets_back_the_replies_still_held(app: App) -> None:
    # The unit's COMMIT went through but its answer was lost with the connection (PostgreSQL dropped
    # it): the unit runs again and finds the update handled. The replies it wrote on standby, not yet
    # sent, come back to be sent in their place; nothing comes back once they are settled.
    app.dispatcher.standby.add("telegram")
    msg = Incoming("telegram", "7001", "7001", Kind.COMMAND, command="help", update_id="55")
    first = await app.dispatcher.handle(msg)
    held = [r.standby for r in first]
    assert first and all(held)
    assert await app.dispatcher.handle(msg) == []  # found handled, not run again: being sent elsewhere
    with rerun():
        again = await app.dispatcher.handle(msg)
    assert [(r.text, r.standby) for r in again] == [(r.text, r.standby) for r in first]
    await app.outbox.settle(held)
    with rerun():
        assert await app.dispatcher.handle(msg) == []
