"""The composition root: the only place that builds config, engine, clock, translator and router."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from bot.config import Settings
from bot.dispatch import Dispatcher
from handlers.calendar import Clock, SystemClock
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


@contextmanager
def open_app(settings: Settings, clock: Clock | None = None, upgrade: bool = True) -> Iterator[App]:
    """Build the app; SQLite is upgraded to the latest schema automatically."""
    db = Database(settings.database_url)
    try:
        if upgrade and db.is_sqlite:
            migrate.upgrade(db)
        clock = clock or SystemClock(settings.timezone)
        catalog = Catalog(default=settings.locale)
        router = build_router()
        dispatcher = Dispatcher(db, clock, catalog, settings, router, media=MediaStore(settings.media_dir))
        yield App(settings, db, clock, catalog, router, dispatcher)
    finally:
        db.dispose()


@asynccontextmanager
async def build_app(
    settings: Settings, clock: Clock | None = None, upgrade: bool = True
) -> AsyncIterator[App]:
    """`async with build_app(settings) as app:` for the running bot."""
    with open_app(settings, clock, upgrade) as app:
        yield app
