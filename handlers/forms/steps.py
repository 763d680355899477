"""Step kinds and their parsers: how one answer is read and checked. New kinds join KINDS."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from handlers.types import Context, Incoming, Kind
from storage.text import fold

MAX_TEXT = 4096
MAX_URL = 2000  # a link longer than this is no link anyone meant to share


class StepKind(StrEnum):
    """What a step asks for."""

    TEXT = "text"
    LONGTEXT = "longtext"
    CHOICE = "choice"
    MULTI = "multi"
    DATE = "date"
    URL = "url"
    PHOTO = "photo"  # one photo in a named role (the wide shot, the speaker, the close-up)
    PHOTOS = "photos"  # extra photos until "Xong"
    VIDEOS = "videos"  # mp4 clips or a shared-drive link, until "Xong"
    APPEND = "append"  # a long text in several messages, until "Xong"
    NUMBER = "number"  # a whole number, zero or more
    PHONE = "phone"  # a Vietnamese phone number, stored as 0xxxxxxxxx
    NAME = "name"  # a person's or a collective's name: words, not digits or symbols
    DOCUMENT = "document"  # a PDF or DOCX, checked by its content
    WHEN_WHERE = "when_where"  # a date and a place in one answer ("05/11/2026, the school yard")
    FIGURES = "figures"  # a paragraph of results that gives at least one figure: 30 em, tăng 15%
    ATTACHMENT = "attachment"  # one photo or one PDF or DOCX sent along with a message
    DATETIME = "datetime"  # a day and a time of day ("29/11/2026 14:30", "yesterday 8h15"), local ISO
    LINKS = "links"  # several http(s) links, until "Xong"


class QuickDate(StrEnum):
    """The quick answers to a date step, carried by its buttons."""

    TODAY = "today"
    YESTERDAY = "yesterday"


# Steps that collect until the user presses "Xong".
COLLECTING = frozenset({StepKind.MULTI, StepKind.PHOTOS, StepKind.VIDEOS, StepKind.LINKS})
MEDIA_KINDS = frozenset({StepKind.PHOTO, StepKind.PHOTOS, StepKind.VIDEOS})
PHOTO_KINDS = frozenset({StepKind.PHOTO, StepKind.PHOTOS})


@dataclass(frozen=True)
class Option:
    """One answer to a choice step: a stored value and a locale key (or a ready text) for its label."""

    value: str
    label: str = ""
    text: str = ""
    sets: tuple[tuple[str, Any], ...] = ()  # more answers this option gives (a nominee's kind and role)

    def shown(self, ctx: Context) -> str:
        """The label in the reader's language."""
        return self.text or ctx.t(self.label)


def options_from(prefix: str, values: Iterable[str]) -> tuple[Option, ...]:
    """A choice's options, each value labelled by the locale key `prefix.value`."""
    return tuple(Option(value, f"{prefix}.{value}") for value in values)


Answers = dict[str, Any]


@dataclass(frozen=True)
class Step:
    """One question of a form.

    `optional` may depend on other answers (a link is required only without an article text);
    `choices` gives options computed at the moment (this month's themes); `ask=False` steps take
    their `default` when the draft starts and are changed only from the review screen; other
    steps with a `default` offer it as a suggestion. `known` is what the bot already knows (the
    writer's name): when it gives a value at the draft's start, the step is filled and not asked in
    turn (shown on the review screen, editable). Steps sharing a `section` are changed from the
    review screen under one edit button. `also` names the further answers a grouped step fills (a date's
    place); `link_key` takes a bare link typed at a long-text step as the answer to that step.
    """

    key: str
    prompt: str
    kind: StepKind
    optional: bool | Callable[[Answers], bool] = False
    options: tuple[Option, ...] = ()
    choices: Callable[[Context, Answers], tuple[Option, ...]] | None = None
    other: bool = False  # a choice step that also takes free text
    max_len: int = 500
    past_only: bool = False
    max_age_days: int | None = None
    max_items: int = 10
    ask: bool = True
    default: Callable[[Context, Answers], Any] | None = None
    when: Callable[[Answers], bool] | None = None
    known: Callable[[Context, Answers], Any] | None = None
    section: str = ""
    also: tuple[str, ...] = ()
    link_key: str = ""
    min_side: int | None = None  # a photo step's smallest long side in px (None: the office's 1280)

    @property
    def keys(self) -> tuple[str, ...]:
        """The answers this step fills: its own, and a grouped step's others."""
        return (self.key, *self.also)

    def applies(self, answers: Answers) -> bool:
        """Whether this step is asked, given the answers so far."""
        return self.when is None or self.when(answers)

    def is_optional(self, answers: Answers) -> bool:
        """Whether the step may be skipped, given the answers so far."""
        return self.optional(answers) if callable(self.optional) else self.optional

    def options_for(self, ctx: Context, answers: Answers) -> tuple[Option, ...]:
        """The options to offer now."""
        return self.choices(ctx, answers) if self.choices else self.options


def offering(
    key: str, prompt: str, labels: str, values: Iterable[str], kind: StepKind = StepKind.CHOICE, **more: Any
) -> Step:
    """A step offering fixed `values` (one, or several for MULTI), each labelled by the locale key
    `labels.value`; `more` are the Step's other fields."""
    return Step(key, prompt, kind, options=options_from(labels, values), **more)


@dataclass(frozen=True)
class Parsed:
    """The outcome of reading an answer: a value, or the locale key of what is wrong.

    `stay` keeps the user on the step (a list being added to); `note` is said before the next
    screen; `extra` holds more answers to keep (hidden keys start with "_"); `rest` is media left
    over for the next media step (an album sent at a single-photo step).
    """

    value: Any = None
    error: str = ""
    fields: tuple[tuple[str, Any], ...] = ()
    stay: bool = False
    note: str = ""
    note_fields: tuple[tuple[str, Any], ...] = ()
    extra: tuple[tuple[str, Any], ...] = ()
    rest: tuple[Any, ...] = ()


Parser = Callable[[Step, Incoming, Context, Answers], Awaitable[Parsed]]


def _clean_text(step: Step, msg: Incoming, limit: int) -> Parsed:
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.need_text")
    text = unicodedata.normalize("NFC", msg.text).strip()
    if not text:
        return Parsed(error="error.empty")
    if len(text) > limit:
        return Parsed(error="error.too_long", fields=(("limit", limit), ("length", len(text))))
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co", "Cn") and ch not in "\n\t" for ch in text):
        return Parsed(error="error.binary")
    if not any(ch.isalnum() for ch in text):
        return Parsed(error="error.no_words")
    return Parsed(value=text)


async def parse_text(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A short line of text."""
    return _clean_text(step, msg, min(step.max_len, MAX_TEXT))


async def parse_longtext(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A paragraph or more."""
    return _clean_text(step, msg, MAX_TEXT)


async def parse_figures(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """Results told with figures: a paragraph with at least one number in it."""
    cleaned = _clean_text(step, msg, MAX_TEXT)
    if cleaned.error:
        return cleaned
    if not any(ch.isdigit() for ch in str(cleaned.value)):
        return Parsed(error="nomination.model.need_figures")
    return cleaned


def option_for(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Option | None:
    """The option a button press or a typed label names."""
    options = step.options_for(ctx, answers)
    if msg.kind == Kind.CHOICE:
        return next((o for o in options if o.value == msg.choice), None)
    if msg.kind == Kind.TEXT:
        typed = fold(msg.text)
        return next((o for o in options if fold(o.shown(ctx)) == typed or o.value == typed), None)
    return None


async def parse_choice(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """One option, or free text when the step allows "other"."""
    option = option_for(step, msg, ctx, answers)
    if option is not None:
        return Parsed(value=option.value, extra=option.sets)
    if step.other and msg.kind == Kind.TEXT:
        cleaned = _clean_text(step, msg, step.max_len)
        return cleaned if cleaned.error else Parsed(value=f"other:{cleaned.value}")
    return Parsed(error="error.pick_option")


async def parse_multi(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """Several options: each press toggles one; free text adds "other"; the done button finishes.

    The value is a list; the engine stays on the step until the user presses done (value None
    with no error means "updated, ask again").
    """
    chosen = list(answers.get(step.key) or [])
    option = option_for(step, msg, ctx, answers)
    if option is not None:
        if option.value in chosen:
            chosen.remove(option.value)
        else:
            chosen.append(option.value)
        return Parsed(value=chosen, stay=True)
    if step.other and msg.kind == Kind.TEXT:
        cleaned = _clean_text(step, msg, step.max_len)
        if cleaned.error:
            return cleaned
        chosen.append(f"other:{cleaned.value}")
        return Parsed(value=chosen, stay=True)
    return Parsed(error="error.pick_option")


TODAY_WORDS = {"hom nay", "today", "nay"}
YESTERDAY_WORDS = {"hom qua", "yesterday", "qua"}
DATE_RE = re.compile(r"^(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{2}|\d{4}))?$")


def read_date(text: str, today: date, past: bool = False) -> date | None:
    """dd/mm/yyyy, d/m, "hôm nay", "hôm qua"; None when it is no real date.

    Without a year, the date is this year's, or (with `past`) the latest such day not after today.
    """
    folded = fold(text)
    if folded in TODAY_WORDS:
        return today
    if folded in YESTERDAY_WORDS:
        return today - timedelta(days=1)
    m = DATE_RE.match(folded.replace(" ", ""))
    if not m:
        return None
    day, month = int(m.group(1)), int(m.group(2))
    year = int(m.group(3)) if m.group(3) else today.year
    if year < 100:
        year += 2000
    try:
        found = date(year, month, day)
    except ValueError:
        return None
    if past and not m.group(3) and found > today:
        try:
            return date(year - 1, month, day)
        except ValueError:
            return None
    return found


async def parse_date(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A calendar date, stored as ISO."""
    today = ctx.clock.now().date()
    if msg.kind == Kind.CHOICE and msg.choice in (QuickDate.TODAY, QuickDate.YESTERDAY):
        day = today if msg.choice == QuickDate.TODAY else today - timedelta(days=1)
        return Parsed(value=day.isoformat())
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.need_date")
    day_or_none = read_date(msg.text, today, past=step.past_only)
    if day_or_none is None:
        return Parsed(error="error.bad_date")
    return checked_date(step, day_or_none, today)


def checked_date(step: Step, day: date, today: date) -> Parsed:
    """A read date held to the step's rules: not in the future (past_only), not too old."""
    if step.past_only and day > today:
        return Parsed(error="error.future_date")
    too_old = (today - day).days > step.max_age_days if step.max_age_days else day.year < today.year - 5
    if too_old:
        return Parsed(error="error.old_date")
    return Parsed(value=day.isoformat())


DATE_LIKE = re.compile(r"^\s*\d{1,2}\s*[/.\-]\s*\d{1,2}")
# Separators and the words for "at" ("tai", "o" with and without their diacritics) before a place.
PLACE_LEAD = re.compile("^[\\s,;:.\\-\u2013\u2014]*(?:(?:t\u1ea1i|\u1edf|tai|o)\\s+)?", re.IGNORECASE)


def split_when_where(text: str, today: date, past: bool) -> tuple[date | None, str]:
    """ "05/11/2026, sân trường" -> (the date, "sân trường"); a text with no leading date is a place."""
    words = text.split()
    for count in (2, 1):  # today and yesterday are two words in Vietnamese; a date is one
        head = " ".join(words[:count]).rstrip(",;:.-–—")
        day = read_date(head, today, past=past) if len(words) >= count else None
        if day is not None:
            return day, PLACE_LEAD.sub("", " ".join(words[count:])).strip()
    return None, PLACE_LEAD.sub("", text).strip()


async def parse_when_where(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """When and where in one answer; either half alone changes that half and keeps the other.

    The date is the step's value and the place its `also` answer; while one of them is missing the
    step stays and asks for it (a tap on the today button gives the date alone).
    """
    today = ctx.clock.now().date()
    where_key = step.also[0]
    when, where = answers.get(step.key), answers.get(where_key)
    if msg.kind == Kind.CHOICE and msg.choice in (QuickDate.TODAY, QuickDate.YESTERDAY):
        when = (today if msg.choice == QuickDate.TODAY else today - timedelta(days=1)).isoformat()
    elif msg.kind == Kind.TEXT:
        cleaned = _clean_text(step, msg, step.max_len)
        if cleaned.error:
            return cleaned
        day, place = split_when_where(cleaned.value, today, step.past_only)
        if day is None and DATE_LIKE.match(cleaned.value):  # "31/02/2026, ...": a date meant, but none
            return Parsed(error="error.bad_date")
        if day is not None:
            checked = checked_date(step, day, today)
            if checked.error:
                return checked
            when = checked.value
        if place:
            where = place
    else:
        return Parsed(error="flow.need_when_where")
    extra = ((where_key, where),)
    if not when:
        return Parsed(value=None, extra=extra, stay=True, note="flow.need_date")
    if not where:
        return Parsed(value=when, extra=extra, stay=True, note="flow.need_place")
    return Parsed(value=when, extra=extra)


async def parse_url(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """An http(s) link, at most MAX_URL characters."""
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.need_url")
    text = msg.text.strip()
    try:
        parsed = urlparse(text)
        host = parsed.hostname or ""
    except ValueError:  # "http://[x": a bracket that opens no valid IPv6 address
        return Parsed(error="error.bad_url")
    if parsed.scheme not in ("http", "https") or "." not in host or any(ch.isspace() for ch in text):
        return Parsed(error="error.bad_url")
    if len(text) > MAX_URL:
        return Parsed(error="error.url_too_long", fields=(("limit", MAX_URL), ("length", len(text))))
    return Parsed(value=text)


TIME_RE = re.compile(
    r"(?<![\d/.\-])([01]?\d|2[0-3])\s*(?:[:h]\s*([0-5]\d)?|g(?:i\S*)?\s*([0-5]\d)?)(?![\d/])"
)


def read_time(text: str) -> tuple[tuple[int, int] | None, str]:
    """A time of day in `text` ("14:30", "8h", "8h15", "14 giờ 30") and the text without it."""
    folded = fold(text)
    m = TIME_RE.search(folded)
    if m is None:
        return None, text
    minute = m.group(2) or m.group(3) or "0"
    rest = (folded[: m.start()] + " " + folded[m.end() :]).strip(" ,;-")
    return (int(m.group(1)), int(minute)), " ".join(rest.split())


async def parse_datetime(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A day and a time of day, in one answer or two (a tap on "Hôm nay", then "14:30"); stored as the
    local "YYYY-MM-DDTHH:MM". Not in the future with `past_only`."""
    now = ctx.clock.now()
    today = now.date()
    day_key = f"_{step.key}_day"
    held = answers.get(day_key)
    day: date | None = date.fromisoformat(held) if isinstance(held, str) and held else None
    clock_time: tuple[int, int] | None = None
    if msg.kind == Kind.CHOICE and msg.choice in (QuickDate.TODAY, QuickDate.YESTERDAY):
        day = today if msg.choice == QuickDate.TODAY else today - timedelta(days=1)
    elif msg.kind == Kind.TEXT:
        clock_time, rest = read_time(msg.text)
        if rest:
            found = read_date(rest, today, past=step.past_only)
            if found is None:
                return Parsed(error="incident.input.bad_datetime")
            day = found
    else:
        return Parsed(error="incident.input.bad_datetime")
    if day is not None:
        checked = checked_date(step, day, today)
        if checked.error:
            return checked
    if day is None or clock_time is None:
        note = "incident.input.need_time" if day is not None else "incident.input.need_date"
        return Parsed(value=None, extra=((day_key, day.isoformat() if day else None),), stay=True, note=note)
    moment = datetime(day.year, day.month, day.day, *clock_time)
    if step.past_only and moment.replace(tzinfo=ctx.clock.tz) > now:
        return Parsed(error="incident.input.future_time")
    return Parsed(value=moment.isoformat(timespec="minutes"), extra=((day_key, None),))


LINK_SPLIT = re.compile(r"[\s,;]+")


async def parse_links(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """Links, one or several a message, each checked as http(s); until "Xong". A message with any
    link that is not one adds none of them."""
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.need_url")
    links = list(answers.get(step.key) or [])
    given = [w for w in LINK_SPLIT.split(msg.text.strip()) if w]
    for word in given:
        checked = await parse_url(
            step, Incoming(msg.channel, msg.user_id, msg.chat_id, Kind.TEXT, text=word), ctx, answers
        )
        if checked.error:
            return Parsed(error="incident.input.bad_link", fields=(("link", word[:80]),))
    fresh = [w for w in dict.fromkeys(given) if w not in links]
    if len(links) + len(fresh) > step.max_items:
        return Parsed(error="incident.input.too_many_links", fields=(("limit", step.max_items),))
    links += fresh
    return Parsed(
        value=links, stay=True, note="incident.input.links_added", note_fields=(("count", len(links)),)
    )


async def parse_number(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A whole number, zero or more ("12", "1.200" and "1 200" read as numbers)."""
    if msg.kind == Kind.CHOICE and msg.choice.isdigit():
        return Parsed(value=int(msg.choice))
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.need_number")
    text = msg.text.strip().replace(" ", "").replace(".", "").replace(",", "")
    if text.startswith("-") and text[1:].isdigit():
        return Parsed(error="error.negative")
    if not text.isdigit() or len(text) > 9:
        return Parsed(error="error.need_number")
    return Parsed(value=int(text))


PHONE_RE = re.compile(r"^0(?:[35789]\d{8}|2\d{9})$")


def read_phone(text: str) -> str | None:
    """A Vietnamese mobile (0xx xxx xxxx) or landline (02xx xxx xxxx) number, normalised; else None."""
    compact = re.sub(r"[\s.\-()]", "", text.strip())
    if compact.startswith("+84"):
        compact = "0" + compact[3:]
    elif compact.startswith("84") and len(compact) in (11, 12):
        compact = "0" + compact[2:]
    return compact if PHONE_RE.match(compact) else None


async def parse_phone(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A Vietnamese phone number."""
    if msg.kind == Kind.CONTACT and msg.text:
        found = read_phone(msg.text)
        return Parsed(value=found) if found else Parsed(error="error.bad_phone")
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.bad_phone")
    found = read_phone(msg.text)
    return Parsed(value=found) if found else Parsed(error="error.bad_phone")


async def parse_name(step: Step, msg: Incoming, ctx: Context, answers: Answers) -> Parsed:
    """A name: at least two letters, no digits-only or symbol-only answers."""
    cleaned = _clean_text(step, msg, min(step.max_len, MAX_TEXT))
    if cleaned.error:
        return cleaned
    letters = sum(1 for ch in cleaned.value if ch.isalpha())
    if letters < 2:
        return Parsed(error="error.bad_name")
    return Parsed(value=" ".join(cleaned.value.split()))


BASIC_KINDS: dict[StepKind, Parser] = {
    StepKind.TEXT: parse_text,
    StepKind.LONGTEXT: parse_longtext,
    StepKind.CHOICE: parse_choice,
    StepKind.MULTI: parse_multi,
    StepKind.DATE: parse_date,
    StepKind.URL: parse_url,
    StepKind.NUMBER: parse_number,
    StepKind.PHONE: parse_phone,
    StepKind.NAME: parse_name,
    StepKind.WHEN_WHERE: parse_when_where,
    StepKind.FIGURES: parse_figures,
    StepKind.DATETIME: parse_datetime,
    StepKind.LINKS: parse_links,
}
