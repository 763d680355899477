"""Several `schoolbot run` workers on one PostgreSQL database behave as one bot (issue #18, item 1).

Two real worker processes in webhook mode, each on its own port, against the local PostgreSQL server and
the loopback fake Bot API. A mixed load (registered principals and guests; /help and commands that each
name their chat and place) is posted to both webhooks as a balancer would, each chat's updates
alternating between the workers. Then one worker is killed with SIGKILL, or every connection to the
database is dropped (pg_terminate_backend, what a restart does). Counted: every update handled once,
every reply sent once (the killed worker's too, by the survivor; twice only for one it had sent but
not recorded), each chat's replies in the order its updates came, the outbox wave delivered
with nothing sent twice beyond the sends in flight, and the leases held by the survivor. A second
worker against SQLite is refused with the reason. Skipped (saying why) without a local PostgreSQL.
"""

from __future__ import annotations

import collections
import re
import signal
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
import pytest
from sqlmodel import select

from bot.app import open_app
from bot.config import load_settings
from bot.outbox import SENDER_LEASE
from bot.scheduler import SCHEDULER_LEASE
from handlers.calendar import FrozenClock
from handlers.config import TelegramSettings
from handlers.i18n import Catalog
from handlers.types import Reply
from storage import holders
from storage import queries as q
from storage.db import Database
from storage.models import ProcessedUpdate, Received
from tests.bot.test_lanes import running, settings_for, texts_to
from tests.bot.test_received import start_bot, wait_for, webhook_environment
from tests.bot.test_run_process import (
    bot_process,
    config_file,
    free_port,
    plain_refusal,
    run_briefly,
    terminated,
)
from tests.bot.test_telegram import SECRET
from tests.bot.test_telegram_article import photo_sizes
from tests.bot.test_zalo import running as zalo_running
from tests.fakes.telegram_api import FakeBotAPI, TgUser, message_update, text_update
from tests.fakes.zalo_api import FakeZaloAPI, ZaloUser, text_event
from tests.media.samples import jpeg
from tests.storage.test_postgres import pg_url_fixture as pg_url_fixture  # a database of its own
from tests.support import add_principals, drop_connections, until

PRINCIPALS = 12  # registered chats
GUESTS = 6  # chats of people not registered yet (their first update creates them)
EACH = 10  # updates per chat in each of two rounds
ALERTS = 40  # an outbox wave going out meanwhile
HOLD = 0.15  # seconds each update waits once claimed: the load is still in hand when a worker dies
WAIT = 90.0
NUMBERED = re.compile(r"/w(\d+)n(\d+)")
RUNNING = "running; Ctrl-C to stop"  # logged once the worker has started (and takes SIGTERM)
DROPPED = re.compile(r"telegram:(\d+) was handled already by a worker that lost hold of it")
T = Catalog(default="vi").translator("vi", "telegram")


@pytest.fixture(name="api")
def api_fixture() -> Iterator[FakeBotAPI]:
    with FakeBotAPI() as api:
        yield api


@pytest.fixture(name="zalo_api")
def zalo_api_fixture() -> Iterator[FakeZaloAPI]:
    with FakeZaloAPI() as api:
        yield api


def text_of(chat: int, k: int) -> str:
    """The k-th update of a chat: now and then /help, otherwise a command naming its chat and place."""
    return "/help" if k % 4 == 0 else f"/w{chat}n{k}"


def token_of(text: str) -> tuple[int, int] | str:
    """What a reply answers: (chat, k) for a numbered command (its "no such command" names it), else the text."""
    found = NUMBERED.search(text)
    return (int(found[1]), int(found[2])) if found else text


class Load:
    """The chats, the updates each sends, and a poster per chat that delivers them as Telegram behind a
    balancer does: one at a time and in order, each to the next worker, to another when one does not
    answer 200 (dead, or its database unreachable for a moment)."""

    def __init__(self, api: FakeBotAPI, ports: list[int], first_principal: int, first_guest: int) -> None:
        self.api = api
        self.ports = ports
        self.chats = [TgUser(first_principal + i, f"Hiệu trưởng {i}") for i in range(PRINCIPALS)]
        self.chats += [TgUser(first_guest + i, f"Khách {i}") for i in range(GUESTS)]
        self.updates = {
            c.id: [
                text_update(c, text_of(c.id, k)) | {"update_id": api.next_update_id()}
                for k in range(2 * EACH)
            ]
            for c in self.chats
        }
        self.refused = 0  # posts a worker did not take (the balancer sent them on)
        self.second_round = threading.Event()  # the first round is posted at once, the second when set
        self.threads = [threading.Thread(target=self.post_chat, args=(c.id,)) for c in self.chats]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(WAIT)

    def post_chat(self, chat: int) -> None:
        with httpx.Client(trust_env=False, timeout=10) as client:
            for k, update in enumerate(self.updates[chat]):
                if k == EACH:
                    self.second_round.wait(WAIT)
                self.post(client, update, k)

    def post(self, client: httpx.Client, update: dict[str, Any], k: int) -> None:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        deadline = time.monotonic() + WAIT
        attempt = 0
        while time.monotonic() < deadline:
            port = self.ports[(k + attempt) % len(self.ports)]
            try:
                if (
                    client.post(f"http://127.0.0.1:{port}/tg", json=update, headers=headers).status_code
                    == 200
                ):
                    return
            except httpx.TransportError:
                pass
            self.refused += 1
            attempt += 1
            time.sleep(0.05)
        raise AssertionError(f"update {update['update_id']} was never taken")

    def keys(self) -> set[str]:
        return {f"telegram:{u['update_id']}" for ups in self.updates.values() for u in ups}

    def replies(self) -> int:
        return sum(len(self.api.sent_to(c.id)) for c in self.chats)

    def expected(self, chat: TgUser) -> list[tuple[int, int] | str]:
        help_text = T("help.principal") if chat.id < self.chats[PRINCIPALS].id else T("help.guest")
        return [help_text if k % 4 == 0 else (chat.id, k) for k in range(2 * EACH)]


def start_workers(
    pg_url: str, api: FakeBotAPI, tmp_path: Path
) -> tuple[list[int], list[Path], list[Popen[bytes]]]:
    """Two workers on the database, each listening on its own port (each update held HOLD seconds)."""
    ports = [free_port(), free_port()]
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    hold = {"SCHOOLBOT_TELEGRAM__HOLD_SECONDS": str(HOLD)}
    workers = [
        start_bot(webhook_environment(pg_url, api, tmp_path / "media", port), log, **hold)
        for port, log in zip(ports, logs, strict=True)
    ]
    wait_for(lambda: len(api.calls_to("setWebhook")) >= 2, "both webhooks set", workers[0])
    return ports, logs, workers


def stop_workers(workers: list[Popen[bytes]], logs: list[Path]) -> tuple[list[int], str]:
    """SIGTERM to those still running; every worker's exit code, and their logs."""
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    codes = [w.wait(30) for w in workers]
    return codes, "".join(log.read_text() for log in logs)


def seed(pg_url: str, first: int) -> list[str]:
    """The principals (chats from `first`) and a wave of alerts to others; the alerts' recipients' chats."""
    settings = load_settings(None, database_url=pg_url)
    with open_app(settings, upgrade=False) as app:
        add_principals(app, PRINCIPALS, [(None, None)], first=first)
        recipients = add_principals(app, ALERTS, [(None, None)], first=first + 500)
        app.outbox.enqueue_direct(
            "wave:workers", {u.id or 0: [Reply(f"Thông báo {u.external_id}")] for u in recipients}
        )
    return [u.chat_id for u in recipients]


def pid_of(owner: str | None) -> int | None:
    holder = holders.parse(owner or "")
    return holder.pid if holder is not None else None


def lease_pid(db: Database, name: str) -> int | None:
    """The pid of the worker holding a lease that has not run out."""
    with db.session() as s:
        lease = q.lease_holder(s, name)
        return pid_of(lease.owner) if lease is not None and lease.owner else None


def settled(db: Database, keys: set[str]) -> bool:
    """Every update handled (its key recorded) and none left in the inbox."""
    with db.session() as s:
        handled = set(s.exec(select(ProcessedUpdate.key)))
        left = s.exec(select(Received.id)).first()
    return keys <= handled and left is None


def dropped(logs: list[Path]) -> set[int]:
    """Updates a worker found handled already when it took them: the dead worker had handled them (its
    unit committed) but not let go of them. Their replies are not lost (their rows on standby are sent by
    the survivor, ARCHITECTURE.md "A reply survives a crash"), but may go twice: sent by the dead worker,
    which died before recording it."""
    found = (DROPPED.search(line) for log in logs for line in log.read_text().splitlines())
    return {int(m[1]) for m in found if m}


def all_answered(load: Load, logs: list[Path], worker: Popen[bytes]) -> None:
    """Wait until every update is answered; on a time-out, say which are missing."""
    try:
        wait_for(lambda: not unanswered(load, dropped(logs)), "every reply", worker, WAIT)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {unanswered(load, dropped(logs))}") from None


def unanswered(load: Load, excused: set[int]) -> list[str]:
    """The updates left without their reply, after checking that each chat's replies answer its updates
    in order, none twice but a reply sent again right after itself for an update in `excused` (a dead
    worker's, `dropped`). A /help's reply is told from another /help's by its place only (they all read
    the same)."""
    left: list[str] = []
    for chat in load.chats:
        expected = load.expected(chat)
        ids = [u["update_id"] for u in load.updates[chat.id]]
        got = once(
            [token_of(m["text"]) for m in load.api.sent_to(chat.id)],
            {e for k, e in enumerate(expected) if ids[k] in excused},
        )
        it = iter(expected)
        shown = [g if not isinstance(g, str) else "help" for g in got]
        assert all(any(g == e for e in it) for g in got), (chat.id, shown)  # in order, none twice
        numbered = [(k, e) for k, e in enumerate(expected) if not isinstance(e, str)]
        left += [f"{chat.id}:{k}" for k, e in numbered if e not in got]
        helps = [k for k, e in enumerate(expected) if isinstance(e, str)]
        if len(helps) > got.count(expected[0]):
            left.append(f"{chat.id}: a /help")
    return left


def once(got: list[Any], again: set[Any]) -> list[Any]:
    """`got` without a reply that came again right after itself, when it answers an update in `again`."""
    return [g for i, g in enumerate(got) if not (i and g == got[i - 1] and g in again)]


def test_two_workers_share_a_mixed_load_and_one_killed_loses_nothing(
    pg_url: str, api: FakeBotAPI, tmp_path: Path
) -> None:
    """The worker sending the outbox wave is killed (SIGKILL) a third of the way through the first round
    of the load, with updates of every chat stored and claimed: the other takes its chats (each in
    order), its sender lease at once and its clock within seconds, and the second round, posted to both,
    goes to it; every update is handled once, every reply sent, and every alert delivered, twice at most
    for the sends that were in flight."""
    alerted = seed(pg_url, 9100)
    ports, logs, workers = start_workers(pg_url, api, tmp_path)
    db = Database(pg_url)
    try:
        wait_for(lambda: lease_pid(db, SENDER_LEASE) is not None, "a sender", workers[0])
        load = Load(api, ports, 9100, 9900)
        load.start()
        wait_for(lambda: load.replies() >= len(load.keys()) // 6, "a third of the first round", workers[0])
        sender = lease_pid(db, SENDER_LEASE)
        killed = next(w for w in workers if w.pid == sender)
        survivor = next(w for w in workers if w is not killed)
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        load.second_round.set()  # half of it goes to the dead worker first, then to the other
        load.join()
        wait_for(lambda: settled(db, load.keys()), "every update handled", survivor, WAIT)
        all_answered(load, logs, survivor)
        wait_for(lambda: all(api.sent_to(c) for c in alerted), "every alert", survivor, WAIT)
        wait_for(lambda: lease_pid(db, SENDER_LEASE) == survivor.pid, "the sender taken over", survivor)
        wait_for(lambda: lease_pid(db, SCHEDULER_LEASE) == survivor.pid, "the clock taken over", survivor)
        assert load.refused > 0  # the load went on after the kill: the balancer sent it to the survivor
        assert (
            not unanswered(load, dropped(logs)) and len(dropped(logs)) <= TelegramSettings().concurrent_chats
        )
        alerts = collections.Counter(str(m["chat_id"]) for m in api.calls_to("sendMessage", ok_only=True))
        twice = sum(alerts[c] - 1 for c in alerted)
        assert all(alerts[c] >= 1 for c in alerted) and twice <= 4  # outbox.concurrency: sends in flight
    finally:
        db.dispose()
        codes, output = stop_workers(workers, logs)
    assert codes.count(0) == 1 and codes.count(-signal.SIGKILL) == 1, (codes, output)
    assert "Traceback" not in output, output


def test_every_database_connection_dropped_under_load_loses_nothing(
    pg_url: str, api: FakeBotAPI, tmp_path: Path
) -> None:
    """While two workers carry the load, the server drops every connection they have, three times
    (pg_terminate_backend, as a restart does): transactions cut in the middle run again, claims cut off
    are taken again and found handled; every update is handled once and answered once, in order."""
    seed(pg_url, 9100)
    ports, logs, workers = start_workers(pg_url, api, tmp_path)
    name = pg_url.rsplit("/", 1)[1]
    db = Database(pg_url)
    try:
        load = Load(api, ports, 9100, 9900)
        load.second_round.set()
        load.start()
        total = len(load.keys())
        terminated = 0
        for share in (4, 2, 4 / 3):
            wait_for(lambda s=share: load.replies() >= total / s, "part of the replies", workers[0])
            terminated += drop_connections(name)
        load.join()
        wait_for(lambda: settled(db, load.keys()), "every update handled", workers[0], WAIT)
        all_answered(load, logs, workers[0])
        assert terminated >= 3
        assert not unanswered(load, dropped(logs))
    finally:
        db.dispose()
        codes, output = stop_workers(workers, logs)
    assert codes == [0, 0], output
    assert "Traceback" not in output, output


def test_a_second_worker_against_sqlite_is_refused_with_the_reason(
    tmp_path: Path, database_url: str, api: FakeBotAPI
) -> None:
    """A second `schoolbot run` on the same SQLite file says why it cannot start (exit 1); the first
    goes on, and once it has stopped a worker starts on the file again (the lock went with it)."""
    config = config_file(tmp_path, database_url, api.base_url)
    logs = [tmp_path / "first.log", tmp_path / "next.log"]
    with bot_process(config, logs[0]) as first:
        wait_for(lambda: RUNNING in logs[0].read_text(), "the first worker is up", first)
        done = run_briefly(config)
        line = plain_refusal(done)
        assert done.returncode == 1
        assert f"another schoolbot run (pid {first.pid}) is already working on this SQLite database" in line
        assert "use PostgreSQL" in line
        assert first.poll() is None  # the first goes on
        assert terminated(first) == 0
    with bot_process(config, logs[1]) as after:
        wait_for(lambda: RUNNING in logs[1].read_text(), "the next worker is up", after)
        assert terminated(after) == 0


async def test_an_album_is_gathered_from_the_shared_inbox(pg_url: str, tmp_path: Path) -> None:
    """On PostgreSQL an album's parts are taken from the shared inbox together: the principal gets one
    answer for its three photos, and the message sent right after it is answered after it."""
    with FakeBotAPI() as api:
        settings = settings_for(tmp_path, api, pg_url)
        with open_app(settings, FrozenClock(datetime(2026, 11, 10, 8, 0)), upgrade=False) as app:
            [principal] = add_principals(app, 1, [(None, None)], first=9300)
            person = TgUser(int(principal.chat_id), "Hiệu trưởng")
            async with running(app) as channel:
                assert channel.claims is not None  # PostgreSQL: the shared inbox
                album = [
                    message_update(
                        person, media_group_id="ALB1", photo=photo_sizes(api, jpeg(800, 600, c), 800, 600)
                    )
                    for c in ("red", "green", "blue")
                ]
                api.push_update(*album, text_update(person, "/w9300n1"))
                await until(lambda: channel.handled >= 4, "the album and the message handled", WAIT)
                await until(lambda: len(texts_to(api, person)) >= 3, "the answers", WAIT)
            answers = texts_to(api, person)
            t = app.catalog.translator("vi", "telegram")
            # one message (not understood here, and the menu), not three; then the next message's answer
            assert len(answers) == 3 and answers[0] == t("menu.not_understood")
            assert "/w9300n1" in answers[2]
            with app.db.session() as s:
                assert s.exec(select(Received.id)).first() is None


async def test_zalo_on_postgresql_takes_its_updates_from_the_shared_inbox(
    pg_url: str, tmp_path: Path, zalo_api: FakeZaloAPI
) -> None:
    """The Zalo channel shares the inbox the same way: three people's messages, each chat's in order,
    and one Zalo hands out again (its polling has no offset) handled once."""
    settings = load_settings(
        None, database_url=pg_url, media_dir=str(tmp_path / "media"), zalo=zalo_api.settings()
    )
    with open_app(settings, FrozenClock(datetime(2026, 11, 10, 8, 0)), upgrade=False) as app:
        async with zalo_running(app, zalo_api) as zl:
            assert zl.channel.claims is not None
            people = [ZaloUser(f"z{i}", f"Người {i}") for i in range(3)]
            await zl.push(*[text_event(p, f"/w{i}n{k}") for k in range(4) for i, p in enumerate(people)])
            zalo_api.replay = True
            await zl.push(text_event(people[0], "/help"))
            await until(lambda: len(zalo_api.calls_to("getUpdates")) >= 6, "Zalo handing it out again")
            for i, person in enumerate(people):
                answers = [NUMBERED.search(t) for t in zalo_api.texts_to(person.id)]
                assert [(int(m[1]), int(m[2])) for m in answers if m] == [(i, k) for k in range(4)]
            assert zalo_api.texts_to(people[0].id)[-1] == zl.t("help.guest")
            assert len(zalo_api.texts_to(people[0].id)) == 5
