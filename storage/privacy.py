"""A person's data on request (Decree 13/2023/NĐ-CP): find it, export it, erase it; expire old media.

A person is the accounts that share a `person_id` (Telegram and Zalo), found by an account id or a
phone number. What is held about them: the accounts (names, phone, chat ids), drafts, messages kept
and sent to them, what they sent (submissions and versions), their review actions and incident
acknowledgements, the nominations naming them (a nomination whose nominee's name, folded, equals the
person's full name, in the schools of their accounts' scope; or whose contact phone is theirs) and the
files in all of these.

Erasing is a list of steps, one per table (`ERASE_STEPS`), then one sweep (`scrub_everywhere`) that
replaces what is left of the person's names, phones and chat ids in every text and JSON column of
every table but the audit record. What the office must keep (submissions, reviews, counts) stays,
with the person replaced by their role (the words of locales [privacy]). Each request is recorded in
`PrivacyRequest` with counts only.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from unicodedata import normalize

from sqlalchemy import JSON, Column, String, Table, cast, delete, or_, update
from sqlmodel import Session, SQLModel, col, select

from storage import scope
from storage.models import (
    CancelledDraft,
    CodeAttempt,
    Draft,
    Inbox,
    IncidentAck,
    IncidentMessage,
    LinkCode,
    MediaFile,
    MediaNote,
    Outbox,
    PrivacyRequest,
    Received,
    ReviewAction,
    Submission,
    SubmissionVersion,
    User,
)
from storage.text import fold, nfc

log = logging.getLogger("schoolbot.privacy")

NOMINATION = "nomination"
AUDIT_TABLE = "privacyrequest"
PHONE_CORE = re.compile(r"^[1-9]\d{8,9}$")  # a Vietnamese number without its 0 or +84


def phone_core(text: str) -> str | None:
    """ "0912 345 678", "+84912345678", "84912345678" -> "912345678"; None when not a phone number."""
    compact = re.sub(r"[\s.\-()]", "", text.strip())
    for prefix in ("+84", "84", "0"):
        if compact.startswith(prefix) and len(compact) - len(prefix) in (9, 10):
            compact = compact[len(prefix) :]
            break
    else:
        return None
    return compact if PHONE_CORE.match(compact) else None


def phone_pattern(core: str) -> re.Pattern[str]:
    """The number in any of its written forms: 0…, +84…, 84…, with spaces, dots or dashes."""
    digits = r"[\s.\-]?".join(core)
    return re.compile(rf"(?<!\d)(?:\+?84|0)[\s.\-]?{digits}(?!\d)")


@dataclass(frozen=True)
class Person:
    """The accounts of one person and what identifies them in text."""

    key: int  # the person's first account id: what the audit record names
    accounts: tuple[int, ...]
    names: tuple[str, ...]  # full names and display names that are a person's (`personal`)
    phones: tuple[str, ...]  # phone cores ("912345678")
    chats: tuple[str, ...]  # chat ids and external ids
    school_ids: tuple[int, ...]
    office_ids: tuple[int, ...]

    @property
    def full_names(self) -> set[str]:
        """The names, folded: how a nominee's name is matched."""
        return {fold(n) for n in self.names}


def find_person(s: Session, ref: str) -> Person | None:
    """The person with this account id, or with an account holding this phone number; None if nobody."""
    ref = ref.strip()
    core = phone_core(ref) if not ref.isdigit() or len(ref) >= 10 else None
    first: User | None = None
    if core is not None:
        forms = [f"{prefix}{core}" for prefix in ("0", "+84", "84")]
        first = s.exec(select(User).where(col(User.phone).in_(forms)).order_by(col(User.id))).first()
    elif ref.isdigit():
        first = s.get(User, int(ref))
    if first is None:
        return None
    key = first.person_id or first.id or 0
    rows = list(s.exec(select(User).where(or_(col(User.id) == key, col(User.person_id) == key))))
    rows = rows or [first]
    return Person(
        key=key,
        accounts=tuple(sorted(u.id or 0 for u in rows)),
        names=tuple(sorted({nfc(n) for u in rows for n in (u.full_name, u.display_name) if personal(n)})),
        phones=tuple(sorted({c for u in rows if (c := phone_core(u.phone))})),
        chats=tuple(sorted({c for u in rows for c in (u.chat_id, u.external_id) if len(c) >= 5})),
        school_ids=tuple(sorted({u.school_id for u in rows if u.school_id is not None})),
        office_ids=tuple(
            sorted({u.office_id for u in rows if u.office_id is not None and u.school_id is None})
        ),
    )


# Words of a title or an institution, as written (with diacritics: "Trương" and "Đào" are names, "trưởng"
# and "đạo" are not): a platform name made of them ("Hiệu Trưởng", "THCS Pú Nhi") names no one, and
# replacing it everywhere would rewrite every school's data.
_TITLES = """hiệu trưởng phó trường th thcs thpt mn gdtx tiểu mầm phòng sở gd&đt gdđt chuyên viên
    lãnh đạo giáo quản trị admin văn thư kế toán"""
TITLE_WORDS = frozenset(_TITLES.split())


def personal(name: str) -> bool:
    """A name worth looking for in other rows: two words or more, none a title's or an institution's."""
    words = nfc(name).lower().split()
    return len(words) > 1 and not any(w in TITLE_WORDS for w in words)


# ---- what is held ----------------------------------------------------------------------------------


def row_dict(row: SQLModel) -> dict[str, Any]:
    """A row as JSON-ready values."""
    return row.model_dump(mode="json")


def naming(person: Person, answers: dict[str, Any]) -> str:
    """How a nomination names the person: "nominee" (the name), "contact" (the phone) or ""."""
    name = fold(str(answers.get("name") or ""))
    if name and name in person.full_names:
        return "nominee"
    if person.phones and phone_core(str(answers.get("contact_phone") or "")) in person.phones:
        return "contact"
    return ""


def nominations_naming(s: Session, person: Person) -> list[tuple[Submission, str]]:
    """The nominations naming the person, in the schools their accounts belong to or oversee."""
    where = [col(Submission.school_id).in_(person.school_ids)] if person.school_ids else []
    where += [col(Submission.school_id).in_(scope.school_ids(scope.Scope(o))) for o in person.office_ids]
    if not where:
        return []
    rows = s.exec(
        select(Submission).where(col(Submission.kind) == NOMINATION, or_(*where)).order_by(col(Submission.id))
    )
    return [(row, how) for row in rows if (how := naming(person, row.answers))]


def media_ids(value: Any) -> Iterator[int]:
    """Every `media_id` inside answers (lists and dicts, at any depth)."""
    if isinstance(value, dict):
        if "media_id" in value and isinstance(value["media_id"], int):
            yield value["media_id"]
        for item in value.values():
            yield from media_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from media_ids(item)


@dataclass
class Held:
    """Everything held about a person: JSON-ready rows per part, and their files."""

    parts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    media: list[MediaFile] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rows per part, and files."""
        return {**{k: len(v) for k, v in self.parts.items()}, "media": len(self.media)}


def held(s: Session, person: Person) -> Held:
    """Everything held about the person, read in one session."""
    ids = person.accounts
    mine = list(
        s.exec(select(Submission).where(col(Submission.user_id).in_(ids)).order_by(col(Submission.id)))
    )
    versions = list(s.exec(select(SubmissionVersion).where(col(SubmissionVersion.user_id).in_(ids))))
    drafts: list[Draft | CancelledDraft] = [
        *s.exec(select(Draft).where(col(Draft.user_id).in_(ids))),
        *s.exec(select(CancelledDraft).where(col(CancelledDraft.user_id).in_(ids))),
    ]
    named = nominations_naming(s, person)
    out = Held()
    out.parts = {
        "accounts": [row_dict(u) for u in s.exec(select(User).where(col(User.id).in_(ids)))],
        "messages_kept": [row_dict(r) for r in s.exec(select(Inbox).where(col(Inbox.user_id).in_(ids)))],
        "messages_sent_to_them": [
            row_dict(r) for r in s.exec(select(Outbox).where(col(Outbox.user_id).in_(ids)))
        ],
        "drafts": [{"table": type(d).__name__, **row_dict(d)} for d in drafts],
        "submissions": [row_dict(r) for r in mine],
        "submission_versions": [row_dict(r) for r in versions],
        "review_actions": [
            row_dict(r) for r in s.exec(select(ReviewAction).where(col(ReviewAction.user_id).in_(ids)))
        ],
        "incident_acks": [
            row_dict(r) for r in s.exec(select(IncidentAck).where(col(IncidentAck.user_id).in_(ids)))
        ],
        "incident_messages": [  # what they wrote on a case: the office's guidance or the school's update
            row_dict(r) for r in s.exec(select(IncidentMessage).where(col(IncidentMessage.user_id).in_(ids)))
        ],
        "nominations_naming_them": [{"named_as": how, **row_dict(r)} for r, how in named],
    }
    answers: list[Any] = [r.answers for r in mine] + [v.answers for v in versions]
    answers += [{"media": m["media"]} for m in out.parts["incident_messages"]]
    answers += [d.answers for d in drafts] + [r.answers for r, _ in named]
    wanted = sorted({i for a in answers for i in media_ids(a)})
    out.media = list(s.exec(select(MediaFile).where(col(MediaFile.id).in_(wanted)))) if wanted else []
    return out


# ---- erasing -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    """What replaces the person: their role per account, a nominee's role, a removed phone in text."""

    accounts: dict[int, str]
    nominee: Callable[[dict[str, Any]], str]
    removed: str

    @property
    def person(self) -> str:
        """The role of the person's first account, for mentions in text."""
        return next(iter(self.accounts.values()), self.removed)


@dataclass
class Erasure:
    """One erase in progress: who, with what words, the counts so far and the files to delete."""

    person: Person
    labels: Labels
    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)  # stored files to delete once the erase is committed

    def add(self, name: str, count: int) -> None:
        """Count `count` rows (or files) under `name`."""
        if count:
            self.counts[name] = self.counts.get(name, 0) + count

    def scrub(self, value: Any) -> Any:
        """Text (or JSON) with the person's names, phones and chat ids replaced."""
        if isinstance(value, str):
            return self._scrub_text(value)
        if isinstance(value, list):
            return [self.scrub(v) for v in value]
        if isinstance(value, dict):
            return {k: self.scrub(v) for k, v in value.items()}
        return value

    def _scrub_text(self, text: str) -> str:
        for core in self.person.phones:
            pattern = phone_pattern(core)
            if pattern.fullmatch(text.strip()):
                return ""
            text = pattern.sub(self.labels.removed, text)
        for name in self.person.names:
            for form, label in ((name, self.labels.person), (fold(name), fold(self.labels.person))):
                whole = rf"(?<!\w){re.escape(form)}(?!\w)"
                text = re.sub(whole, label, normalize("NFC", text), flags=re.IGNORECASE)
        for chat in self.person.chats:
            text = re.sub(rf"(?<![\w-]){re.escape(chat)}(?!\w)", "", text)
        return text

    def needles(self) -> list[str]:
        """Strings whose presence marks a cell to scrub (raw, folded, and as JSON escapes them)."""
        words = [
            *self.person.names,
            *(fold(n) for n in self.person.names),
            *self.person.phones,
            *self.person.chats,
        ]
        escaped = [json.dumps(w)[1:-1] for w in words]
        return sorted({w for w in [*words, *escaped] if w})


Step = Callable[[Session, Erasure], None]


def drop_drafts(s: Session, e: Erasure) -> None:
    """Drafts and cancelled drafts: the person's own work in progress, not the office's."""
    for model in (Draft, CancelledDraft):
        e.add("drafts", _delete(s, model, col(model.user_id).in_(e.person.accounts)))


def drop_kept_messages(s: Session, e: Erasure) -> None:
    """Messages kept for them (Inbox), their wrong registration codes and linking codes."""
    e.add("messages_kept", _delete(s, Inbox, col(Inbox.user_id).in_(e.person.accounts)))
    e.add("codes", _delete(s, CodeAttempt, col(CodeAttempt.user_id).in_(e.person.accounts)))
    e.add("codes", _delete(s, LinkCode, col(LinkCode.user_id).in_(e.person.accounts)))


def empty_outbox(s: Session, e: Erasure) -> None:
    """Messages to them: what was to go is cancelled; none keeps its text or chat id (the keys stay,
    so nothing is made again)."""
    mine = col(Outbox.user_id).in_(e.person.accounts)
    s.execute(
        update(Outbox).where(mine, col(Outbox.status).in_(("pending", "claimed"))).values(status="cancelled")
    )
    done = s.execute(update(Outbox).where(mine).values(chat_id="", payload={}, last_error="", lease_owner=""))
    e.add("messages_sent_to_them", int(getattr(done, "rowcount", 0) or 0))


def drop_waiting_updates(s: Session, e: Erasure) -> None:
    """Updates from them still waiting in the durable inbox (their own words, as the platform sent them)."""
    if e.person.chats:
        e.add("waiting_updates", _delete(s, Received, col(Received.chat).in_(e.person.chats)))


def erase_nominees(s: Session, e: Erasure) -> None:
    """A nomination naming the person: the nominee's name becomes their role, their photos go."""
    for row, how in nominations_naming(s, e.person):
        if how != "nominee":
            continue
        gone: set[int] = set()
        row.answers = _unnamed(row.answers, e.labels.nominee(row.answers), gone)
        row.search = fold(e.labels.nominee(row.answers))
        for version in s.exec(
            select(SubmissionVersion).where(col(SubmissionVersion.submission_id) == row.id)
        ):
            version.answers = _unnamed(version.answers, e.labels.nominee(version.answers), gone)
            s.add(version)
        s.add(row)
        e.add("nominations", 1)
        e.add("photos_erased", len(gone))
        e.files += erase_media(s, gone, MediaNote.ERASED)


def _unnamed(answers: dict[str, Any], label: str, gone: set[int]) -> dict[str, Any]:
    photos = answers.get("photos") or []
    gone.update(media_ids(photos))
    out = {**answers, "name": label, "photos": []}
    if photos:
        out["photos_erased"] = len(photos)
    return out


def anonymise_accounts(s: Session, e: Erasure) -> None:
    """Accounts: names, phone, chat ids and external ids go; the account stays (what they sent and did
    refers to it), named by its role, blocked so nothing is sent to it."""
    for user in s.exec(select(User).where(col(User.id).in_(e.person.accounts))):
        user.display_name = e.labels.accounts.get(user.id or 0, e.labels.removed)
        user.full_name = user.phone = user.chat_id = ""
        user.external_id = f"erased-{user.id}"
        user.blocked, user.menu = True, {}
        s.add(user)
        e.add("accounts", 1)


def scrub_everywhere(s: Session, e: Erasure) -> None:
    """What is left of the person's names, phones and chat ids in any text or JSON column of any table
    (review notes, the outbox's messages to others, file names, a new table's text), but the audit record."""
    needles = e.needles()
    if not needles:
        return
    for table in SQLModel.metadata.sorted_tables:
        if table.name != AUDIT_TABLE:
            e.add("other_mentions", _scrub_table(s, table, needles, e))


def _scrub_table(s: Session, table: Table, needles: list[str], e: Erasure) -> int:
    columns = [c for c in table.columns if _holds_text(c) and not c.primary_key]
    keys = list(table.primary_key.columns)
    if not columns or not keys:
        return 0
    hits = [cast(c, String).like(f"%{_literal(n)}%", escape="!") for c in columns for n in needles]
    changed = 0
    for row in s.execute(table.select().where(or_(*hits))).mappings().all():
        values = {c.name: e.scrub(row[c.name]) for c in columns if row[c.name] is not None}
        values = {k: v for k, v in values.items() if v != row[k]}
        if values:
            s.execute(table.update().where(*(k == row[k.name] for k in keys)).values(**values))
            changed += 1
    return changed


def _holds_text(column: Column[Any]) -> bool:
    """A text or JSON column (sqlmodel's AutoString wraps String)."""
    kind = getattr(column.type, "impl_instance", column.type)
    return isinstance(kind, String | JSON)


def _literal(text: str) -> str:
    """`text` matched as it is by LIKE ... ESCAPE '!' (a backslash is literal then, on PostgreSQL too)."""
    return re.sub(r"([!%_])", r"!\1", text)


ERASE_STEPS: tuple[Step, ...] = (
    drop_drafts,
    drop_kept_messages,
    empty_outbox,
    drop_waiting_updates,
    erase_nominees,
    anonymise_accounts,
    scrub_everywhere,  # last: it finds what the steps before did not name
)


def erase(s: Session, person: Person, labels: Labels) -> Erasure:
    """Run every step in this session (one transaction: all or nothing); the counts per part and the
    files to delete (`remove_files`) once it is committed."""
    e = Erasure(person, labels)
    for step in ERASE_STEPS:
        step(s, e)
    return e


def _delete(s: Session, model: type[SQLModel], where: Any) -> int:
    result = s.execute(delete(model).where(where))
    return int(getattr(result, "rowcount", 0) or 0)


def erase_media(s: Session, ids: Iterable[int], note: MediaNote) -> list[str]:
    """Keep these files' rows as the record of what was there, with `note` and no stored copy (an
    erased one keeps no name or platform reference either); the stored files no other row shares,
    for `remove_files` once this is committed."""
    ids = sorted(set(ids))
    if not ids:
        return []
    rows = list(s.exec(select(MediaFile).where(col(MediaFile.id).in_(ids))))
    paths = {r.path for r in rows if r.path}
    shared = set(
        s.exec(select(MediaFile.path).where(col(MediaFile.path).in_(paths), col(MediaFile.id).not_in(ids)))
    )
    for row in rows:
        row.path, row.note = "", note
        if note == MediaNote.ERASED:
            row.file_name = row.file_id = row.file_unique_id = row.sha256 = ""
        s.add(row)
    return sorted(paths - shared)


def remove_files(root: Path, paths: Iterable[str]) -> int:
    """Delete these stored files (after the transaction that let them go); how many were there."""
    removed = 0
    for path in paths:
        target = root / path
        if target.is_file():
            target.unlink()
            removed += 1
    return removed


# ---- the audit record, and media after their time ------------------------------------------------------


def record(s: Session, kind: str, person: int, asked_by: str, counts: dict[str, int], now: datetime) -> int:
    """Record a request (never the data itself); its number."""
    row = PrivacyRequest(kind=kind, person=person, asked_by=asked_by[:200], counts=counts, created_at=now)
    s.add(row)
    s.flush()
    log.info("privacy %s #%s for person %d: %s", kind, row.id, person, counts)
    return row.id or 0


def erased_before(s: Session, person: int) -> PrivacyRequest | None:
    """The first erase recorded for this person, if any."""
    stmt = select(PrivacyRequest).where(
        col(PrivacyRequest.person) == person, col(PrivacyRequest.kind) == "erase"
    )
    return s.exec(stmt.order_by(col(PrivacyRequest.id))).first()


EXPIRING = ("photo", "video")


def expire_media(s: Session, before: datetime) -> tuple[int, list[str]]:
    """Photos and videos stored before `before` lose their stored copy; their rows stay as the record
    (note "expired"), and documents (a report's signed .docx or .pdf) are kept. (rows, files to
    delete with `remove_files` once committed)."""
    stmt = select(MediaFile.id).where(
        col(MediaFile.created_at) < before,
        col(MediaFile.path) != "",
        or_(
            col(MediaFile.kind).in_(EXPIRING),
            col(MediaFile.mime_type).like("image/%"),
            col(MediaFile.mime_type).like("video/%"),
        ),
    )
    ids = list(s.exec(stmt))
    return len(ids), erase_media(s, [i for i in ids if i is not None], MediaNote.EXPIRED)
