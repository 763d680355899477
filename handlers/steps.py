"""Step kinds and their parsers: how one answer is read and checked. New kinds join KINDS."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import urlparse

from handlers.types import Context, Incoming, Kind
from storage.text import fold

MAX_TEXT = 4096


class StepKind(StrEnum):
    """What a step asks for."""

    TEXT = "text"
    LONGTEXT = "longtext"
    CHOICE = "choice"
    MULTI = "multi"
    DATE = "date"
    URL = "url"


@dataclass(frozen=True)
class Option:
    """One answer to a choice step: a stored value and a locale key for its label."""

    value: str
    label: str


@dataclass(frozen=True)
class Step:
    """One question of a form."""

    key: str
    prompt: str
    kind: StepKind
    optional: bool = False
    options: tuple[Option, ...] = ()
    other: bool = False  # a choice step that also takes free text
    max_len: int = 500
    past_only: bool = False
    when: Callable[[dict[str, Any]], bool] | None = None

    def applies(self, answers: dict[str, Any]) -> bool:
        """Whether this step is asked, given the answers so far."""
        return self.when is None or self.when(answers)


@dataclass(frozen=True)
class Parsed:
    """The outcome of reading an answer: a value, or the locale key of what is wrong."""

    value: Any = None
    error: str = ""
    fields: tuple[tuple[str, Any], ...] = ()


Parser = Callable[[Step, Incoming, Context, Any], Parsed]


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


def parse_text(step: Step, msg: Incoming, ctx: Context, current: Any) -> Parsed:
    """A short line of text."""
    return _clean_text(step, msg, min(step.max_len, MAX_TEXT))


def parse_longtext(step: Step, msg: Incoming, ctx: Context, current: Any) -> Parsed:
    """A paragraph or more."""
    return _clean_text(step, msg, MAX_TEXT)


def option_for(step: Step, msg: Incoming, ctx: Context) -> Option | None:
    """The option a button press or a typed label names."""
    if msg.kind == Kind.CHOICE:
        return next((o for o in step.options if o.value == msg.choice), None)
    if msg.kind == Kind.TEXT:
        typed = fold(msg.text)
        return next((o for o in step.options if fold(ctx.t(o.label)) == typed or o.value == typed), None)
    return None


def parse_choice(step: Step, msg: Incoming, ctx: Context, current: Any) -> Parsed:
    """One option, or free text when the step allows "other"."""
    option = option_for(step, msg, ctx)
    if option is not None:
        return Parsed(value=option.value)
    if step.other and msg.kind == Kind.TEXT:
        cleaned = _clean_text(step, msg, step.max_len)
        return cleaned if cleaned.error else Parsed(value=f"other:{cleaned.value}")
    return Parsed(error="error.pick_option")


def parse_multi(step: Step, msg: Incoming, ctx: Context, current: Any) -> Parsed:
    """Several options: each press toggles one; free text adds "other"; the done button finishes.

    The value is a list; the engine stays on the step until the user presses done (value None
    with no error means "updated, ask again").
    """
    chosen = list(current or [])
    option = option_for(step, msg, ctx)
    if option is not None:
        if option.value in chosen:
            chosen.remove(option.value)
        else:
            chosen.append(option.value)
        return Parsed(value=chosen, fields=(("stay", True),))
    if step.other and msg.kind == Kind.TEXT:
        cleaned = _clean_text(step, msg, step.max_len)
        if cleaned.error:
            return cleaned
        chosen.append(f"other:{cleaned.value}")
        return Parsed(value=chosen, fields=(("stay", True),))
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


def parse_date(step: Step, msg: Incoming, ctx: Context, current: Any) -> Parsed:
    """A calendar date, stored as ISO."""
    today = ctx.clock.now().date()
    if msg.kind == Kind.CHOICE and msg.choice in ("today", "yesterday"):
        day = today if msg.choice == "today" else today - timedelta(days=1)
        return Parsed(value=day.isoformat())
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.need_date")
    day_or_none = read_date(msg.text, today, past=step.past_only)
    if day_or_none is None:
        return Parsed(error="error.bad_date")
    if step.past_only and day_or_none > today:
        return Parsed(error="error.future_date")
    if day_or_none.year < today.year - 5:
        return Parsed(error="error.old_date")
    return Parsed(value=day_or_none.isoformat())


def parse_url(step: Step, msg: Incoming, ctx: Context, current: Any) -> Parsed:
    """An http(s) link."""
    if msg.kind != Kind.TEXT:
        return Parsed(error="error.need_url")
    text = msg.text.strip()
    parsed = urlparse(text)
    ok = (
        parsed.scheme in ("http", "https")
        and "." in (parsed.hostname or "")
        and len(text) <= 2000
        and not any(ch.isspace() for ch in text)
    )
    return Parsed(value=text) if ok else Parsed(error="error.bad_url")


KINDS: dict[StepKind, Parser] = {
    StepKind.TEXT: parse_text,
    StepKind.LONGTEXT: parse_longtext,
    StepKind.CHOICE: parse_choice,
    StepKind.MULTI: parse_multi,
    StepKind.DATE: parse_date,
    StepKind.URL: parse_url,
}
