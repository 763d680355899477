"""The composition root: the only place that builds config, engine, clock, translator and router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from bot.config import Settings
from bot.dispatch import Dispatcher
from bot.metrics import Metrics
from bot.outbox import Outbox, inbox_sender
from bot.scheduler import Clockwork
from bot.web import Probes
from handlers.calendar import Clock, SystemClock
from handlers.downloads import DownloadRetries
from handlers.i18n import Catalog
from handlers.router import Router, build_router
from storage import migrate
from storage.db import Database
from storage.media import MediaStore

log = logging.getLogger("schoolbot")


@dataclass
class App:
    """Everything built once at start, passed down, closed at the end."""

    settings: Settings
    db: Database
    clock: Clock
    catalog: Catalog
    router: Router
    dispatcher: Dispatcher
    clockwork: Clockwork
    metrics: Metrics

    @property
    def probes(self) -> Probes:
        """What the webhook server's /healthz and /metrics answer from."""
        return self.metrics.probes()

    @property
    def outbox(self) -> Outbox:
        """The outbox every message to another user goes through."""
        return self.dispatcher.outbox


@contextmanager
def open_app(settings: Settings, clock: Clock | None = None, upgrade: bool = True) -> Iterator[App]:
    """Build the app; SQLite is upgraded to the latest schema automatically."""
    db = Database(settings.database_url, settings.database_threads)
    dispatcher: Dispatcher | None = None
    try:
        if upgrade and db.is_sqlite:
            migrate.upgrade_if_behind(db)
        clock = clock or SystemClock(settings.timezone)
        catalog = Catalog(default=settings.locale)
        router = build_router()
        metrics = Metrics(db, clock)
        media = MediaStore(settings.media_dir)
        dispatcher = Dispatcher(db, clock, catalog, settings, router, media=media, metrics=metrics)
        # Console users with no live chat find their messages when they next open one.
        dispatcher.senders.setdefault("console", inbox_sender(db, clock))
        clockwork = Clockwork(
            db,
            clock,
            settings,
            catalog,
            dispatcher.outbox,
            media=media,
            # over the live map of the running channels' fetchers (bot.run registers them as they start)
            downloads=DownloadRetries(db, media, dispatcher.fetchers),
        )
        yield App(settings, db, clock, catalog, router, dispatcher, clockwork, metrics)
    finally:
        if dispatcher is not None:
            dispatcher.close()
        db.dispose()


@asynccontextmanager
async def build_app(
    settings: Settings, clock: Clock | None = None, upgrade: bool = True, clockwork: bool = True
) -> AsyncIterator[App]:
    """`async with build_app(settings) as app:` for the running bot.

    With `clockwork` (the default) the scheduler (a catch-up sweep at once, then one every few
    minutes) and the outbox sender run for as long as the app does; a channel started inside the
    block (TelegramChannel registers its sender) is drained as soon as it is up.
    """
    with open_app(settings, clock, upgrade) as app:
        if clockwork:
            await app.clockwork.start()
        try:
            yield app
        finally:
            if clockwork:
                await app.clockwork.stop()
