"""Health you can see: the webhook server's /healthz and /metrics (parsed with prometheus_client's own
parser), and JSON log lines carrying the update, chat and outbox ids."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from bot.app import App
from bot.config import TelegramSettings
from bot.logs import JsonLines
from bot.metrics import Metrics
from bot.web import WebhookServer
from handlers.types import Reply
from storage import queries as q
from storage.db import Database
from tests.bot.test_telegram import (  # noqa: F401 (fixtures)
    PRINCIPAL,
    SECRET,
    _loopback_only,
    api_fixture,
    free_port,
    running,
    settings_fixture,
)
from tests.fakes.telegram_api import FakeBotAPI, text_update
from tests.support import until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a /metrics page, by name and sorted labels (prometheus_client's parser)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def webhook_app(demo: App, api: FakeBotAPI, port: int) -> App:
    """The demo app with Telegram in webhook mode on `port`."""
    config = TelegramSettings(
        **api.settings(),
        mode="webhook",
        webhook_url="https://bot.example.test",
        port=port,
        url_path="tg",
        secret_token=SecretStr(SECRET),
    )
    return replace(demo, settings=demo.settings.model_copy(update={"telegram": config}))


async def test_webhook_server_answers_healthz_and_metrics(demo: App, api: FakeBotAPI) -> None:
    """After an update handled, an alert sent, another waiting and a lease held, /metrics shows each,
    and /healthz says the process and its database answer."""
    port = free_port()
    app = webhook_app(demo, api, port)
    base = f"http://127.0.0.1:{port}"
    now = app.clock.now()
    with app.db.session() as s:
        officer = q.get_user(s, "console", "officer")
        q.take_lease(s, "sender", "worker-a", now, now + timedelta(minutes=1))
    assert officer is not None and officer.id is not None

    async with running(app, api) as tg, httpx.AsyncClient(trust_env=False) as client:
        update = text_update(PRINCIPAL, "/help") | {"update_id": api.next_update_id()}
        posted = await client.post(
            f"{base}/tg", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
        )
        await until(lambda: tg.channel.handled >= 1, "the update handled")
        principal = tg.user(PRINCIPAL)
        assert principal is not None and principal.id is not None
        sent = app.outbox.enqueue_direct("test:sent", {principal.id: [Reply("Thông báo")]})
        await app.outbox.deliver_now(sent)
        app.outbox.enqueue_direct("test:waiting", {officer.id: [Reply("Chờ gửi")]})  # no console sender runs
        health = await client.get(f"{base}/healthz")
        page = await client.get(f"{base}/metrics")

    assert posted.status_code == 200
    assert (health.status_code, health.json()) == (200, {"ok": True, "database": "ok"})
    assert page.headers["content-type"].startswith("text/plain")
    found = samples(page.text)
    assert found[("schoolbot_updates_handled_total", (("channel", "telegram"),))] == 1
    assert found[("schoolbot_reply_seconds_count", (("channel", "telegram"),))] == 1
    assert found[("schoolbot_outbox_sends_total", (("channel", "telegram"), ("outcome", "sent")))] == 1
    assert found[("schoolbot_outbox_depth", (("channel", "console"), ("lane", "alert")))] == 1
    assert ("schoolbot_outbox_depth", (("channel", "telegram"), ("lane", "alert"))) not in found  # sent
    assert found[("schoolbot_lease_held", (("lease", "sender"), ("owner", "worker-a")))] == 1


async def test_throttled_sends_and_failed_downloads_are_counted(demo: App, api: FakeBotAPI) -> None:
    """A 429 on an outbox send is counted as such (and the send goes later); a file that cannot be
    downloaded is counted as a failed download."""
    from tests.fakes.telegram_api import message_update

    api.fail("sendMessage", 429, "Too Many Requests: retry after 1", times=1, parameters={"retry_after": 1})
    async with running(demo, api) as tg:
        await tg.send(PRINCIPAL, "/help")  # the reply meets the 429 and waits it out
        principal = tg.user(PRINCIPAL)
        assert principal is not None and principal.id is not None
        photo = [
            {"file_id": "lost-photo", "file_unique_id": "u1", "width": 10, "height": 10, "file_size": 10}
        ]
        await tg.push_for(PRINCIPAL, message_update(PRINCIPAL, photo=photo))
        page = demo.metrics.exposition().decode()

    found = samples(page)
    assert found[("schoolbot_rate_limited_total", (("channel", "telegram"),))] == 1
    assert found[("schoolbot_download_failures_total", (("channel", "telegram"),))] == 1
    assert found[("schoolbot_updates_handled_total", (("channel", "telegram"),))] == 2


async def test_healthz_says_when_the_database_does_not_answer(demo: App) -> None:
    """503 with the reason, the password never shown."""
    port, dead = free_port(), free_port()
    db = Database(f"postgresql+psycopg://bot:pa55word-x@127.0.0.1:{dead}/schoolbot")
    server = WebhookServer("127.0.0.1", port, {}, probes=Metrics(db, demo.clock).probes())
    await server.start()
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            health = await client.get(f"http://127.0.0.1:{port}/healthz")
    finally:
        await server.stop()
        db.dispose()

    assert health.status_code == 503
    body = health.json()
    assert body["ok"] is False and f"127.0.0.1:{dead}" in body["database"]
    assert "pa55word-x" not in health.text


@pytest.fixture(name="json_log")
def json_log_fixture() -> Iterator[io.StringIO]:
    """The schoolbot loggers written as JSON lines into a buffer (as `log.format = "json"` does)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    root = logging.getLogger("schoolbot")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


async def test_json_log_lines_carry_the_update_chat_and_outbox_ids(
    demo: App, api: FakeBotAPI, json_log: io.StringIO
) -> None:
    api.block(PRINCIPAL.id)
    async with running(demo, api) as tg:
        await tg.send(PRINCIPAL, "/help")
        principal = tg.user(PRINCIPAL)
        assert principal is not None and principal.id is not None
        ids = demo.outbox.enqueue_direct("test:blocked", {principal.id: [Reply("Thông báo")]})
        await demo.outbox.deliver_now(ids)

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    took = next(
        line for line in lines if line["message"].startswith("update ") and " took " in line["message"]
    )
    assert took["chat"] == str(PRINCIPAL.id) and took["update"] == took["message"].split()[1]
    unreachable = next(line for line in lines if "unreachable" in line["message"])
    assert unreachable["outbox"] == str(ids[0]) and unreachable["chat"] == str(PRINCIPAL.id)


async def test_a_scrape_neither_takes_nor_waits_for_the_write_lock(demo: App) -> None:
    """Another process holds SQLite's write lock (mid-wave): /metrics and /healthz still answer
    (their reads begin deferred; an IMMEDIATE one would wait the busy timeout, then fail)."""
    import sqlite3

    writer = sqlite3.connect(demo.settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        writer.execute("UPDATE lease SET owner = owner")
        page = demo.metrics.exposition().decode()
        fault = demo.probes.database_fault()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert fault is None and "schoolbot_inbox_waiting" in page
