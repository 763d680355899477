"""`[privacy] media_keep_months`: the clock deletes the photos and videos of months closed that long
ago; each file's record stays (note "expired"), and documents are kept. The clock is frozen."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlmodel import col, select

from bot.app import App, open_app
from bot.config import load_settings
from bot.scheduler import EXPIRE_JOB
from handlers.calendar import FrozenClock
from storage.media import MediaStore
from storage.models import MediaFile

TZ = FrozenClock(datetime(2026, 11, 10, 9, 0)).tz  # the clock fixture's time zone


@pytest.fixture(name="keeping")
def keeping_fixture(tmp_path: Path, database_url: str, clock: FrozenClock) -> Iterator[App]:
    """The app with media_keep_months = 2 (on 10/11/2026: what was stored before 01/09/2026 goes)."""
    settings = load_settings(
        None,
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        privacy={"media_keep_months": 2},
    )
    with open_app(settings, clock) as built:
        yield built


def store(app: App, data: bytes, kind: str, when: datetime, mime: str = "image/jpeg") -> int:
    """A downloaded file, stored at `when` (local time)."""
    digest, path = MediaStore(app.settings.media_dir).save(data, ".bin")
    with app.db.session() as s:
        row = MediaFile(
            channel="telegram",
            kind=kind,
            file_id=f"f{when:%m%d%H}",
            sha256=digest,
            mime_type=mime,
            file_name=f"{kind}-{when:%Y-%m-%d}.bin",
            path=path,
            size=len(data),
            created_at=when.replace(tzinfo=TZ),
        )
        s.add(row)
        s.flush()
        return row.id or 0


def states(app: App) -> dict[int, tuple[str, str, bool]]:
    """id -> (note, file name, its bytes still on disk)."""
    root = Path(app.settings.media_dir)
    with app.db.session() as s:
        rows = s.exec(select(MediaFile).order_by(col(MediaFile.id))).all()
        return {r.id or 0: (r.note, r.file_name, bool(r.path) and (root / r.path).exists()) for r in rows}


async def test_media_of_months_closed_long_enough_go_and_their_records_stay(keeping: App) -> None:
    august = store(keeping, b"august photo", "photo", datetime(2026, 8, 31, 23, 30))
    video = store(keeping, b"july video", "video", datetime(2026, 7, 2, 8, 0))
    document = store(keeping, b"signed report", "document", datetime(2026, 6, 20), "application/pdf")
    september = store(keeping, b"september photo", "photo", datetime(2026, 9, 1, 0, 30))
    again = store(keeping, b"september photo", "photo", datetime(2026, 8, 5))  # the same bytes, earlier

    deleted = await keeping.clockwork.expire_media()

    assert deleted == 2
    assert states(keeping) == {
        august: ("expired", "photo-2026-08-31.bin", False),
        video: ("expired", "video-2026-07-02.bin", False),
        document: ("", "document-2026-06-20.bin", True),
        september: ("", "photo-2026-09-01.bin", True),  # its month closed on 30/09: kept
        again: ("expired", "photo-2026-08-05.bin", False),  # its record expires; the bytes serve September
    }
    assert await keeping.clockwork.expire_media() == 0  # a second run finds nothing


async def test_the_clock_runs_the_expiry_only_when_a_time_is_set(keeping: App, app: App) -> None:
    kept = store(app, b"old photo", "photo", datetime(2020, 1, 1))

    assert await app.clockwork.expire_media() == 0
    assert states(app)[kept] == ("", "photo-2020-01-01.bin", True)
    for built, expected in ((keeping, True), (app, False)):
        await built.clockwork.start()
        try:
            assert built.clockwork.scheduler is not None
            assert (built.clockwork.scheduler.get_job(EXPIRE_JOB) is not None) is expected
        finally:
            await built.clockwork.stop()
