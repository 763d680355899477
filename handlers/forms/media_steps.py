"""Media steps: photos by role, extra photos, videos or a link, and long text in several messages."""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass
from typing import Any

from handlers.forms.media import MIN_LONG_SIDE, inspect_image, mp4_info, video_problem
from handlers.forms.steps import Answers, Parsed, Step, _clean_text, parse_url
from handlers.types import Context, Incoming, Kind, Media
from storage.errors import FetchError, TooLarge
from storage.models import MediaFile, MediaNote

log = logging.getLogger("schoolbot.media")

MAX_APPEND = 30_000


@dataclass(frozen=True)
class Problem:
    """Why one file was refused: a locale key and its fields."""

    key: str
    fields: tuple[tuple[str, Any], ...] = ()


def media_items(answers: Answers) -> list[dict[str, Any]]:
    """Every file already in the draft, wherever it sits."""
    found: list[dict[str, Any]] = []
    for key, value in answers.items():
        if key.startswith("_"):
            continue
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict) and "media_id" in item:
                found.append(item)
    return found


def is_image_candidate(media: Media) -> bool:
    """A photo, or a file whose type or name says image (or says nothing)."""
    if media.kind == "photo":
        return True
    mime = media.mime_type or mimetypes.guess_type(media.file_name or "")[0] or ""
    return media.kind == "document" and (mime.startswith("image/") or not mime)


def is_video_candidate(media: Media) -> bool:
    """A video, or a file whose type or name says video."""
    mime = media.mime_type or mimetypes.guess_type(media.file_name or "")[0] or ""
    return media.kind == "video" or (media.kind == "document" and mime.startswith("video/"))


def max_bytes(ctx: Context) -> int:
    """The largest file the bot downloads."""
    return int(ctx.settings.media.max_download_mb * 1024 * 1024)


async def download(media: Media, ctx: Context) -> bytes | None:
    """The file's bytes; None when it cannot be had now (kept by reference, and the download chore
    tries again later). The runtime downloaded it, with its retries, before the update's transaction
    began: `ctx.fetch` answers from that."""
    if ctx.fetch is None:
        return None
    try:
        return await ctx.fetch(media)
    except TooLarge:
        return None
    except FetchError as exc:
        log.warning("download of a %s failed: %s", media.kind, exc)
    return None


def remember(
    ctx: Context, media: Media, data: bytes | None, info: dict[str, Any], note: MediaNote = MediaNote.STORED
) -> dict[str, Any]:
    """Store the bytes (by sha256) and the platform reference; the answer item for the draft."""
    digest, path = "", ""
    if data is not None and ctx.media is not None:
        suffix = mimetypes.guess_extension(media.mime_type or "") or (
            "." + media.file_name.rsplit(".", 1)[-1] if "." in media.file_name else ""
        )
        digest, path = ctx.media.save(data, suffix or "")
    row = MediaFile(
        channel=ctx.channel,
        kind=media.kind,
        file_id=media.file_id,
        file_unique_id=media.file_unique_id,
        sha256=digest,
        mime_type=media.mime_type,
        file_name=media.file_name[:255],
        width=info.get("width"),
        height=info.get("height"),
        duration=info.get("duration"),
        size=len(data) if data is not None else media.size,
        path=path,
        note=note,
        created_at=ctx.clock.now(),
    )
    with ctx.db.session() as s:
        s.add(row)
        s.flush()
        media_id = row.id
    return {
        "media_id": media_id,
        "kind": media.kind,
        "file_id": media.file_id,
        "unique": media.file_unique_id,
        "sha256": digest,
        "name": media.file_name,
        "mime": media.mime_type,
        "size": row.size,
        "width": row.width,
        "height": row.height,
        "duration": row.duration,
        "note": note,
    }


async def accept_photo(
    media: Media, ctx: Context, answers: Answers, min_side: int = MIN_LONG_SIDE
) -> tuple[dict[str, Any] | None, Problem | None, Answers]:
    """Check one photo against the rules (its long side at least `min_side` px); (item, None, extra
    answers) or (None, problem, {})."""
    if not is_image_candidate(media):
        return None, Problem("media.not_image", (("name", media.file_name or media.kind),)), {}
    if media.size == 0:
        return None, Problem("media.empty"), {}
    if media.size and media.size > max_bytes(ctx):
        return (
            None,
            Problem(
                "media.too_large",
                (("mb", round(media.size / 1_048_576)), ("limit", ctx.settings.media.max_download_mb)),
            ),
            {},
        )
    seen = media_items(answers)
    if media.file_unique_id and any(i.get("unique") == media.file_unique_id for i in seen):
        return None, Problem("media.duplicate"), {}
    data = await download(media, ctx)
    width, height = media.width, media.height
    extra: Answers = {}
    if data is not None:
        if not data:
            return None, Problem("media.empty"), {}
        info = inspect_image(data)
        if info is None:
            return None, Problem("media.not_image", (("name", media.file_name or media.kind),)), {}
        width, height = info.width, info.height
        if info.taken or info.gps:
            extra["_exif"] = answers.get("_exif") or {
                "date": info.taken.isoformat() if info.taken else None,
                "gps": list(info.gps) if info.gps else None,
            }
    if width and height and max(width, height) < min_side:
        return (
            None,
            Problem("media.too_small", (("width", width), ("height", height), ("min", min_side))),
            {},
        )
    note = MediaNote.STORED if data is not None else MediaNote.KEPT_BY_REFERENCE
    item = remember(ctx, media, data, {"width": width, "height": height}, note)
    if item["sha256"] and any(i.get("sha256") == item["sha256"] for i in seen):
        return None, Problem("media.duplicate"), {}
    return item, None, extra


def _notes(media: Media, answers: Answers, item: dict[str, Any]) -> tuple[str, Answers]:
    """A one-time note when a photo came compressed, or a note that it is kept by reference."""
    if item.get("note") == MediaNote.KEPT_BY_REFERENCE:
        return "media.kept_by_reference", {}
    if media.kind == "photo" and not answers.get("_noted_compressed"):
        return "media.compressed_note", {"_noted_compressed": True}
    return "", {}


async def parse_photo(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """One photo for this role; any further photos sent with it flow on to the next steps."""
    if msg.kind != Kind.MEDIA or not msg.media:
        return Parsed(error="media.need_photo")
    first, rest = msg.media[0], msg.media[1:]
    least = MIN_LONG_SIDE if step.min_side is None else step.min_side
    item, problem, extra = await accept_photo(first, ctx, answers, least)
    if problem is not None:
        return Parsed(error=problem.key, fields=problem.fields)
    assert item is not None
    note, more = _notes(first, answers, item)
    return Parsed(value=item, note=note, extra=tuple({**extra, **more}.items()), rest=rest)


async def parse_photos(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """Extra photos: each one sent is checked and added; an album is acknowledged in one reply."""
    if msg.kind != Kind.MEDIA or not msg.media:
        return Parsed(error="media.need_photo_or_done")
    items = list(answers.get(step.key) or [])
    extra: Answers = {}
    problems: list[Problem] = []
    note = ""
    for index, media in enumerate(msg.media):
        if len(items) >= step.max_items:  # the rest of the album is refused, each file counted
            left = len(msg.media) - index
            problems += [Problem("media.too_many", (("limit", step.max_items),))] * left
            break
        least = MIN_LONG_SIDE if step.min_side is None else step.min_side
        item, problem, more = await accept_photo(media, ctx, {**answers, **extra, step.key: items}, least)
        if problem is not None:
            problems.append(problem)
            continue
        assert item is not None
        items.append(item)
        extra.update(more)
        one_note, flags = _notes(media, {**answers, **extra}, item)
        extra.update(flags)
        note = note or one_note
    added = len(items) - len(answers.get(step.key) or [])
    if not added:
        first = problems[0]
        return Parsed(error=first.key, fields=first.fields)
    refused = len(problems)
    summary = "media.added_some" if refused else "media.added"
    fields = (("added", added), ("total", len(items)), ("limit", step.max_items), ("refused", refused))
    if note:
        summary = f"{summary}+{note}"
    return Parsed(value=items, stay=True, note=summary, note_fields=fields, extra=tuple(extra.items()))


async def parse_videos(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """mp4 clips, 720p-1080p and 30-60 s each, or a link to a shared folder; until "Xong"."""
    items = list(answers.get(step.key) or [])
    if msg.kind == Kind.TEXT:
        link = await typed_link(step, msg, ctx, answers, words="media.need_video_or_link")
        if link.error:
            return link
        items.append({"link": link.value})
        return Parsed(value=items, stay=True, note="media.link_added")
    if msg.kind != Kind.MEDIA or not msg.media:
        return Parsed(error="media.need_video_or_link")
    if len(items) >= step.max_items:
        return Parsed(error="media.too_many", fields=(("limit", step.max_items),))
    media = msg.media[0]
    item, problem, note = await accept_video(media, ctx, answers)
    if problem is not None:
        return Parsed(error=problem.key, fields=problem.fields)
    items.append(item)
    return Parsed(value=items, stay=True, note=note or "media.video_added")


async def accept_video(
    media: Media, ctx: Context, answers: Answers
) -> tuple[dict[str, Any] | None, Problem | None, str]:
    """Check one clip from its metadata (or its bytes, when it came as a plain file)."""
    if not is_video_candidate(media):
        return None, Problem("media.not_video"), ""
    mime = media.mime_type or mimetypes.guess_type(media.file_name or "")[0] or ""
    if mime and mime != "video/mp4":
        return None, Problem("media.video_not_mp4", (("type", mime),)), ""
    if media.size == 0:
        return None, Problem("media.empty"), ""
    if media.file_unique_id and any(i.get("unique") == media.file_unique_id for i in media_items(answers)):
        return None, Problem("media.duplicate"), ""
    width, height = media.width, media.height
    seconds: float | None = media.duration
    if width and height and seconds is not None:  # the platform's metadata: refuse before downloading
        problem = video_problem(width, height, seconds)
        if problem is not None:
            key, fields = problem
            return None, Problem(key, tuple(fields.items())), ""
    too_large = bool(media.size and media.size > max_bytes(ctx))
    data = None if too_large else await download(media, ctx)
    if not (width and height and seconds) and data is not None:
        info = mp4_info(data)
        if info is not None:
            width, height, seconds = info.width, info.height, info.seconds
    if width and height and seconds is not None:
        problem = video_problem(width, height, seconds)
        if problem is not None:
            key, fields = problem
            return None, Problem(key, tuple(fields.items())), ""
        note = "media.video_by_reference" if data is None else ""
    else:
        note = "media.video_unchecked"
    item = remember(
        ctx,
        media,
        data,
        {"width": width, "height": height, "duration": round(seconds) if seconds else None},
        MediaNote.STORED
        if data is not None
        else (MediaNote.TOO_LARGE if too_large else MediaNote.KEPT_BY_REFERENCE),
    )
    return item, None, note


def document_type(data: bytes) -> str | None:
    """ "pdf" or "docx" by content (not by name), else None."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        import io
        import zipfile

        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, ValueError):
            return None
        return "docx" if "word/document.xml" in names and "[Content_Types].xml" in names else None
    return None


def link_shaped(text: str) -> bool:
    """Whether typed text was meant as a link (one word with a dot or a colon), not as words."""
    text = text.strip()
    return bool(text) and not any(ch.isspace() for ch in text) and ("." in text or ":" in text)


def size_refusal(media: Media, ctx: Context) -> Parsed | None:
    """An empty file, or one over the download limit: refused before it is fetched."""
    if media.size == 0:
        return Parsed(error="media.empty")
    if media.size and media.size > max_bytes(ctx):
        return Parsed(
            error="media.too_large",
            fields=(("mb", round(media.size / 1_048_576)), ("limit", ctx.settings.media.max_download_mb)),
        )
    return None


async def parse_document(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """One PDF or DOCX (a signed report), checked by its content; or a link to it (Zalo sends no files)."""
    if msg.kind == Kind.TEXT:
        return await parse_document_link(step, msg, ctx, answers)
    if msg.kind != Kind.MEDIA or not msg.media:
        return Parsed(error="media.need_document")
    media = msg.media[0]
    if media.kind == "photo":
        return Parsed(error="media.document_is_photo")
    if media.kind not in ("document",):
        return Parsed(error="media.not_document")
    refused = size_refusal(media, ctx)
    if refused is not None:
        return refused
    data = await download(media, ctx)
    if data is None:
        return Parsed(error="media.document_unreadable")
    kind = document_type(data)
    if kind is None:
        photo = inspect_image(data) is not None  # a scan sent as a picture gets a plainer answer
        return Parsed(error="media.document_is_photo" if photo else "media.not_document")
    item = remember(ctx, media, data, {})
    return Parsed(value={**item, "doctype": kind}, note="media.document_added")


async def parse_attachment(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """One photo (any size: a notice, a poster), or one PDF or DOCX checked by its content."""
    if msg.kind != Kind.MEDIA or not msg.media:
        return Parsed(error="media.need_attachment")
    media = msg.media[0]
    mime = media.mime_type or mimetypes.guess_type(media.file_name or "")[0] or ""
    if media.kind != "photo" and not (media.kind == "document" and mime.startswith("image/")):
        return await parse_document(step, msg, ctx, answers)
    refused = size_refusal(media, ctx)
    if refused is not None:
        return refused
    data = await download(media, ctx)
    info = inspect_image(data) if data else None
    if data is not None and info is None:
        return Parsed(error="media.not_image", fields=(("name", media.file_name or media.kind),))
    size = (
        {"width": info.width, "height": info.height}
        if info
        else {"width": media.width, "height": media.height}
    )
    note = MediaNote.STORED if data is not None else MediaNote.KEPT_BY_REFERENCE
    item = remember(ctx, media, data, size, note)
    return Parsed(value={**item, "doctype": "photo"}, note="media.document_added")


async def parse_document_link(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A link to the document (a shared drive, the school's website), stored as {"link": url}."""
    link = await typed_link(step, msg, ctx, answers, words="media.need_document")
    if link.error:
        return link
    return Parsed(value={"link": link.value}, note="media.link_added")


async def typed_link(step: Step, msg: Incoming, ctx: Context, answers: Answers, words: str) -> Parsed:
    """Text typed at a file step: a link, the link's own problem (not http(s), too long), or the
    step's `words` error when it is no link at all."""
    link = await parse_url(step, msg, ctx, answers)
    if link.error == "error.bad_url" and not link_shaped(msg.text):
        return Parsed(error=words)
    return link


WRITE = (
    "_write"  # answers[WRITE][step key]: "replace" after the rewrite button, "append" after add-a-paragraph
)


async def parse_append(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A long text: one message answers the step; later messages add paragraphs or, after the
    rewrite button, replace it. A bare link answers the step's `link_key` instead."""
    if step.link_key and msg.kind == Kind.TEXT and link_shaped(msg.text):  # one word: no article text
        link = await parse_url(step, msg, ctx, answers)
        if link.error:
            return link
        return Parsed(
            value=answers.get(step.key), extra=((step.link_key, link.value),), note="media.link_added"
        )
    modes = dict(answers.get(WRITE) or {})
    mode = modes.pop(step.key, "append")
    so_far = "" if mode == "replace" else str(answers.get(step.key) or "")
    cleaned = _clean_text(step, msg, MAX_APPEND)
    if cleaned.error:
        return cleaned
    joined = f"{so_far}\n\n{cleaned.value}" if so_far else cleaned.value
    if len(joined) > MAX_APPEND:
        return Parsed(error="error.too_long", fields=(("limit", MAX_APPEND), ("length", len(joined))))
    parts = joined.count("\n\n") + 1
    note = "flow.appended" if so_far else ""
    return Parsed(
        value=joined,
        note=note,
        note_fields=(("parts", parts), ("chars", len(joined))),
        extra=((WRITE, modes),),
    )
