"""bot/run.py wires a channel in while it runs: its fetcher, upload limit and sender, and only then."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

import pytest

from bot.app import App
from bot.channels.base import Channel
from bot.channels.telegram import UPLOAD_LIMIT as TELEGRAM_LIMIT
from bot.channels.telegram import TelegramChannel
from bot.channels.zalo import ZaloChannel
from bot.run import CHANNELS, attached, console_chat
from handlers.types import Incoming, Kind, Media, Reply
from storage.models import User


class LoopbackChannel:
    """A channel whose platform is a list: what it sends is kept, what it fetches is made up."""

    name = "loopback"
    upload_limit: int | None = 1234

    def __init__(self, fail_start: bool = False) -> None:
        self.failed = asyncio.Event()
        self.fail_start = fail_start
        self.sent: list[tuple[str, list[Reply]]] = []
        self.running = False

    async def __aenter__(self) -> Self:
        if self.fail_start:
            raise RuntimeError("the platform is down")
        self.running = True
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.running = False

    async def send_to_user(self, user: User, replies: list[Reply]) -> None:
        self.sent.append((user.external_id, replies))

    async def stop_taking(self) -> None:
        self.running = False

    async def fetch(self, media: Media) -> bytes:
        return media.file_id.encode()


def test_every_channel_is_a_channel() -> None:
    loopback: Channel = LoopbackChannel()
    assert loopback.name == "loopback"
    assert set(CHANNELS) == {"telegram", "zalo"}
    assert (TelegramChannel.name, TelegramChannel.upload_limit) == ("telegram", TELEGRAM_LIMIT)
    assert TELEGRAM_LIMIT == 50 * 1024 * 1024
    assert (ZaloChannel.name, ZaloChannel.upload_limit) == ("zalo", None)  # Zalo sends no files at all


async def test_attached_registers_the_channel_while_it_runs(app: App) -> None:
    d = app.dispatcher
    channel = LoopbackChannel()

    async with attached(app, channel) as running:
        assert running is channel and channel.running
        assert d.senders["loopback"] == channel.send_to_user
        assert d.fetchers["loopback"] == channel.fetch
        ctx = d.context(
            Incoming("loopback", "u1", "u1", Kind.TEXT),
            User(channel="loopback", external_id="u1", chat_id="u1"),
        )
        assert ctx.upload_limit == 1234 and ctx.fetch == channel.fetch

    assert "loopback" not in d.senders and "loopback" not in d.fetchers and "loopback" not in d.upload_limits


async def test_a_channel_that_fails_to_start_leaves_nothing_behind(app: App) -> None:
    with pytest.raises(RuntimeError):
        async with attached(app, LoopbackChannel(fail_start=True)):
            pass

    d = app.dispatcher
    assert "loopback" not in d.senders and "loopback" not in d.fetchers and "loopback" not in d.upload_limits


async def test_a_channel_that_stops_on_its_own_loses_its_sender(app: App) -> None:
    channel = LoopbackChannel()
    async with attached(app, channel):
        channel.failed.set()  # Zalo's token revoked while running
        for _ in range(10):
            await asyncio.sleep(0)
        assert "loopback" not in app.dispatcher.senders  # the outbox leaves its rows for another process
        assert app.dispatcher.fetchers["loopback"] == channel.fetch


async def test_a_channel_without_a_limit_lets_any_size_through(app: App) -> None:
    ctx = app.dispatcher.context(
        Incoming("console", "c1", "c1", Kind.TEXT), User(channel="console", external_id="c1", chat_id="c1")
    )
    assert ctx.upload_limit is None


def test_a_console_chat_is_registered_by_run_not_by_itself(app: App) -> None:
    from bot.channels.console import ConsoleChat

    alone = ConsoleChat(app.dispatcher, "c1")
    assert app.dispatcher.senders["console"] != alone.send_to_console_user  # the inbox keeps for later

    session = console_chat(app.dispatcher, "c2")
    assert app.dispatcher.senders["console"] == session.send_to_console_user
    assert "console" in app.dispatcher.fetchers
