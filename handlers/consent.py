"""The parents' consent, the one rule: a pupil nominated without it is, to anyone but the school, initials.

Every output that shows or exports what schools sent (the review screen, /review, /find, /published,
the digest, /nominations, /status of a school, the /export workbook, the /bundle .txt, .docx and
index.xlsx) reads answers through a `Shield`: for each school, the names of its pupils nominated without
recorded consent are withheld from every free text of every item of that school (the nomination's own
deeds, an article that mentions the pupil...) by `storage.text.withhold_names`, which says which
mentions count; the nominee's name is its initials and its photos are withheld. The school itself sees
its own items whole (the principal's notices and lists). An officer who records that the consent
arrived (`record`) lifts the rule for that pupil from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from handlers.forms import Answers
from storage import queries as q
from storage.models import Submission, User
from storage.scope import SchoolIds
from storage.text import fold, initials, withhold_names

if TYPE_CHECKING:
    from sqlmodel import Session

# Answers that are codes or file records, not text a person wrote.
CODES = frozenset({"nominee", "kind", "role", "consent", "purpose", "publishable", "when", "theme"})


def is_student(answers: Answers) -> bool:
    """A nominee who is a pupil: a minor, whose name and photos need the parents' consent."""
    return answers.get("kind") == "individual" and answers.get("role") == "student"


def publishable(answers: Answers) -> bool:
    """Whether the nominee's name and photos may be shown and exported (Decree 13/2023/NĐ-CP)."""
    return not is_student(answers) or answers.get("consent") == "yes"


def withheld_name(answers: Answers) -> str:
    """The nominee's name when the rule withholds it, else ""."""
    return "" if publishable(answers) else str(answers.get("name") or "").strip()


def hide(value: Any, names: Sequence[str]) -> Any:
    """A free-text answer (or a list of them) with these names withheld; anything else as it is."""
    if isinstance(value, str):
        return withhold_names(value, names)
    if isinstance(value, list):
        return [hide(item, names) for item in value]
    return value


def public_view(answers: Answers, names: Sequence[str] = ()) -> Answers:
    """The answers as anyone but the school sees them: `names` (and the nominee's own, without consent)
    withheld from every free text; a nominee whose name is withheld by initials, photos withheld."""
    own = withheld_name(answers)
    hidden = [*names, own] if own else list(names)
    if not hidden:
        return answers
    view = {k: v if k in CODES or k.startswith("_") else hide(v, hidden) for k, v in answers.items()}
    name = str(answers.get("name") or "")
    if name and any(fold(name) == fold(n) for n in hidden):
        photos = answers.get("photos") or []
        view.update(name=initials(name), photos=None, withheld=True, photos_withheld=len(photos))
    return view


@dataclass(frozen=True)
class Shield:
    """The names withheld, per school, from one reader; `own`: the reader's school, seen whole."""

    names: dict[int, tuple[str, ...]] = field(default_factory=dict)
    own: int | None = None
    whole: bool = False  # the school's own view: nothing withheld

    def answers(self, row: Submission, answers: Answers | None = None) -> Answers:
        """A submission's answers (or one of its versions') as this reader may see them."""
        answers = row.answers if answers is None else answers
        if self.sees_whole(row.school_id):
            return answers
        return public_view(answers, self.names.get(row.school_id, ()))

    def text(self, school_id: int, text: str) -> str:
        """A free text of this school's (an incident's message, its result) as this reader may read it."""
        return text if self.sees_whole(school_id) else withhold_names(text, self.names.get(school_id, ()))

    def seen_by(self, reader: User | None) -> Shield:
        """The same names withheld, from `reader` (who sees their own school whole)."""
        return replace(self, own=reader.school_id if reader is not None else None)

    def sees_whole(self, school_id: int) -> bool:
        """Whether this reader sees the school's texts as written (its own school, or the school's view)."""
        return self.whole or (self.own is not None and school_id == self.own)


OPEN = Shield(whole=True)  # what the school itself is told: nothing withheld


def shield(s: Session, school_ids: SchoolIds | Sequence[int], reader: User | None = None) -> Shield:
    """The names withheld in these schools; a school's own staff (`reader`) see their school whole."""
    names: dict[int, list[str]] = {}
    for school_id, answers in q.nominee_answers(s, school_ids):
        name = withheld_name(answers)
        if name:
            names.setdefault(school_id, []).append(name)
    return Shield({k: tuple(v) for k, v in names.items()}).seen_by(reader)


def schools_of(rows: Iterable[Submission]) -> list[int]:
    """The schools of these rows (for `shield`)."""
    return sorted({row.school_id for row in rows})


def consented(answers: Answers) -> Answers:
    """A nomination's answers once the parents' consent is recorded."""
    return {**answers, "consent": "yes", "nominee": "student_yes", "publishable": True}
