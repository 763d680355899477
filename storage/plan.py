"""The communication plan: offices' themes by month or quarter, imported from CSV or XLSX and shown by month.

The file has one header row with the columns

    office_code,period,theme,notes

(in any order, case and spaces ignored; ``notes`` may be left out) and one row per theme. Reading, row
numbers and the all-or-nothing rule are those of the organisation import (``storage.orgimport``): the
header is row 1, row 0 means the file as a whole, and any problem rejects the whole file.

Rules:
- ``office_code`` is an office already in the database (``schoolbot schools import`` adds offices).
- ``period`` is a month (``2026-11``, ``11/2026``, ``T11/2026``, ``Tháng 11/2026``) or a quarter
  (``2026-Q4``, ``Q4/2026``, ``Quý 4/2026``, ``Quý IV/2026``), accents and case ignored; it is stored as
  ``2026-11`` or ``2026-Q4``. A spreadsheet cell Excel turned into a date on the 1st of a month
  (``11/2026`` typed into a cell) is that month.
- ``theme`` is 1–300 characters, stored NFC with runs of spaces and line breaks collapsed and a leading
  bullet (``-``, ``+``, ``•``, ``*``) dropped; ``notes`` at most 1000 characters, NFC, line breaks kept.
- A theme is the same theme whatever its case or accents. The same theme twice for one office and period
  is fine when both rows say exactly the same; otherwise it is a problem.
- A stored theme matches a row by its exact text, or else by its text ignoring case and accents (the
  row's spelling then replaces the stored one). New themes are added, changed notes updated; themes
  missing from the file are left alone: the import never deletes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from storage import orgimport
from storage.db import Database
from storage.models import Office, PlanTheme
from storage.orgimport import Counts, Problems, chunks, data_rows, import_checked, read_rows
from storage.queries import office_chain
from storage.text import fold, nfc

COLUMNS = ("office_code", "period", "theme", "notes")
REQUIRED = ("office_code", "period", "theme")
THEME_MAX = 300
NOTES_MAX = 1000
YEARS = range(2000, 2101)
ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}

PERIOD_HELP = "a month (2026-11, 11/2026, T11/2026) or a quarter (2026-Q4, Q4/2026, Quý 4/2026)"

# Matched against the folded period with every space removed ("Quý 4/2026" -> "quy4/2026").
MONTH_FORMS = (
    re.compile(r"^(?P<year>\d{4})-(?P<month>\d{1,2})$"),
    re.compile(r"^(?:t|thang)?(?P<month>\d{1,2})(?:/|-|nam)(?P<year>\d{4})$"),
    # Excel reads "11/2026" typed into a cell as the 1st of November 2026.
    re.compile(r"^(?P<year>\d{4})-(?P<month>\d{1,2})-0?1(?:t00:00(?::00)?)?$"),
)
QUARTER_FORMS = (
    re.compile(r"^(?P<year>\d{4})-?q(?P<quarter>\d{1,2}|i{1,3}|iv)$"),
    re.compile(r"^(?:q|quy)(?P<quarter>\d{1,2}|i{1,3}|iv)(?:/|-|nam)(?P<year>\d{4})$"),
)
# The forms, the group holding the number, its largest value, and how the period is stored.
PERIOD_FORMS = (
    (MONTH_FORMS, "month", 12, "{year:04d}-{number:02d}"),
    (QUARTER_FORMS, "quarter", 4, "{year:04d}-Q{number}"),
)
BULLET_RE = re.compile(r"^[-+•*]\s+")
MONTH_KEY_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True)
class ThemeRow:
    """A theme as one row gives it."""

    office: str
    period: str
    theme: str
    notes: str

    @property
    def key(self) -> tuple[str, str, str]:
        """What makes two rows the same theme: office, period and the theme ignoring case and accents."""
        return (self.office, self.period, fold(self.theme))


@dataclass
class PlanFile:
    """The checked themes of a file in file order, with the row that first gave each."""

    themes: dict[tuple[str, str, str], ThemeRow] = field(default_factory=dict)
    rows: dict[tuple[str, str, str], int] = field(default_factory=dict)


@dataclass
class PlanResult:
    """What an import did."""

    themes: Counts = field(default_factory=Counts)
    offices: int = 0

    def __str__(self) -> str:
        return f"{plural(self.themes.total, 'theme')} ({self.themes}) for {plural(self.offices, 'office')}"


def plural(n: int, word: str) -> str:
    """ "1 theme", "2 themes"."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---- periods -------------------------------------------------------------------------------


def _number(text: str) -> int:
    return ROMAN[text] if text in ROMAN else int(text)


def normal_period(value: str) -> tuple[str | None, str]:
    """("2026-11" or "2026-Q4", "") for a period the file may give, else (None, what is wrong)."""
    compact = "".join(fold(value).split())
    if not compact:
        return None, "period is empty"
    for forms, unit, most, stored in PERIOD_FORMS:
        for form in forms:
            found = form.match(compact)
            if not found:
                continue
            year, number = int(found["year"]), _number(found[unit])
            if year not in YEARS:
                return None, f"period {value!r}: the year {year} is not between 2000 and 2100"
            if not 1 <= number <= most:
                return None, f"period {value!r}: there is no {unit} {number}"
            return stored.format(year=year, number=number), ""
    return None, f"period {value!r} is not {PERIOD_HELP}"


def quarter_of(month_key: str) -> str:
    """ "2026-11" -> "2026-Q4"."""
    found = MONTH_KEY_RE.match(month_key)
    if not found or not 1 <= int(found[2]) <= 12:
        raise ValueError(f"not a month key (YYYY-MM): {month_key!r}")
    return f"{found[1]}-Q{(int(found[2]) - 1) // 3 + 1}"


# ---- checking ------------------------------------------------------------------------------


def header_map(header: Sequence[str]) -> tuple[dict[str, int], Problems]:
    """Column positions by name, or the problems with the header row."""
    return orgimport.header_map(header, COLUMNS, REQUIRED, " (notes may be left out)")


def clean_theme(value: str) -> str:
    """NFC, one line, single spaces, without a leading list bullet."""
    return BULLET_RE.sub("", " ".join(nfc(value).split())).strip()


def clean_notes(value: str) -> str:
    """NFC, single spaces within each line, blank lines dropped."""
    lines = (" ".join(line.split()) for line in nfc(value).splitlines())
    return "\n".join(line for line in lines if line)


def parse_row(cells: dict[str, str], offices: dict[str, Office]) -> tuple[ThemeRow | None, list[str]]:
    """One data row's theme (None when the row is bad) and what is wrong with it."""
    problems: list[str] = []
    code = cells["office_code"].strip().upper()
    if not code:
        problems.append("office_code is empty")
    elif code not in offices:
        problems.append(f"office {code} is not in the database (add it with 'schoolbot schools import')")
    period, period_problem = normal_period(cells["period"])
    if period is None:
        problems.append(period_problem)
    theme = clean_theme(cells["theme"])
    if not theme:
        problems.append("theme is empty")
    elif len(theme) > THEME_MAX:
        problems.append(f"theme is {len(theme)} characters long; at most {THEME_MAX}")
    notes = clean_notes(cells.get("notes", ""))
    if len(notes) > NOTES_MAX:
        problems.append(f"notes are {len(notes)} characters long; at most {NOTES_MAX}")
    if problems or period is None:
        return None, problems
    return ThemeRow(code, period, theme, notes), []


def check_rows(rows: list[list[str]], offices: dict[str, Office]) -> tuple[PlanFile, Problems]:
    """Every problem in the file, row by row and across rows, given the offices stored."""
    plan = PlanFile()
    found, problems = data_rows(rows, header_map)
    for number, cells in found:
        theme, row_problems = parse_row(cells, offices)
        problems.extend((number, p) for p in row_problems)
        if theme is None:
            continue
        first = plan.themes.get(theme.key)
        if first is None:
            plan.themes[theme.key] = theme
            plan.rows[theme.key] = number
        elif first != theme:
            where = f"row {plan.rows[theme.key]}"
            if first.theme != theme.theme:
                problems.append(
                    (
                        number,
                        f"the same theme as {where} for {theme.office} {theme.period}, spelt differently",
                    )
                )
            else:
                problems.append(
                    (
                        number,
                        f"theme {theme.theme!r} for {theme.office} {theme.period} is also on {where} "
                        "with other notes",
                    )
                )
    problems.sort(key=lambda p: p[0])
    return plan, problems


# ---- writing -------------------------------------------------------------------------------


def load_themes(s: Session, office_ids: Sequence[int], periods: set[str]) -> list[PlanTheme]:
    """The stored themes of these offices for these periods, oldest first."""
    found: list[PlanTheme] = []
    for part in chunks(list(office_ids)):
        stmt = select(PlanTheme).where(col(PlanTheme.office_id).in_(part), col(PlanTheme.period).in_(periods))
        found.extend(s.exec(stmt))
    return sorted(found, key=lambda t: t.id or 0)


def upsert(s: Session, plan: PlanFile, offices: dict[str, Office]) -> PlanResult:
    """Add the new themes and update the changed ones, in file order."""
    result = PlanResult(offices=len({t.office for t in plan.themes.values()}))
    office_ids = {code: offices[code].id or 0 for code in {t.office for t in plan.themes.values()}}
    stored = load_themes(s, list(office_ids.values()), {t.period for t in plan.themes.values()})
    exact = {(t.office_id, t.period, t.theme): t for t in stored}
    folded: dict[tuple[int, str, str], PlanTheme] = {}
    for t in stored:
        folded.setdefault((t.office_id, t.period, fold(t.theme)), t)
    for wanted in plan.themes.values():
        office_id = office_ids[wanted.office]
        row = exact.get((office_id, wanted.period, wanted.theme)) or folded.get(
            (office_id, wanted.period, fold(wanted.theme))
        )
        if row is None:
            s.add(
                PlanTheme(office_id=office_id, period=wanted.period, theme=wanted.theme, notes=wanted.notes)
            )
            result.themes.new += 1
        elif (row.theme, row.notes) != (wanted.theme, wanted.notes):
            row.theme, row.notes = wanted.theme, wanted.notes
            s.add(row)
            result.themes.updated += 1
        else:
            result.themes.unchanged += 1
    s.flush()  # new rows are inserted in the order added: ids follow the file, as themes_for shows them
    return result


def import_rows(db: Database, rows: list[list[str]]) -> PlanResult:
    """Check `rows` (header first) and upsert them in one transaction; ImportRejected writes nothing."""
    return import_checked(db, rows, check_rows, upsert)


def import_plan(db: Database, path: Path) -> str:
    """Import a CSV or XLSX plan file; a one-line summary, or ImportRejected with every problem."""
    return str(import_rows(db, read_rows(Path(path))))


# ---- reading -------------------------------------------------------------------------------


def themes_for(s: Session, office_id: int, period_key: str) -> list[PlanTheme]:
    """A month's themes ("YYYY-MM"): the month's and its quarter's, of the office and the offices above it.

    The nearest office comes first; within an office, the order the themes were imported in. A theme
    given by several offices (ignoring case and accents) is shown once, as the nearest office gives it.
    ValueError when `period_key` is not "YYYY-MM".
    """
    quarter = quarter_of(period_key)
    chain = [o.id for o in office_chain(s, office_id) if o.id is not None]
    if not chain:
        return []
    rank = {oid: i for i, oid in enumerate(chain)}
    stmt = (
        select(PlanTheme)
        .where(col(PlanTheme.office_id).in_(chain), col(PlanTheme.period).in_((period_key, quarter)))
        .order_by(col(PlanTheme.id))
    )
    found = sorted(s.exec(stmt), key=lambda t: rank[t.office_id])  # stable: id order within an office
    seen: set[str] = set()
    themes: list[PlanTheme] = []
    for theme in found:
        key = fold(theme.theme)
        if key not in seen:
            seen.add(key)
            themes.append(theme)
    return themes
