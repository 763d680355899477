"""The clock's chores for every channel: files kept by reference are fetched again, old update ids go."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from bot.app import App
from bot.scheduler import DOWNLOADS_JOB, FORGET_JOB, Clockwork
from handlers.types import Fetcher, Media
from storage import queries as q
from storage.errors import FetchError
from storage.models import MediaFile

JPEG = b"\xff\xd8\xff\xe0 not really a jpeg, but bytes all the same"


def keep_by_reference(app: App, channel: str, file_id: str) -> int:
    """A file whose download failed: a row with the reference and no stored copy."""
    with app.db.session() as s:
        row = MediaFile(
            channel=channel,
            kind="photo",
            file_id=file_id,
            mime_type="image/jpeg",
            note="kept_by_reference",
            created_at=app.clock.now(),
        )
        s.add(row)
        s.flush()
        return row.id or 0


def stored(app: App) -> set[str]:
    """The file ids now downloaded."""
    with app.db.session() as s:
        rows = s.exec(select(MediaFile).where(col(MediaFile.path) != "")).all()
        return {r.file_id for r in rows}


async def zalo_never(media: Media) -> bytes:
    """Zalo's photo URLs have all expired."""
    raise FetchError(f"{media.file_id}: HTTP 404")


async def telegram_works(media: Media) -> bytes:
    """Telegram answers again."""
    return JPEG + media.file_id.encode()


def clockwork(app: App, fetchers: dict[str, Fetcher], batch: int) -> Clockwork:
    """The app's clock with these channels' fetchers and a small batch."""
    app.dispatcher.fetchers.update(fetchers)
    assert app.clockwork.downloads is not None
    app.clockwork.downloads.batch = batch
    return app.clockwork


async def test_failed_downloads_of_one_channel_do_not_stop_another_s(app: App) -> None:
    for n in range(7):  # more than a batch of Zalo files that will never download, kept first
        keep_by_reference(app, "zalo", f"https://zalo.example/{n}.jpg")
    keep_by_reference(app, "telegram", "T1")
    clock = clockwork(app, {"zalo": zalo_never, "telegram": telegram_works}, batch=3)

    assert await clock.retry_downloads() == 1

    assert stored(app) == {"T1"}


async def test_a_file_that_fails_again_waits_its_turn_behind_the_others(app: App) -> None:
    for n in range(3):
        keep_by_reference(app, "zalo", f"gone-{n}")
    keep_by_reference(app, "zalo", "back")

    async def only_back(media: Media) -> bytes:
        if media.file_id != "back":
            raise FetchError("still gone")
        return JPEG

    clock = clockwork(app, {"zalo": only_back}, batch=2)

    assert await clock.retry_downloads() == 0  # the two oldest fail
    assert await clock.retry_downloads() == 1  # the next run goes on after them
    assert stored(app) == {"back"}
    assert await clock.retry_downloads() == 0  # and then starts again from the oldest


async def test_channels_without_a_fetcher_here_are_left_alone(app: App) -> None:
    keep_by_reference(app, "zalo", "Z1")
    clock = clockwork(app, {"telegram": telegram_works}, batch=3)

    assert await clock.retry_downloads() == 0
    with app.db.session() as s:
        assert s.exec(select(MediaFile)).one().note == "kept_by_reference"


async def test_the_clock_forgets_old_update_ids(app: App) -> None:
    now = app.clock.now()
    with app.db.session() as s:
        assert q.first_time_seen(s, "telegram:1", now - timedelta(days=3))
        assert q.first_time_seen(s, "zalo:2", now - timedelta(hours=1))

    assert await app.clockwork.forget_old_updates() == 1

    with app.db.session() as s:
        assert not q.first_time_seen(s, "zalo:2", now)
        assert q.first_time_seen(s, "telegram:1", now)


async def test_the_chores_are_jobs_of_the_running_clock(app: App) -> None:
    await app.clockwork.start()
    try:
        assert app.clockwork.scheduler is not None
        assert app.clockwork.scheduler.get_job(DOWNLOADS_JOB) is not None
        assert app.clockwork.scheduler.get_job(FORGET_JOB) is not None
    finally:
        await app.clockwork.stop()
