"""SQLModel tables: the organisation, users, drafts, submissions, media and delivery records."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, TypeDecorator, UniqueConstraint
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as naive UTC and gives them back aware, on every engine."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_field(nullable: bool = False, index: bool = False) -> Any:
    """A UTC datetime column."""
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def json_field() -> Any:
    """A JSON column holding a dict."""
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


LEVELS = ("MN", "TH", "THCS", "THPT", "GDTX")
ROLES = ("principal", "officer", "leader", "admin")
OFFICE_KINDS = ("province", "district")


class Office(SQLModel, table=True):
    """A provincial department (Sở) or a district office (Phòng)."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=32)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="office.id", index=True)


class School(SQLModel, table=True):
    """A school, reporting to one office."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=32)
    name: str = Field(max_length=200)
    name_folded: str = Field(index=True, max_length=200)
    level: str = Field(max_length=32, index=True)
    office_id: int = Field(foreign_key="office.id", index=True)


class User(SQLModel, table=True):
    """One chat account on one channel; registered when it has a role."""

    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        # When each school joined (its first principal's registration), read from the index alone.
        Index("ix_user_school_role_joined", "school_id", "role", "registered_at", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    chat_id: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=200)
    role: str | None = Field(default=None, max_length=16, index=True)
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    office_id: int | None = Field(default=None, foreign_key="office.id", index=True)
    locale: str = Field(default="", max_length=8)
    levels: str = Field(default="", max_length=64)  # an officer limited to these levels ("MN", "TH,THCS")
    # The same person on several channels: the accounts share the id of the first one.
    person_id: int | None = Field(default=None, index=True)
    blocked: bool = Field(default=False)
    menu: dict[str, Any] = json_field()  # the choices last shown, for channels without buttons
    created_at: datetime = utc_field()
    last_seen_at: datetime | None = utc_field(nullable=True)
    # When the account got its role (a code redeemed, accounts linked); None: when it was created.
    registered_at: datetime | None = utc_field(nullable=True)
    # The person behind the account, as they gave it (registration, /profile): shown instead of the
    # platform nickname wherever the office reads who did something.
    full_name: str = Field(default="", max_length=120)
    position: str = Field(default="", max_length=32)  # a school position key ("principal", "vice", "media")
    phone: str = Field(default="", max_length=20)  # a callback number, +84 form


class Invite(SQLModel, table=True):
    """A single-use, expiring registration code for a school or an office."""

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=32)
    role: str = Field(max_length=16)
    school_id: int | None = Field(default=None, foreign_key="school.id")
    office_id: int | None = Field(default=None, foreign_key="office.id")
    levels: str = Field(default="", max_length=64)  # passed on to the officer who registers with it
    created_at: datetime = utc_field()
    expires_at: datetime = utc_field()
    used_at: datetime | None = utc_field(nullable=True)
    used_by_id: int | None = Field(default=None, foreign_key="user.id")


class CodeAttempt(SQLModel, table=True):
    """A wrong registration code, kept to throttle guessing."""

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = utc_field(index=True)


class DraftMode(StrEnum):
    """Where a draft stands; the value is what its `mode` column holds."""

    FILL = "fill"  # answering the steps in turn
    EDIT = "edit"  # changing one answer from the review screen
    REVIEW = "review"  # on the review screen, before sending
    SENT = "sent"  # sent: kept so that a second tap on send is recognised


class Draft(SQLModel, table=True):
    """A half-filled form, written after every step. Its id is never given again, on SQLite too
    (AUTOINCREMENT): a button of a dropped draft must not act on a new one."""

    __table_args__ = (UniqueConstraint("user_id", "form"), {"sqlite_autoincrement": True})

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    form: str = Field(max_length=32)
    step: str = Field(max_length=64)
    mode: str = Field(default=DraftMode.FILL, max_length=16)  # a DraftMode
    answers: dict[str, Any] = json_field()
    token: str = Field(max_length=40)  # the submit idempotency key
    version: int = Field(default=1)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()


class CancelledDraft(SQLModel, table=True):
    """A draft its writer cancelled, kept for a day so that /drafts can bring it back. Its id is never
    given again (AUTOINCREMENT on SQLite): an old restore button must not bring back another one."""

    __table_args__ = ({"sqlite_autoincrement": True},)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    form: str = Field(max_length=32)
    step: str = Field(max_length=64)
    mode: str = Field(max_length=16)  # the DraftMode it was in
    answers: dict[str, Any] = json_field()
    steps: dict[str, Any] = json_field()  # {"keys": [...]}: the form's step keys when it was cancelled
    created_at: datetime = utc_field()
    cancelled_at: datetime = utc_field(index=True)


class Submission(SQLModel, table=True):
    """Something a school sent: an article, a nomination, a report, an incident."""

    # A month's (or semester's, or report's) rows per school, read from the index alone (leaders' status);
    # the months whose articles changed lately, for the clock's refresh of the month rollup.
    __table_args__ = (
        Index("ix_submission_kind_period_school", "kind", "period", "school_id", "late", "status"),
        Index("ix_submission_kind_updated", "kind", "updated_at", "period"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    period: str | None = Field(default=None, max_length=16, index=True)
    status: str = Field(max_length=16, index=True)
    answers: dict[str, Any] = json_field()
    token: str = Field(unique=True, max_length=40)
    version: int = Field(default=1)
    late: bool = Field(default=False)
    submitted_at: datetime | None = utc_field(nullable=True)
    review_note: str = Field(default="", max_length=2000)
    reviewed_by_id: int | None = Field(default=None, foreign_key="user.id")
    reviewed_at: datetime | None = utc_field(nullable=True)
    # What /find matches: title, theme, report name, a nominee's name when it may be shown; folded.
    search: str = Field(default="", max_length=1000)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()


class MonthCounts(SQLModel):
    """A month's article counts for some schools; every one a sum over schools.

    `expected`: schools that owed the month (a principal before its end, or an article for it anyway);
    `sent`: of those, the ones with an article; `on_time`: with one on time; `approved`, `published`:
    with one approved, published; `articles`: how many articles. The rollup stores them
    (`MonthRollup`), the leaders' figures add to them (`storage.stats.Figures`).
    """

    expected: int = 0
    sent: int = 0
    on_time: int = 0
    approved: int = 0
    published: int = 0
    articles: int = 0


class MonthRollup(MonthCounts, table=True):
    """A closed month's article counts for the schools one office holds directly, of one level.

    A scope's month is the sum of the rows of the offices in its tree (and of its levels). The clock's
    sweep keeps the rows fresh (handlers/leaders/rollup.py); `computed_at` is when they were read.
    """

    period: str = Field(primary_key=True, max_length=7)
    office_id: int = Field(primary_key=True, foreign_key="office.id")
    level: str = Field(primary_key=True, max_length=32)
    computed_at: datetime = utc_field()


class SubmissionVersion(SQLModel, table=True):
    """Every version a school sent of a submission, kept when it is edited or resubmitted."""

    __table_args__ = (UniqueConstraint("submission_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    version: int
    answers: dict[str, Any] = json_field()
    created_at: datetime = utc_field()  # when this version was sent
    user_id: int | None = Field(default=None, foreign_key="user.id")  # who sent it (None: before 0009)
    drafted_at: datetime | None = utc_field(nullable=True)  # when its draft was begun


class PlanTheme(SQLModel, table=True):
    """A theme of an office's communication plan for a month ("2026-11") or a quarter ("2026-Q4")."""

    __table_args__ = (UniqueConstraint("office_id", "period", "theme"),)

    id: int | None = Field(default=None, primary_key=True)
    office_id: int = Field(foreign_key="office.id", index=True)
    period: str = Field(max_length=8, index=True)
    theme: str = Field(max_length=300)
    notes: str = Field(default="", max_length=1000)


class MediaNote(StrEnum):
    """Why a file's bytes are not in the media dir; the value is what `MediaFile.note` holds."""

    STORED = ""  # the bytes are there
    KEPT_BY_REFERENCE = "kept_by_reference"  # the download failed: fetched again later
    TOO_LARGE = "too_large"  # over the download limit: only the platform's reference is kept
    EXPIRED = "expired"  # a closed month's photo or video, deleted after privacy.media_keep_months
    ERASED = "erased"  # a photo of a person who asked for their data to be erased (`privacy erase`)


class MediaFile(SQLModel, table=True):
    """A photo, video or document: the platform reference and, when downloaded, the stored copy."""

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    kind: str = Field(max_length=16)
    file_id: str = Field(max_length=256)
    file_unique_id: str = Field(default="", max_length=128, index=True)
    sha256: str = Field(default="", max_length=64, index=True)
    mime_type: str = Field(default="", max_length=100)
    file_name: str = Field(default="", max_length=255)
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    size: int | None = None
    path: str = Field(default="", max_length=500)
    note: str = Field(default=MediaNote.STORED, max_length=200)  # a MediaNote
    created_at: datetime = utc_field()


class ProcessedUpdate(SQLModel, table=True):
    """An update already handled, so a redelivery is processed once."""

    key: str = Field(primary_key=True, max_length=96)
    created_at: datetime = utc_field(index=True)


class Received(SQLModel, table=True):
    """A platform update as it came (the durable inbox), stored before the platform is told it
    arrived; deleted in the transaction that handles it. Drained per chat in `id` order."""

    __table_args__ = (Index("ix_received_channel_chat", "channel", "chat", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    key: str = Field(max_length=96, unique=True)  # "telegram:<update_id>", as ProcessedUpdate's
    chat: str = Field(max_length=64)  # whose turn it takes; "" for an update without a chat
    payload: dict[str, Any] = json_field()
    received_at: datetime = utc_field()


INCIDENT_STATES = ("new", "acked", "working", "resolved", "closed")


class Incident(SQLModel, table=True):
    """A communications incident raised by a school, handled by its office as a case.

    Its state moves Mới (new) → Đã tiếp nhận (acked: `holder_id` took it) → Đang xử lý (working) →
    Đã xử lý (resolved: `result`, optionally `result_link`) → Đóng (closed); each move is a conditional
    UPDATE on the state it starts from, so two officers pressing at once cannot both move it.
    """

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", unique=True)
    school_id: int = Field(foreign_key="school.id", index=True)
    severity: str = Field(max_length=16)
    created_at: datetime = utc_field(index=True)
    happened_at: datetime | None = utc_field(nullable=True)  # when it happened, as the school gave it
    phone: str = Field(default="", max_length=20)  # the reporter's callback number, 0xxxxxxxxx
    state: str = Field(default="new", max_length=16, index=True)  # one of INCIDENT_STATES
    holder_id: int | None = Field(default=None, foreign_key="user.id")  # who took it (the first ack)
    acked_at: datetime | None = utc_field(nullable=True)
    resolved_at: datetime | None = utc_field(nullable=True)
    result: str = Field(default="", max_length=2000)
    result_link: str = Field(default="", max_length=2000)
    closed_at: datetime | None = utc_field(nullable=True)
    escalated_at: datetime | None = utc_field(nullable=True)  # sent again to the leaders, unacknowledged


class IncidentMessage(SQLModel, table=True):
    """One message on a case: the office's guidance or the school's update, kept in order."""

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    side: str = Field(max_length=8)  # "office" or "school"
    text: str = Field(default="", max_length=4096)
    links: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    media: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = utc_field()


class IncidentAck(SQLModel, table=True):
    """An officer or leader saying they have seen an incident."""

    __table_args__ = (UniqueConstraint("incident_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    created_at: datetime = utc_field()


class Inbox(SQLModel, table=True):
    """Messages that could not reach a user at once (offline console user, no live channel).

    They are shown first the next time the user writes. The outbox (reminders issue) takes over
    bulk delivery; this keeps a one-off alert from being lost meanwhile.
    """

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    payload: dict[str, Any] = json_field()
    created_at: datetime = utc_field()
    delivered_at: datetime | None = utc_field(nullable=True)


OUTBOX_STATUSES = ("pending", "claimed", "sent", "blocked", "dead", "cancelled")


class Outbox(SQLModel, table=True):
    """One message to deliver: a reminder, an escalation, an alert. The single source of truth.

    (channel, user_id, kind, period, step) is unique, so a sweep that runs twice, concurrently or after
    a restart creates nothing new. A sender claims rows with a lease; an expired lease returns the row
    to the queue. Priority 0 is the alert lane, claimed before any bulk row and sent even in quiet hours.
    """

    __table_args__ = (
        UniqueConstraint("channel", "user_id", "kind", "period", "step", name="uq_outbox_key"),
        Index("ix_outbox_queue", "status", "priority", "not_before", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_id: int = Field(foreign_key="user.id", index=True)
    chat_id: str = Field(max_length=64, index=True)
    kind: str = Field(max_length=32, index=True)  # article-remind, report-late, direct...
    period: str = Field(max_length=100)  # "2026-11", "nam-2026", or the update that caused it
    step: str = Field(max_length=32)  # "d5", "d5-later", "e1", "0"...
    school_id: int | None = Field(default=None, foreign_key="school.id", index=True)
    payload: dict[str, Any] = json_field()  # a Reply.to_payload()
    priority: int = Field(default=10)
    quiet: bool = Field(default=True)  # held back in quiet hours and pauses
    status: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    not_before: datetime = utc_field()
    lease_owner: str = Field(default="", max_length=64)
    lease_until: datetime | None = utc_field(nullable=True)
    last_error: str = Field(default="", max_length=500)
    created_at: datetime = utc_field()
    updated_at: datetime = utc_field()
    sent_at: datetime | None = utc_field(nullable=True)
    # The platform's id of the message that carried the buttons, once sent: what a later edit changes.
    ref: str = Field(default="", max_length=64)

    @property
    def key(self) -> str:
        """channel:recipient:kind:period:step, as shown to operators."""
        return f"{self.channel}:{self.user_id}:{self.kind}:{self.period}:{self.step}"


class Announcement(SQLModel, table=True):
    """A message an office sent its schools (/announce): what it said, to whom, how urgently.

    `token` is its draft's submit key, so a second tap or a redelivered update sends nothing more. The
    recipients are its receipts; the messages themselves are outbox rows (kind "announce").
    """

    id: int | None = Field(default=None, primary_key=True)
    token: str = Field(unique=True, max_length=40)
    office_id: int = Field(foreign_key="office.id", index=True)
    user_id: int = Field(foreign_key="user.id")  # who sent it
    text: str = Field(max_length=4096)
    attachment: dict[str, Any] = json_field()  # the photo or document sent with it ({}: none)
    audience: str = Field(max_length=16)  # all | level | missing (not yet sent this month's article)
    levels: str = Field(default="", max_length=64)  # the levels chosen ("TH,THCS") for audience "level"
    period: str = Field(default="", max_length=7)  # the month it was sent in ("2026-11")
    themes: bool = Field(default=False)  # the month's plan themes
    urgent: bool = Field(default=False)  # sent in quiet hours and pauses too
    schools: int = Field(default=0)
    created_at: datetime = utc_field(index=True)


class AnnouncementReceipt(SQLModel, table=True):
    """One recipient of an announcement, and when they pressed "received" (None: not yet)."""

    __table_args__ = (UniqueConstraint("announcement_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    announcement_id: int = Field(foreign_key="announcement.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    school_id: int = Field(foreign_key="school.id")
    confirmed_at: datetime | None = utc_field(nullable=True)


class Lease(SQLModel, table=True):
    """A named role one process holds for a while: the scheduler, the sender of a bot token."""

    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=64)
    until: datetime = utc_field()


REVIEW_ACTIONS = ("approve", "return", "publish")


class ReviewAction(SQLModel, table=True):
    """What an officer did to a submission, and when: approve, return (with the reason), publish (the link)."""

    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submission.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    action: str = Field(max_length=16)
    version: int  # the submission's version the action was taken on
    note: str = Field(default="", max_length=2000)
    created_at: datetime = utc_field()


class ChannelUsage(SQLModel, table=True):
    """Messages sent on a channel in a month, against a plan's monthly quota (Zalo's free plan: 3,000)."""

    channel: str = Field(primary_key=True, max_length=16)
    month: str = Field(primary_key=True, max_length=7)
    sent: int = Field(default=0)


class LinkCode(SQLModel, table=True):
    """A one-time code that joins a person's account on another channel to this one."""

    code: str = Field(primary_key=True, max_length=16)
    user_id: int = Field(foreign_key="user.id")
    expires_at: datetime = utc_field()


PRIVACY_KINDS = ("export", "erase")


class PrivacyRequest(SQLModel, table=True):
    """A person's request about the data held on them (Decree 13/2023/NĐ-CP): who asked, when, what
    kind, and how many rows it concerned; never the data itself. `person` is the account id (after an
    erase it names no one)."""

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)  # a PRIVACY_KINDS value
    person: int = Field(index=True)
    asked_by: str = Field(default="", max_length=200)
    counts: dict[str, Any] = json_field()  # {"accounts": 2, "drafts": 1, ...}
    created_at: datetime = utc_field()
