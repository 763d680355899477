"""The month's material for the website and the press, and a report's signed files: ZIPs that fit.

`/bundle [month]` (the month words of /status): one folder per approved article or nomination,
`<School short name>_<Activity>` (handlers/press.py), holding the article as a .docx laid out for
publication next to the original photos and videos, and an index sheet. `/bundle report <name>`: every
school's signed file for one periodic report, named by the school's short name, and a sheet of who sent.
Either is one `<Office>_<YYYY-MM>.zip` (or `<Office>_<report>.zip`), or, over the channel's upload
limit, numbered parts that each fit and together hold every file. Files are streamed into the ZIP from
disk; each document is written to a temporary file first, so a month is never held in memory.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers import press
from handlers.calendar import Calendar, Period, periodic_key
from handlers.consent import Shield, shield
from handlers.months import month_or_current
from handlers.profile import labels_of
from handlers.report import OPEN_DAYS
from handlers.types import Attachment, Context, Incoming, Reply
from storage import queries as q
from storage import scope
from storage.exports import Sheet, Value, workbook_bytes
from storage.media import safe_filename
from storage.models import MediaFile, Office, School, Submission
from storage.scope import SchoolIds
from storage.text import fold
from storage.zipparts import Entry, capacity, plan_parts, write_zip

if TYPE_CHECKING:
    from sqlmodel import Session

    from storage.db import Database

PHOTO_ROLES = ("photo_wide", "photo_speaker", "photo_closeup")
SENT = ("submitted", "approved", "published")
REPORT_WORDS = ("report", "bao cao")
Translate = Callable[..., str]


@dataclass(frozen=True)
class Apart:
    """A file too large for any part: listed in its folder, and sent by reference where it can be."""

    name: str
    media: MediaFile | None


@dataclass
class Bundle:
    """What went into a bundle, and the ZIP files that hold it (one, or numbered parts)."""

    items: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)
    parts: list[Path] = field(default_factory=list)
    apart: list[Apart] = field(default_factory=list)


@dataclass
class Folder:
    """One article's (or nomination's, or school's) files, kept together in one part when they fit."""

    name: str = ""
    entries: list[Entry] = field(default_factory=list)
    media: dict[str, MediaFile] = field(default_factory=dict)  # entry name -> its stored file
    lines: list[str] = field(default_factory=list)  # the links file: videos given as links, and such
    notes: list[str] = field(default_factory=list)
    photos: int = 0
    videos: int = 0

    def add(self, stem: str, path: Path, suffix: str, stored: MediaFile) -> None:
        """A stored file, named `stem` and its own suffix (else `suffix`): "01 Ảnh toàn cảnh.jpg"."""
        name = f"{stem}{path.suffix.lower() or suffix}"
        self.entries.append(Entry.file(name, path))
        self.media[name] = stored


# ---- the month --------------------------------------------------------------------------------------


def month_rows(
    s: Session, school_ids: SchoolIds, month: Period, everything: bool, tz: tzinfo
) -> list[tuple[Submission, School]]:
    """The month's approved (or, with `everything`, all sent) articles and nominations of these schools."""
    statuses = SENT if everything else ("approved", "published")
    start = datetime(month.year, month.month, 1, tzinfo=tz)
    end = datetime(month.shift(1).year, month.shift(1).month, 1, tzinfo=tz)
    return q.bundle_rows(s, school_ids, month.key, statuses, start, end)


def model_text(t: Translate, school: School, answers: dict[str, Any]) -> list[str]:
    """A model, activity or solution as "label: text" lines."""
    keys = ("title", "unit", "change", "results", "since")
    fields = [
        ("bundle.school", school.name),
        *((f"nomination.model.{key}_short", answers.get(key, "")) for key in keys),
        ("nomination.contact_name_short", answers.get("contact_name", "")),
        ("nomination.contact_phone_short", answers.get("contact_phone", "")),
    ]
    return [f"{t(label)}: {value}" for label, value in fields if value]


def nomination_text(t: Translate, school: School, answers: dict[str, Any]) -> list[str]:
    """A nomination as "label: text" lines, already anonymised when consent is missing."""
    if answers.get("kind") == "model":
        return model_text(t, school, answers)
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
    lines = [f"{t(label)}: {value}" for label, value in fields if value]
    if answers.get("withheld"):
        lines.append(f"{t('bundle.note')}: {t('nomination.withheld')}")
    if answers.get("photos_withheld"):
        withheld = t("consent.photos_withheld", count=answers["photos_withheld"])
        lines.append(f"{t('nomination.photos_short')}: {withheld}")
    return lines


def _date(value: Any) -> str:
    return datetime.fromisoformat(str(value)).strftime("%d/%m/%Y") if value else ""


def build_bundle(
    db: Database,
    media_root: Path,
    t: Translate,
    school_ids: SchoolIds,
    month: Period,
    out: Path,
    tz: Any,
    everything: bool = False,
    limit: int | None = None,
) -> Bundle | None:
    """Write the month's ZIP to `out` (or, over `limit` bytes, numbered parts beside it); None (and
    no file) when there is nothing to put in it."""
    with db.session() as s:
        rows = month_rows(s, school_ids, month, everything, tz)
        media = {m.id: m for m in q.media_files(s, _media_ids(rows))}
        guard = shield(s, sorted({row.school_id for row, _ in rows}))  # an export: never the school's view
        senders = labels_of(s, (row.user_id for row, _ in rows), t)
    if not rows:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".bundle-") as tmp:
        used: set[str] = set()
        folders = [
            _folder(t, row, school, media, media_root, Path(tmp) / f"{n}.docx", used, guard)
            for n, (row, school) in enumerate(rows, 1)
        ]
        rows_of = [(row, school, folder) for (row, school), folder in zip(rows, folders, strict=True)]

        def index(parts: dict[str, str]) -> Entry:
            return Entry.text(
                t("bundle.file.index") + ".xlsx", month_index(t, rows_of, parts, guard, senders)
            )

        bundle = write_parts(t, out, folders, index, limit)
    bundle.items = len(rows)
    bundle.files = sum(f.photos + f.videos for f in folders)
    bundle.missing = [f"{f.name}: {n}" for f in folders for n in f.notes]
    return bundle


def _folder(
    t: Translate,
    row: Submission,
    school: School,
    media: dict[int | None, MediaFile],
    root: Path,
    docx: Path,
    used: set[str],
    guard: Shield,
) -> Folder:
    """An article's or nomination's folder: its document, its photos by role, its videos and links."""
    answers = guard.answers(row)
    short = press.school_short_name(school.name)
    folder = Folder()
    photos: list[tuple[str, str, Path]] = []
    for role, item in _photos(t, row, answers):
        path = _stored(media, item, root)
        if path is None:
            folder.notes.append(t("bundle.missing", what=role))
            continue
        folder.add(f"{len(photos) + 1:02d} {safe_filename(role)}", path, ".jpg", media[int(item["media_id"])])
        photos.append((role, str(answers.get("what") or answers.get("name") or ""), path))
    videos = answers.get("videos") or [] if row.kind == "article" else []
    for number, item in enumerate(videos, 1):
        label = t("bundle.video", n=f"{number:02d}")
        if "link" in item:
            folder.lines.append(t("bundle.video_link", video=label, link=item["link"]))
        elif (path := _stored(media, item, root)) is not None:
            folder.add(label, path, ".mp4", media[int(item["media_id"])])
        else:
            # Named as the sender's phone named it, when it did; never by a platform's file reference.
            name = str(item.get("name") or "")
            key = "bundle.video_elsewhere" if name else "bundle.video_elsewhere_unnamed"
            folder.lines.append(t(key, video=label, name=name))
        folder.videos += 1
    _model_document(t, folder, answers.get("document") if row.kind == "nomination" else None, media, root)
    folder.photos = len(photos)
    document = t("bundle.file.article") + ".docx"
    if row.kind == "article":
        title = str(answers.get("title") or t("bundle.file.article"))
        activity = press.activity_name(title, (school.name, short))
        lead, body = press.article_layout(t, answers, _date(answers.get("when")))
        after = [*folder.lines, *_byline(t, answers, school)]
        press.write_article_docx(docx, t, title, lead, body, photos, after)
    else:
        title = activity = str(
            answers.get("title") or t("bundle.nomination_of", name=answers.get("name", ""))
        )
        press.write_article_docx(docx, t, title, "", nomination_text(t, school, answers), photos, [])
    folder.entries.insert(0, Entry.file(document, docx))
    longest = max(press.utf16_len(e.name) for e in folder.entries)
    longest = max(longest, press.utf16_len(t("bundle.file.links") + ".txt"))
    folder.name = press.folder_name(short, activity or title, used, longest)
    return folder


def _byline(t: Translate, answers: dict[str, Any], school: School) -> list[str]:
    """The author line and the source line."""
    lines = [t("bundle.doc.author", author=answers["author"])] if answers.get("author") else []
    source = answers.get("link") or school.name
    return [*lines, t("bundle.doc.source", source=source)]


def _photos(t: Translate, row: Submission, answers: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The photos by role: an article's three and its extras; a nomination's (not without consent)."""
    if row.kind == "article":
        found = [
            (t(f"article.{role}_short"), answers[role])
            for role in PHOTO_ROLES
            if isinstance(answers.get(role), dict)
        ]
        found += [
            (t("article.photos_extra_short") + f" {n}", item)
            for n, item in enumerate(answers.get("photos_extra") or [], 1)
        ]
        return found
    if answers.get("withheld"):
        return []
    return [
        (t("nomination.photos_short") + f" {n}", item)
        for n, item in enumerate(answers.get("photos") or [], 1)
    ]


def _model_document(
    t: Translate, folder: Folder, item: Any, media: dict[int | None, MediaFile], root: Path
) -> None:
    """A model's document in its folder ("Tài liệu kèm theo.pdf"), or where it is (a link), or that it
    could not be fetched."""
    if not isinstance(item, dict):
        return
    label = t("bundle.file.document")
    if "link" in item:
        folder.lines.append(t("bundle.document_link", document=label, link=item["link"]))
    elif (path := _stored(media, item, root)) is not None:
        folder.add(label, path, ".pdf", media[int(item["media_id"])])
    else:
        folder.notes.append(t("bundle.missing", what=label))


def _stored(media: dict[int | None, MediaFile], item: dict[str, Any], root: Path) -> Path | None:
    """The stored file of an answer item, if it is on disk."""
    stored = media.get(int(item["media_id"])) if "media_id" in item else None
    path = root / stored.path if stored is not None and stored.path else None
    return path if path is not None and path.is_file() else None


def _media_ids(rows: list[tuple[Submission, School]]) -> list[int]:
    ids = []
    for row, _ in rows:
        for value in row.answers.values():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict) and "media_id" in item:
                    ids.append(int(item["media_id"]))
    return ids


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
    "part",
    "sent_by",
)


def month_index(
    t: Translate,
    rows: list[tuple[Submission, School, Folder]],
    parts: dict[str, str],
    guard: Shield,
    senders: dict[int, str],
) -> bytes:
    """The index spreadsheet: one row per folder, with the part that holds it and who sent it."""
    out: list[list[Value]] = []
    for n, (row, school, folder) in enumerate(rows, 1):
        answers = guard.answers(row)
        title = answers.get("title") or t("bundle.nomination_of", name=answers.get("name", ""))
        out.append(
            [
                n,
                t(f"review.kinds.{row.kind}"),
                school.name,
                school.level,
                str(title),
                t(f"status.review.{row.status}"),
                t("bundle.yes") if row.late else "",
                folder.name,
                folder.photos,
                folder.videos,
                "; ".join(folder.notes),
                parts.get(folder.name, ""),
                senders.get(row.user_id, ""),
            ]
        )
    return index_sheet(t, INDEX_COLUMNS, out)


def index_sheet(t: Translate, columns: tuple[str, ...], rows: list[list[Value]]) -> bytes:
    """An index spreadsheet: a frozen header, widths that fit, values only (no formulas)."""
    headers = tuple(t(f"bundle.col.{c}") for c in columns)
    return workbook_bytes([Sheet(t("bundle.sheet"), None, headers, rows)])


# ---- parts ------------------------------------------------------------------------------------------


def write_parts(
    t: Translate,
    out: Path,
    folders: list[Folder],
    index: Callable[[dict[str, str]], Entry],
    limit: int | None,
) -> Bundle:
    """Write the folders in one ZIP at `out`, or in numbered parts each under `limit`, every part with
    the index (which says which part holds each folder). A file larger than a part stays out of every
    part and is listed in its folder's links file instead. A folder with no name puts its files at the
    top of the ZIP."""
    room = capacity(limit)
    space = None if room is None else room - 2 * index({f.name: "00, 00" for f in folders}).room - 8192
    bundle = Bundle()
    for folder in folders:
        for entry in [e for e in folder.entries if space is not None and e.room > space]:
            folder.entries.remove(entry)
            folder.lines.append(t("bundle.too_large", name=entry.name, size=_megabytes(entry.size)))
            shown = f"{folder.name}/{entry.name}" if folder.name else entry.name
            bundle.apart.append(Apart(shown, folder.media.get(entry.name)))
    groups = [
        [
            *(e.renamed(f"{f.name}/{e.name}") if f.name else e for e in f.entries),
            *([_links(t, f)] if f.lines and f.name else []),
        ]
        for f in folders
    ]
    plan = plan_parts(groups, space)
    total = len(plan.parts)
    holding: dict[str, set[int]] = {}
    for number, part in enumerate(plan.parts, 1):
        for entry in part:
            holding.setdefault(entry.name.split("/", 1)[0], set()).add(number)
    made = index({name: ", ".join(str(n) for n in sorted(parts)) for name, parts in holding.items()})
    for number, part in enumerate(plan.parts, 1):
        path = (
            out
            if total == 1
            else out.with_name(f"{out.stem}_{t('bundle.part_file', n=number, total=total)}.zip")
        )
        write_zip(path, [*part, made])
        bundle.parts.append(path)
    return bundle


def _links(t: Translate, folder: Folder) -> Entry:
    text = "\r\n".join(folder.lines) + "\r\n"  # Notepad on an old Windows shows "\n" as one line
    return Entry.text(f"{folder.name}/{t('bundle.file.links')}.txt", text.encode("utf-8-sig"), deflate=True)


def _megabytes(size: int) -> str:
    """ "50", "2,9": megabytes as an office writes them."""
    return f"{size / 1_048_576:.1f}".removesuffix(".0").replace(".", ",")


# ---- a periodic report's signed files ---------------------------------------------------------------


@dataclass(frozen=True)
class ReportDue:
    """One deadline of one configured report: its stored key ("nam-2026") and its name to show."""

    key: str
    name: str
    due: datetime


def report_named(cal: Calendar, words: str) -> ReportDue | None:
    """The report a person names: "năm 2026", "Báo cáo 6 tháng", "6thang", "nam-2026". Without a year,
    the report being collected now: the next deadline when it is within OPEN_DAYS, else the last one."""
    folded = fold(words).replace("-", " ")
    for prefix in REPORT_WORDS:
        folded = folded.removeprefix(prefix).strip()
    found = [w for w in folded.split() if len(w) == 4 and w.isdigit()]
    year = int(found[-1]) if found else None
    text = " ".join(w for w in folded.split() if w not in found)
    now = cal.now()
    for item in cal.schedule.periodic:
        name = fold(item.name)
        for prefix in REPORT_WORDS:
            name = name.removeprefix(prefix).strip()
        if text not in (name, item.key.replace("-", " ")) or not text:
            continue
        dues = [d for i, d in cal.periodic_deadlines(now) if i.key == item.key]
        if year is not None:
            that_year = cal.periodic_deadlines(datetime(year, 7, 1, tzinfo=cal.clock.tz))
            due = next(d for i, d in that_year if i.key == item.key and d.year == year)
        else:
            due = max(d for d in dues if d <= now + timedelta(days=OPEN_DAYS))
        return ReportDue(periodic_key(item, due), f"{item.name} {due.year}", due)
    return None


REPORT_COLUMNS = ("n", "school", "level", "state", "file")


def build_report_bundle(
    db: Database,
    media_root: Path,
    t: Translate,
    school_ids: SchoolIds,
    report: ReportDue,
    out: Path,
    limit: int | None = None,
) -> Bundle | None:
    """Every school's signed file for one report, named by the school's short name, with a sheet of
    every school of the scope (on time, late, not sent; the file or the link). None when no school
    in the scope has sent it."""
    with db.session() as s:
        rows = q.report_rows(s, school_ids, report.key, SENT)
        documents = [d for _, r in rows if r is not None and (d := _document(r)) and "media_id" in d]
        ids = [int(d["media_id"]) for d in documents]
        media = {m.id: m for m in q.media_files(s, ids)}
    if not any(r is not None for _, r in rows):
        return None
    used: set[str] = set()
    folders: list[Folder] = []
    lines: list[list[Value]] = []
    for school, row in rows:
        state = (
            t("bundle.state.missing")
            if row is None
            else t("bundle.state.late" if row.late else "bundle.state.on_time")
        )
        shown = ""
        if row is not None:
            document = _document(row)
            path = _stored(media, document, media_root) if document else None
            if path is not None:
                name = press.unique(safe_filename(press.school_short_name(school.name)), used)
                shown = f"{name}{path.suffix.lower()}"
                folders.append(Folder(entries=[Entry.file(shown, path)]))
            elif document and document.get("link"):
                shown = str(document["link"])
            else:
                shown = t("bundle.no_file")
        lines.append([len(lines) + 1, school.name, school.level, state, shown])

    def index(parts: dict[str, str]) -> Entry:
        return Entry.text(t("bundle.file.index") + ".xlsx", index_sheet(t, REPORT_COLUMNS, lines))

    out.parent.mkdir(parents=True, exist_ok=True)
    bundle = write_parts(t, out, folders, index, limit)
    bundle.items = sum(1 for _, r in rows if r is not None)
    bundle.files = len(folders)
    return bundle


def _document(row: Submission) -> dict[str, Any] | None:
    document = row.answers.get("document")
    return document if isinstance(document, dict) else None


# ---- the command ------------------------------------------------------------------------------------


def zip_stem(office: Office | None, what: str) -> str:
    """ "<Office short name>_<what>", safe on every file system."""
    short = press.office_short_name(office.name) if office is not None else ""
    return safe_filename(f"{short}_{what}" if short else what)


def _fresh_dir(ctx: Context) -> Path:
    """A new folder for this user's bundle; their earlier ones go (already sent: a chat runs in order)."""
    assert ctx.user is not None
    root = Path(ctx.settings.media_dir) / "bundles"
    for old in root.glob(f"u{ctx.user.id}-*"):
        shutil.rmtree(old, ignore_errors=True)
    return root / f"u{ctx.user.id}-{ctx.clock.now():%Y%m%d%H%M%S%f}"


async def bundle_command(msg: Incoming, ctx: Context) -> list[Reply]:
    """/bundle [month] or /bundle report <name>: the ZIP, in parts when it is over the upload limit."""
    assert ctx.user is not None
    folded = fold(msg.args)
    for word in REPORT_WORDS:
        if folded == word or folded.startswith(word + " "):
            return report_command(msg.args, ctx)
    month = month_or_current(msg.args, Calendar(ctx.clock, ctx.settings.schedule).current()).period
    if month is None:
        return [Reply(ctx.t("bundle.bad_month"))]
    with ctx.db.session() as s:
        office = s.get(Office, ctx.user.office_id) if ctx.user.office_id else None
    out = _fresh_dir(ctx) / f"{zip_stem(office, month.key)}.zip"
    built = build_bundle(
        ctx.db,
        Path(ctx.settings.media_dir),
        ctx.t,
        scope.ids_seen_by(ctx.user),
        month,
        out,
        ctx.clock.tz,
        limit=ctx.upload_limit,
    )
    if built is None:
        return [Reply(ctx.t("bundle.empty", month=month.label))]
    summary = ctx.t("bundle.ready", month=month.label, items=built.items, files=built.files)
    if built.missing:
        summary += "\n" + ctx.t("bundle.some_missing", count=len(built.missing))
    return _delivered(ctx, summary, built)


def report_command(args: str, ctx: Context) -> list[Reply]:
    """/bundle report <name>: every school's signed file for that report."""
    assert ctx.user is not None
    cal = Calendar(ctx.clock, ctx.settings.schedule)
    names = ", ".join(item.name for item in ctx.settings.schedule.periodic)
    report = report_named(cal, args)
    if report is None:
        return [Reply(ctx.t("bundle.bad_report", names=names))]
    with ctx.db.session() as s:
        office = s.get(Office, ctx.user.office_id) if ctx.user.office_id else None
    out = _fresh_dir(ctx) / f"{zip_stem(office, report.name)}.zip"
    media_root = Path(ctx.settings.media_dir)
    built = build_report_bundle(
        ctx.db, media_root, ctx.t, scope.ids_seen_by(ctx.user), report, out, ctx.upload_limit
    )
    if built is None:
        return [Reply(ctx.t("bundle.report_empty", report=report.name))]
    summary = ctx.t("bundle.report_ready", report=report.name, items=built.items, files=built.files)
    return _delivered(ctx, summary, built)


def _delivered(ctx: Context, summary: str, built: Bundle) -> list[Reply]:
    """The summary, then each ZIP (numbered when in parts), then any file too large for a part, sent
    by its platform reference when it came on this channel."""
    if len(built.parts) > 1:
        summary += "\n" + ctx.t(
            "bundle.in_parts", parts=len(built.parts), size=_megabytes(ctx.upload_limit or 0)
        )
    replies = [Reply(summary, file_path=str(built.parts[0]))]
    replies += [Reply("", file_path=str(path)) for path in built.parts[1:]]
    if built.apart:
        by_reference = tuple(
            Attachment(
                a.media.kind if a.media.kind in ("photo", "video") else "document",
                a.name,
                a.media.file_id,
                a.media.channel,
            )
            for a in built.apart
            if a.media is not None and a.media.channel == ctx.channel and a.media.file_id
        )
        key = "bundle.apart_sent" if by_reference else "bundle.apart_listed"
        replies.append(Reply(ctx.t(key, count=len(built.apart)), attachments=by_reference))
    return replies
