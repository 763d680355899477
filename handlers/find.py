"""/find: the archive of what schools sent, for officers and leaders, within their scope.

`/find pu nhi tháng 11` matches every word, without accents, at the start of a word of the title, the
theme, the report's name, the nominee's name (when it may be shown), the school's name or code; a month
(handlers/months.py reads it) and a status (its label: approved, returned...) narrow it. Newest first, a page at
a time, each item opened by its button. `/find` alone lists everything in scope. A pupil's name withheld
from the reader (no parents' consent) finds nothing: a word that could be part of it is matched against
the text as the reader may read it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import partial

from handlers.calendar import Calendar, Period, month_end, month_start
from handlers.consent import Shield, shield
from handlers.dossier import when
from handlers.months import month_in
from handlers.review import headline, kind_title
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage import scope
from storage.models import School, Submission
from storage.queries.submissions import search_text
from storage.text import fold

PREFIX = "fd"  # "fd:<offset>:<the query, folded>": the next page
PAGE = 8
MAX_FILTERED = 2_000  # items read to filter when a query word could match a withheld name
WORDS = 8  # words of a query kept
CALLBACK_BYTES = 64  # a Telegram button's data; a longer query pages by narrowing instead
# A status named in the query, by its label (status.review.*): "đã duyệt" keeps the published ones too.
STATUSES = {
    "submitted": ("submitted",),
    "returned": ("returned",),
    "approved": ("approved", "published"),
    "published": ("published",),
}


@dataclass(frozen=True)
class Query:
    """What was asked: words (folded), a status, a month."""

    words: tuple[str, ...] = ()
    status: str = ""
    month: Period | None = None

    def key(self) -> str:
        """The query as the "more" button carries it (read again by `read_query`)."""
        parts = [*self.words, self.month.key if self.month else ""]
        return " ".join(p for p in parts if p) + (f" :{self.status}" if self.status else "")

    def shown(self, ctx: Context) -> str:
        """ "“pu nhi” · Đã duyệt · tháng 11/2026"."""
        parts = [f"“{' '.join(self.words)}”"] if self.words else []
        if self.status:
            parts.append(ctx.t(f"status.review.{self.status}"))
        if self.month:
            parts.append(ctx.t("vetting.find.month", month=self.month.label))
        return " · ".join(parts)


def read_query(ctx: Context, text: str) -> Query | str:
    """The query in `text`, or the locale key of what is wrong with it."""
    text, _, status = text.partition(" :")
    found, rest = month_in(text, Calendar(ctx.clock, ctx.settings.schedule).current())
    if found.month_like and found.period is None:
        return "vetting.find.bad_month"
    padded = f" {rest} "
    for key in STATUSES:
        phrase = fold(ctx.t(f"status.review.{key}"))
        if not status and f" {phrase} " in padded:
            status, padded = key, padded.replace(f" {phrase} ", " ", 1)
    words = tuple(re.findall(r"[a-z0-9]+", padded))[:WORDS]
    return Query(words, status if status in STATUSES else "", found.period)


async def find(msg: Incoming, ctx: Context) -> list[Reply]:
    """/find [words] [month] [status]."""
    return [results(ctx, msg.args, 0)]


async def more(msg: Incoming, ctx: Context) -> list[Reply]:
    """The "more" button: "fd:<offset>:<query>"."""
    _, offset, text = [*msg.choice.split(":", 2), "", ""][:3]
    return [results(ctx, text, int(offset) if offset.isdigit() else 0)]


def results(ctx: Context, text: str, offset: int) -> Reply:
    """A page of what matches, newest first, each with a button that opens it."""
    assert ctx.user is not None
    query = read_query(ctx, text)
    if isinstance(query, str):
        return Reply(ctx.t(query, text=text.strip()[:60]))
    month = None
    if query.month is not None:
        month = (query.month.key, month_start(query.month, ctx.clock), month_end(query.month, ctx.clock))
    seen = scope.ids_seen_by(ctx.user)
    with ctx.db.session() as s:
        guard = shield(s, seen, ctx.user)
        found = partial(
            q.find_submissions,
            s,
            seen,
            list(query.words),
            month=month,
            statuses=STATUSES.get(query.status, ()),
        )
        if touches_withheld(query.words, guard):
            # A word that could match a name withheld from this reader: only what the reader may read
            # counts (a title naming the pupil must not be found by the pupil's name).
            everything, _ = found(limit=MAX_FILTERED, offset=0)
            kept = [(row, school) for row, school in everything if matches(query.words, row, school, guard)]
            rows, total = kept[offset : offset + PAGE], len(kept)
        else:
            rows, total = found(limit=PAGE, offset=offset)
    if not rows and offset:
        return results(ctx, text, 0)  # fewer items than when the button was shown
    if not rows:
        key = "vetting.find.none" if query.shown(ctx) else "vetting.find.empty"
        return Reply(ctx.t(key, query=query.shown(ctx)))
    end = offset + len(rows)
    title = ctx.t("vetting.find.title", query=query.shown(ctx), count=total, first=offset + 1, last=end)
    lines = [
        title if query.shown(ctx) else ctx.t("vetting.find.all", count=total, first=offset + 1, last=end)
    ]
    buttons: list[tuple[Choice, ...]] = []
    for row, school in rows:
        lines.append(line(ctx, row, school.name, guard))
        buttons.append((Choice(ctx.t("review.open", number=row.id), f"o:{row.id}"),))
    if end < total:
        value = f"{PREFIX}:{end}:{query.key()}"
        if len(value.encode()) <= CALLBACK_BYTES:
            buttons.append((Choice(ctx.t("vetting.more", rest=total - end), value),))
        else:
            lines.append(ctx.t("vetting.find.narrow", rest=total - end))
    return Reply("\n".join(lines), tuple(buttons))


def touches_withheld(words: tuple[str, ...], guard: Shield) -> bool:
    """Whether a query word is the start of a part of a name withheld from the reader."""
    parts = {
        part
        for school_id, names in guard.names.items()
        if not guard.sees_whole(school_id)
        for name in names
        for part in fold(name).split()
    }
    return any(part.startswith(word) for word in words for part in parts)


def matches(words: tuple[str, ...], row: Submission, school: School, guard: Shield) -> bool:
    """`find_submissions`' rule on the text as the reader may read it (names withheld)."""
    haystack = f" {search_text(row.kind, guard.answers(row))} {school.name_folded} {school.code.lower()}"
    return all(f" {word}" in haystack for word in words)


def line(ctx: Context, row: Submission, school: str, guard: Shield) -> str:
    """ "#12 · Bài viết tháng · Trường … · Ngày hội đọc sách · Đã duyệt · 05/11/2026"."""
    sent = when(ctx, row.submitted_at or row.created_at).split(" ")[1]
    return ctx.t(
        "vetting.find.line",
        number=row.id,
        kind=kind_title(ctx, row.kind),
        school=school,
        what=headline(ctx, row, guard),
        status=ctx.t(f"status.review.{row.status}"),
        when=sent,
    )
