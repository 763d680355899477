"""The month's material for the website and the press: one ZIP, a folder per item, an index sheet."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from handlers.calendar import Calendar, Period
from handlers.months import month_or_current
from handlers.nomination import public_view
from handlers.types import Context, Incoming, Reply
from storage import queries as q
from storage import scope
from storage.exports import Sheet, Value, workbook_bytes
from storage.media import export_name, safe_filename
from storage.models import MediaFile, School, Submission
from storage.scope import SchoolIds

PHOTO_ROLES = ("photo_wide", "photo_speaker", "photo_closeup")
Translate = Callable[..., str]


@dataclass
class Bundle:
    """What went into a bundle."""

    items: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)


def month_rows(
    s: Any, school_ids: SchoolIds, month: Period, everything: bool, tz: Any
) -> list[tuple[Submission, School]]:
    """The month's approved (or, with `everything`, all sent) articles and nominations of these schools."""
    statuses = ("submitted", "approved", "published") if everything else ("approved", "published")
    start = datetime(month.year, month.month, 1, tzinfo=tz)
    end = datetime(month.shift(1).year, month.shift(1).month, 1, tzinfo=tz)
    return q.bundle_rows(s, school_ids, month.key, statuses, start, end)


def article_text(t: Translate, school: School, answers: dict[str, Any]) -> list[tuple[str, str]]:
    """The article as (label, text) pairs in reading order."""
    fields = [
        ("bundle.school", school.name),
        ("article.theme_short", answers.get("theme_text", "")),
        ("article.what_short", answers.get("what", "")),
        ("article.where_short", answers.get("where", "")),
        ("article.when_short", _date(answers.get("when"))),
        ("article.who_short", answers.get("who", "")),
        ("article.how_short", answers.get("how", "")),
        ("article.body_short", answers.get("body", "")),
        ("article.link_short", answers.get("link", "")),
        ("article.author_short", answers.get("author", "")),
        ("article.contact_short", answers.get("contact", "")),
    ]
    return [(t(label), str(value)) for label, value in fields if value]


def nomination_text(t: Translate, school: School, answers: dict[str, Any]) -> list[tuple[str, str]]:
    """A nomination as (label, text) pairs, already anonymised when consent is missing."""
    role = answers.get("role", "")
    fields = [
        ("bundle.school", school.name),
        ("nomination.name_short", answers.get("name", "")),
        ("nomination.role_short", t(f"nomination.roles.{role}") if role else ""),
        ("nomination.deeds_short", answers.get("deeds", "")),
        (
            "nomination.purpose_short",
            t(f"nomination.purposes.{answers.get('purpose')}") if answers.get("purpose") else "",
        ),
        ("nomination.link_short", answers.get("link", "")),
        ("nomination.contact_name_short", answers.get("contact_name", "")),
        ("nomination.contact_phone_short", answers.get("contact_phone", "")),
    ]
    lines = [(t(label), str(value)) for label, value in fields if value]
    if answers.get("withheld"):
        lines.append((t("bundle.note"), t("nomination.withheld")))
    return lines


def _date(value: Any) -> str:
    return datetime.fromisoformat(str(value)).strftime("%d/%m/%Y") if value else ""


def docx_bytes(title: str, lines: list[tuple[str, str]]) -> bytes:
    """A Word document: the title, then each field."""
    from docx import Document

    doc = Document()
    doc.add_heading(title, level=1)
    for label, text in lines:
        paragraph = doc.add_paragraph()
        paragraph.add_run(f"{label}: ").bold = True
        paragraph.add_run(text)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def build_bundle(
    db: Any,
    media_root: Path,
    t: Translate,
    school_ids: SchoolIds,
    month: Period,
    out: Path,
    tz: Any,
    everything: bool = False,
) -> Bundle | None:
    """Write the month's ZIP to `out`; None (and no file) when there is nothing to put in it."""
    with db.session() as s:
        rows = month_rows(s, school_ids, month, everything, tz)
        media = {m.id: m for m in q.media_files(s, _media_ids(rows))}
    if not rows:
        return None
    bundle = Bundle()
    index: list[list[Value]] = []
    used: set[str] = set()
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for row, school in rows:
            answers = public_view(row.answers) if row.kind == "nomination" else row.answers
            activity = str(answers.get("title") or t("bundle.nomination_of", name=answers.get("name", "")))
            folder = _unique(export_name(school.name, activity), used)
            lines = (
                article_text(t, school, answers)
                if row.kind == "article"
                else nomination_text(t, school, answers)
            )
            text = "\n\n".join(f"{label}: {value}" for label, value in lines)
            archive.writestr(f"{folder}/{safe_filename(activity)}.txt", f"{activity}\n\n{text}\n")
            archive.writestr(f"{folder}/{safe_filename(activity)}.docx", docx_bytes(activity, lines))
            notes, photos, videos = _files(archive, folder, t, row, answers, media, media_root)
            bundle.missing.extend(f"{folder}: {n}" for n in notes)
            bundle.files += photos + videos
            bundle.items += 1
            index.append(
                [
                    bundle.items,
                    t(f"review.kinds.{row.kind}"),
                    school.name,
                    school.level,
                    activity,
                    t(f"status.review.{row.status}"),
                    t("bundle.yes") if row.late else "",
                    folder,
                    photos,
                    videos,
                    "; ".join(notes),
                ]
            )
        archive.writestr("index.xlsx", index_sheet(t, index))
    return bundle


def _media_ids(rows: list[tuple[Submission, School]]) -> list[int]:
    ids = []
    for row, _ in rows:
        for value in row.answers.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and "media_id" in item:
                    ids.append(int(item["media_id"]))
    return ids


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 2
    while candidate in used:
        candidate = f"{name} ({n})"
        n += 1
    used.add(candidate)
    return candidate


def _files(
    archive: zipfile.ZipFile,
    folder: str,
    t: Translate,
    row: Submission,
    answers: dict[str, Any],
    media: dict[int | None, MediaFile],
    root: Path,
) -> tuple[list[str], int, int]:
    """Copy the photos (named by role) and videos into the folder; what is missing is noted."""
    notes: list[str] = []
    photos = videos = 0
    entries: list[tuple[str, dict[str, Any]]] = []
    if row.kind == "article":
        entries += [
            (t(f"article.{role}_short"), answers[role])
            for role in PHOTO_ROLES
            if isinstance(answers.get(role), dict)
        ]
        entries += [
            (t("article.photos_extra_short") + f" {n}", item)
            for n, item in enumerate(answers.get("photos_extra") or [], 1)
        ]
    elif not answers.get("withheld"):
        entries += [
            (t("nomination.photos_short") + f" {n}", item)
            for n, item in enumerate(answers.get("photos") or [], 1)
        ]
    for number, (role, item) in enumerate(entries, 1):
        stored = media.get(int(item["media_id"]))
        path = root / stored.path if stored and stored.path else None
        if path is None or not path.is_file():
            notes.append(t("bundle.missing", what=role))
            continue
        archive.write(path, f"{folder}/{number:02d}_{safe_filename(role)}{path.suffix or '.jpg'}")
        photos += 1
    for number, item in enumerate(answers.get("videos") or [] if row.kind == "article" else [], 1):
        name = f"{folder}/video_{number:02d}"
        if "link" in item:
            archive.writestr(f"{name}.txt", t("bundle.video_link", link=item["link"]) + "\n")
            videos += 1
            continue
        stored = media.get(int(item["media_id"]))
        path = root / stored.path if stored and stored.path else None
        if path is not None and path.is_file():
            archive.write(path, f"{name}{path.suffix or '.mp4'}")
        else:
            archive.writestr(
                f"{name}.txt",
                t("bundle.video_elsewhere", file_id=item.get("file_id", ""), name=item.get("name", ""))
                + "\n",
            )
        videos += 1
    return notes, photos, videos


INDEX_COLUMNS = (
    "n",
    "kind",
    "school",
    "level",
    "title",
    "status",
    "late",
    "folder",
    "photos",
    "videos",
    "notes",
)


def index_sheet(t: Translate, rows: list[list[Value]]) -> bytes:
    """The index spreadsheet: a frozen header, widths that fit, values only (no formulas)."""
    headers = tuple(t(f"bundle.col.{c}") for c in INDEX_COLUMNS)
    return workbook_bytes([Sheet(t("bundle.sheet"), None, headers, rows)])


async def bundle_command(msg: Incoming, ctx: Context) -> list[Reply]:
    """/bundle [month]: the month's approved material as a ZIP (sent when it fits the upload limit)."""
    assert ctx.user is not None
    month = month_or_current(msg.args, Calendar(ctx.clock, ctx.settings.schedule).current()).period
    if month is None:
        return [Reply(ctx.t("bundle.bad_month"))]
    school_ids = scope.ids_seen_by(ctx.user)
    out = (
        Path(ctx.settings.media_dir)
        / "bundles"
        / f"{ctx.user.id}-{month.key}-{ctx.clock.now():%Y%m%d%H%M%S}.zip"
    )
    built = build_bundle(ctx.db, Path(ctx.settings.media_dir), ctx.t, school_ids, month, out, ctx.clock.tz)
    if built is None:
        return [Reply(ctx.t("bundle.empty", month=month.label))]
    summary = ctx.t("bundle.ready", month=month.label, items=built.items, files=built.files)
    if built.missing:
        summary += "\n" + ctx.t("bundle.some_missing", count=len(built.missing))
    if ctx.upload_limit is not None and out.stat().st_size > ctx.upload_limit:
        return [Reply(summary + "\n" + ctx.t("bundle.too_big", month=month.key))]
    return [Reply(summary, file_path=str(out))]
