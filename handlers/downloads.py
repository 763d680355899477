"""Files kept by reference after a failed download, fetched again later (a job of the clock).

Each channel that can fetch is served on its own: every run takes the next `batch` waiting rows of
that channel, oldest first, after the last one tried the run before (starting over once the end
is reached). So the failures of one channel never starve another, and a row that fails again waits
for its turn instead of blocking the rows behind it.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlmodel import col, select

from handlers.types import Fetcher, Media
from storage.db import Database
from storage.errors import FetchError
from storage.media import MediaStore
from storage.models import MediaFile, MediaNote

log = logging.getLogger("schoolbot.media")

BATCH = 50


@dataclass
class DownloadRetries:
    """The retry job: a cursor per channel, so each run goes on where the last one stopped."""

    db: Database
    media_store: MediaStore
    fetchers: Mapping[str, Fetcher]
    batch: int = BATCH
    after: dict[str, int] = field(default_factory=dict)

    async def run(self) -> int:
        """One pass over every channel that has a fetcher; how many files are now stored."""
        done = 0
        for channel, fetch in list(self.fetchers.items()):
            try:
                done += await self.run_channel(channel, fetch)
            except Exception:  # one channel's trouble must not keep the others' files waiting
                log.warning("retrying the downloads of %s failed", channel, exc_info=True)
        return done

    async def run_channel(self, channel: str, fetch: Fetcher) -> int:
        """The next batch of one channel's waiting files."""
        rows = waiting(self.db, channel, self.after.get(channel, 0), self.batch)
        # A short batch reached the end: the next run starts again from the oldest.
        self.after[channel] = (rows[-1].id or 0) if len(rows) == self.batch else 0
        done = 0
        for row in rows:
            done += await store_one(self.db, self.media_store, row, fetch)
        return done


def waiting(db: Database, channel: str, after: int, limit: int) -> list[MediaFile]:
    """Up to `limit` of a channel's files kept by reference, oldest first, with ids above `after`."""
    with db.session() as s:
        query = (
            select(MediaFile)
            .where(
                MediaFile.note == MediaNote.KEPT_BY_REFERENCE,
                MediaFile.channel == channel,
                col(MediaFile.id) > after,
            )
            .order_by(col(MediaFile.id))
            .limit(limit)
        )
        rows = list(s.exec(query))
        for row in rows:
            s.expunge(row)
    return rows


async def store_one(db: Database, media_store: MediaStore, row: MediaFile, fetch: Fetcher) -> int:
    """Fetch one file and fill in its row (1), or leave it for a later run (0).

    The answers of drafts and submissions point at MediaFile rows by id, so filling in the row's
    path and sha256 is all it takes.
    """
    media = Media(
        kind=row.kind,
        file_id=row.file_id,
        file_unique_id=row.file_unique_id,
        mime_type=row.mime_type,
        file_name=row.file_name,
        size=row.size,
    )
    try:
        data = await fetch(media)
    except FetchError as exc:
        log.debug("file #%s on %s still cannot be downloaded: %s", row.id, row.channel, exc)
        return 0
    suffix = mimetypes.guess_extension(row.mime_type or "") or ""
    digest, path = media_store.save(data, suffix)
    with db.session() as s:
        fresh = s.get(MediaFile, row.id)
        if fresh is not None:
            fresh.sha256, fresh.path, fresh.size, fresh.note = digest, path, len(data), MediaNote.STORED
            s.add(fresh)
    return 1


async def retry_downloads(
    db: Database, media_store: MediaStore, fetchers: Mapping[str, Fetcher], limit: int = BATCH
) -> int:
    """One pass from the start: up to `limit` waiting files per channel; how many are now stored."""
    return await DownloadRetries(db, media_store, fetchers, batch=limit).run()
