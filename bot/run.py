"""Running the bot: the one place that builds the app and the channels and knows them all.

    await run(settings, ["telegram", "zalo"])    # until SIGINT/SIGTERM

A channel knows its platform and nothing of the others or of how it is wired: `attached(app, channel)`
starts it and puts its fetcher, upload limit and (once it is up) sender where the dispatcher and the
outbox find them, takes the sender away if the channel stops on its own (a revoked token), and undoes
it all when the channel stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, TextIO, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from bot.app import App, build_app
from bot.channels.base import Channel, TokenRedactor
from bot.channels.console import CHANNEL as CONSOLE
from bot.channels.console import ConsoleChat, read_local_file
from bot.channels.telegram import TelegramChannel
from bot.channels.zalo import ZaloChannel
from bot.config import Settings
from bot.dispatch import Dispatcher
from storage.db import sole_worker
from storage.errors import ChannelError, ConfigError, StartFailed
from storage.media import MediaStore
from storage.migrate import require_head

log = logging.getLogger("schoolbot")

# Every channel the bot can run on, by the name `schoolbot run --channel` takes.
CHANNELS: dict[str, Callable[[App], Channel]] = {"telegram": TelegramChannel, "zalo": ZaloChannel}

C = TypeVar("C", bound=Channel)


@asynccontextmanager
async def attached(app: App, channel: C) -> AsyncIterator[C]:
    """`async with attached(app, channel):` the channel runs and the dispatcher and outbox use it."""
    dispatcher = app.dispatcher
    name = channel.name
    dispatcher.fetchers[name] = channel.fetch
    dispatcher.upload_limits[name] = channel.upload_limit
    if getattr(channel, "settles_replies", False):  # the writer's replies are rows until sent
        dispatcher.standby.add(name)
    try:
        async with channel:
            dispatcher.senders[name] = channel.send_to_user
            watch = asyncio.create_task(withdraw_when_failed(dispatcher, channel), name=f"{name}:watch")
            try:
                yield channel
            finally:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
                withdraw_sender(dispatcher, channel)  # before the channel stops: the outbox leaves it be
    finally:
        if dispatcher.fetchers.get(name) == channel.fetch:
            del dispatcher.fetchers[name]
        dispatcher.upload_limits.pop(name, None)
        dispatcher.standby.discard(name)


def withdraw_sender(dispatcher: Dispatcher, channel: Channel) -> None:
    """The outbox stops sending through `channel` (its rows wait for a process that can)."""
    if dispatcher.senders.get(channel.name) == channel.send_to_user:
        del dispatcher.senders[channel.name]


async def withdraw_when_failed(dispatcher: Dispatcher, channel: Channel) -> None:
    """A channel that stopped on its own (Zalo's token revoked) sends nothing more from here."""
    await channel.failed.wait()
    withdraw_sender(dispatcher, channel)


def console_chat(
    dispatcher: Dispatcher, user_id: str, out: TextIO | None = None, display_name: str = ""
) -> ConsoleChat:
    """A terminal chat as `user_id`, its sender (alerts to this user are printed) and fetcher registered."""
    session = ConsoleChat(dispatcher, user_id, out=out, display_name=display_name)
    dispatcher.senders[CONSOLE] = session.send_to_console_user
    dispatcher.fetchers[CONSOLE] = read_local_file
    return session


async def run(settings: Settings, names: Sequence[str]) -> None:
    """Run the bot on these channels until SIGINT/SIGTERM.

    On SQLite this must be the only `schoolbot run` on the database (StartFailed says so otherwise); on
    PostgreSQL any number of workers share it. The channels connect first, then the clock and the outbox sender start. A start that fails (a
    platform or the database cannot be reached, a folder cannot be written) raises StartFailed, and
    a rejected token or a bad setting ConfigError, each with one plain line to print.

    On SIGINT/SIGTERM the channels stop taking updates (those in hand are finished), then the clock
    and the outbox sender stop (the sends in flight finish, the claimed rows and the sender lease are
    handed back, so a next process takes over at once), and only then do the channels close their
    connections: nothing is sent through a closed client.

    A single channel that stops on its own (its token revoked while running) ends the run with a
    ConfigError; next to another channel, that one goes on and the log says why the first stopped.
    """
    for name in names:
        redactor = TokenRedactor(getattr(settings, name).token.get_secret_value())
        for handler in logging.getLogger().handlers:
            handler.addFilter(redactor)  # the last line of defence for any record that reaches output
    running: list[Channel] = []
    async with contextlib.AsyncExitStack() as stack:
        async with start_failures(settings):
            stack.enter_context(sole_worker(settings.database_url))  # SQLite: refused if one runs
            app = await stack.enter_async_context(build_app(settings, clockwork=False))
            if not app.db.is_sqlite:  # SQLite was brought to the head (or refused) as the app opened
                require_head(app.db)
            MediaStore(settings.media_dir).check()
            for name in names:
                running.append(await stack.enter_async_context(attached(app, CHANNELS[name](app))))
            await app.clockwork.start()
        try:
            # The signals are taken before "running" is said: a SIGTERM from then on stops cleanly.
            with signalled() as stop, started():
                log.info("running; Ctrl-C to stop")
                if len(running) == 1:
                    await first_of(stop.wait(), running[0].failed.wait())
                else:
                    await stop.wait()
            log.info("stopping: no more updates; the outbox hands back what it has not sent")
            for channel in running:
                await channel.stop_taking()
        finally:
            await app.clockwork.stop()
    log.info("stopped")
    if len(running) == 1 and running[0].failed.is_set():
        name = running[0].name
        raise ConfigError(
            f"{name}.token = ***: {name.capitalize()} rejected the bot token while running (revoked or reset)"
        )


@asynccontextmanager
async def start_failures(settings: Settings) -> AsyncIterator[None]:
    """What goes wrong while starting, as one plain line (StartFailed): no traceback, never a secret."""
    try:
        yield
    except (ConfigError, StartFailed):
        raise
    except ChannelError as exc:
        raise StartFailed(f"could not start: {exc}") from None
    except SQLAlchemyError as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StartFailed(f"database_url = {where}: cannot open the database: {reason}") from None
    except OSError as exc:
        what = f"cannot write {exc.filename}: " if exc.filename else ""
        raise StartFailed(f"could not start: {what}{exc.strerror or exc}") from None


@contextlib.contextmanager
def started() -> Iterator[None]:
    """While the bot runs, what the start made (the modules, the app, the channels: some 120,000
    objects that live as long as the process) is left out of the garbage collector's passes
    (gc.freeze), so a full pass under load walks only what is new instead of stopping every thread
    for a tenth of a second; the collector, which `schoolbot run` pauses for the start, runs again.
    The few hundred cyclic leftovers of the start (about 0.2 MB) stay frozen with them: finding them
    would take the full pass that this saves."""
    gc.freeze()
    gc.enable()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def signalled() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM, for as long as the block runs (the handlers are in place
    before the block's first line)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        yield stop
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


async def first_of(*waits: Awaitable[Any]) -> None:
    """Wait until any of `waits` finishes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
