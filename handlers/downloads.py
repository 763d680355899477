"""Files kept by reference after a failed download, fetched again later (a job of the clock)."""

from __future__ import annotations

import mimetypes

from sqlmodel import select

from handlers.types import Fetcher, Media
from storage.db import Database
from storage.errors import FetchError
from storage.media import MediaStore
from storage.models import MediaFile


async def retry_downloads(
    db: Database, media_store: MediaStore, fetchers: dict[str, Fetcher], limit: int = 50
) -> int:
    """Download files kept by reference after a failed download; how many are now stored.

    The answers of drafts and submissions point at MediaFile rows by id, so filling in the row's
    path and sha256 is all it takes.
    """
    with db.session() as s:
        waiting = list(s.exec(select(MediaFile).where(MediaFile.note == "kept_by_reference").limit(limit)))
    done = 0
    for row in waiting:
        fetch = fetchers.get(row.channel)
        if fetch is None:
            continue
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
        except FetchError:
            continue
        suffix = mimetypes.guess_extension(row.mime_type or "") or ""
        digest, path = media_store.save(data, suffix)
        with db.session() as s:
            fresh = s.get(MediaFile, row.id)
            if fresh is not None:
                fresh.sha256, fresh.path, fresh.size, fresh.note = digest, path, len(data), ""
                s.add(fresh)
        done += 1
    return done
