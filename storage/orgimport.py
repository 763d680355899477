"""Import offices and schools from a CSV or XLSX file: everything is checked first, then upserted at once.

The file has one header row with the columns

    office_code,office_name,office_kind,parent_office_code,school_code,school_name,level

(in any order, case and spaces ignored) and one row per school; an office row with the school columns empty
adds or updates just the office. Row numbers in problems are the ones a spreadsheet shows: the header is
row 1, the first data row is row 2; row 0 means the file as a whole.

Rules:
- Codes are trimmed and upper-cased; letters, digits, ``.``, ``_`` and ``-`` only, at most 32 characters.
- ``office_kind`` is ``province`` or ``district``. A province has no parent; a district's parent, if given,
  must be a province in the file or already in the database.
- Every row repeats its office's name, kind and parent; two rows giving the same office different values
  contradict each other. A school code given twice must carry the same data both times.
- ``level`` is MN, TH, THCS, THPT, GDTX, or several joined with ``&`` (``th & thcs`` -> ``TH&THCS``).
- Names are stored NFC with runs of spaces collapsed; a school's ``name_folded`` is ``fold(name)``.
- Offices and schools missing from the file are left alone: the import adds and updates, never deletes.
- A school moved to another office or level drops the leaders' month rollup (recomputed when next needed).
- CSV is UTF-8 with or without BOM; a header using ``;`` or tabs (Excel in a Vietnamese locale) is
  read with that delimiter. XLSX: the first worksheet.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from sqlmodel import Session, col, select

from storage import stats
from storage.db import Database
from storage.errors import ImportRejected
from storage.models import LEVELS, OFFICE_KINDS, Office, School
from storage.text import fold, nfc

COLUMNS = (
    "office_code",
    "office_name",
    "office_kind",
    "parent_office_code",
    "school_code",
    "school_name",
    "level",
)
SCHOOL_COLUMNS = ("school_code", "school_name", "level")
CODE_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,31}$")
NAME_MAX = 200
CHUNK = 500  # codes per IN (...) query, well under every engine's parameter limit

ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # the old binary .xls

Problems = list[tuple[int, str]]
HeaderMap = Callable[[Sequence[str]], tuple[dict[str, int], Problems]]
Checked = TypeVar("Checked")
Result = TypeVar("Result")
T = TypeVar("T")


@dataclass(frozen=True)
class OfficeRow:
    """An office as one row gives it."""

    code: str
    name: str
    kind: str
    parent: str


@dataclass(frozen=True)
class SchoolRow:
    """A school as one row gives it."""

    code: str
    name: str
    level: str
    office: str


@dataclass
class Counts:
    """What an upsert did to one table."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        """Rows in the file for this table."""
        return self.new + self.updated + self.unchanged

    def __str__(self) -> str:
        return f"{self.new} new, {self.updated} updated, {self.unchanged} unchanged"


@dataclass
class ImportResult:
    """The outcome of an import."""

    offices: Counts = field(default_factory=Counts)
    schools: Counts = field(default_factory=Counts)

    def __str__(self) -> str:
        return (
            f"{_plural(self.offices.total, 'office')} ({self.offices}), "
            f"{_plural(self.schools.total, 'school')} ({self.schools})"
        )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---- reading -------------------------------------------------------------------------------


def clean_name(value: str) -> str:
    """NFC, trimmed, single spaces."""
    return " ".join(nfc(value).split())


def cell_text(value: object) -> str:
    """A spreadsheet cell as text: numbers without a trailing .0, dates as ISO, empty as ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).upper()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value).strip()


def read_rows(path: Path) -> list[list[str]]:
    """Every row of the file (row 1 first) as text cells; raise ImportRejected if it cannot be read."""
    if not path.is_file():
        raise ImportRejected([(0, f"{path} does not exist or is not a file")])
    try:
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise ImportRejected([(0, f"cannot read {path.name}: {exc.strerror or exc}")]) from None
    suffix = path.suffix.lower()
    if head.startswith(OLE_MAGIC):
        raise ImportRejected([(0, "this is an old Excel .xls file; save it as .xlsx or as CSV UTF-8")])
    if head.startswith(ZIP_MAGIC):
        if suffix not in (".xlsx", ".xlsm"):
            raise ImportRejected([(0, f"{path.name} is not a CSV or XLSX file (it is a zip archive)")])
        return read_xlsx(path)
    if suffix in (".xlsx", ".xlsm"):
        raise ImportRejected([(0, f"{path.name} is not a valid XLSX file")])
    if suffix not in (".csv", ".txt"):
        raise ImportRejected(
            [(0, f"{path.name} is not a CSV or XLSX file (the name must end in .csv or .xlsx)")]
        )
    return read_csv(path.read_bytes())


def read_csv(data: bytes) -> list[list[str]]:
    """CSV bytes as rows; a record spanning lines (a quoted line break) is one row, as in a spreadsheet."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportRejected(
            [(line, "the file is not UTF-8 text; in Excel use Save As > 'CSV UTF-8 (Comma delimited)'")]
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise ImportRejected([(line, "the file contains NUL bytes; it is not a text CSV file")])
    first_line = text.split("\n", 1)[0]
    delimiter = ","
    if "," not in first_line:
        if ";" in first_line:
            delimiter = ";"
        elif "\t" in first_line:
            delimiter = "\t"
    try:
        return [
            [cell.strip() for cell in row]
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        ]
    except csv.Error as exc:
        raise ImportRejected([(0, f"the file is not valid CSV: {exc}")]) from None


def read_xlsx(path: Path) -> list[list[str]]:
    """The first worksheet's rows as text cells (formulas as their cached values)."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # style and extension notices from other spreadsheet programs
            workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError, ValueError) as exc:
        raise ImportRejected([(0, f"{path.name} is not a valid XLSX file ({type(exc).__name__})")]) from None
    try:
        if not workbook.worksheets:
            return []
        sheet = workbook.worksheets[0]
        sheet.reset_dimensions()  # some programs write a wrong size; read every row there is
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return [[cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


# ---- checking ------------------------------------------------------------------------------


def header_map(
    header: Sequence[str],
    columns: Sequence[str] = COLUMNS,
    required: Sequence[str] | None = None,
    note: str = "",
) -> tuple[dict[str, int], Problems]:
    """Column positions by name, or the problems with the header row (shared by every import)."""
    names = [" ".join(nfc(h).lower().split()).replace(" ", "_") for h in header]
    while names and not names[-1]:
        names.pop()
    positions: dict[str, int] = {}
    problems: Problems = []
    for i, name in enumerate(names):
        if name in positions:
            problems.append((1, f"column {name} appears twice in the header"))
        positions.setdefault(name, i)
    unknown = [n or f"(empty, column {i + 1})" for i, n in enumerate(names) if n not in columns]
    missing = [c for c in (columns if required is None else required) if c not in positions]
    if unknown:
        problems.append((1, f"unknown column(s) in the header: {', '.join(unknown)}"))
    if missing:
        problems.append((1, f"missing column(s) in the header: {', '.join(missing)}"))
    if problems:
        problems.append((1, f"the header row must be: {','.join(columns)}{note}"))
    return positions, problems


def normal_level(value: str) -> str | None:
    """ "th & thcs" -> "TH&THCS" (levels in the usual order); None when a part is not a level."""
    parts = [p.strip().upper() for p in value.split("&")]
    if not all(p in LEVELS for p in parts) or len(set(parts)) != len(parts):
        return None
    return "&".join(sorted(parts, key=LEVELS.index))


def check_code(value: str, what: str, problems: list[str]) -> str:
    """The normalised code, noting a problem when it is malformed."""
    code = value.strip().upper()
    if not code:
        problems.append(f"{what} is empty")
    elif not CODE_RE.match(code):
        problems.append(
            f"{what} {value!r} is not a valid code (letters, digits, '.', '_' or '-', at most 32 characters)"
        )
    return code


def check_name(value: str, what: str, problems: list[str]) -> str:
    """The cleaned name, noting a problem when it is empty or too long."""
    name = clean_name(value)
    if not name:
        problems.append(f"{what} is empty")
    elif len(name) > NAME_MAX:
        problems.append(f"{what} is longer than {NAME_MAX} characters")
    return name


def parse_row(cells: dict[str, str]) -> tuple[OfficeRow | None, SchoolRow | None, list[str]]:
    """One data row's office and school (None where that part is bad), and what is wrong with it."""
    office_problems: list[str] = []
    code = check_code(cells["office_code"], "office_code", office_problems)
    name = check_name(cells["office_name"], "office_name", office_problems)
    kind = cells["office_kind"].strip().lower()
    if kind not in OFFICE_KINDS:
        shown = repr(cells["office_kind"]) if cells["office_kind"] else "empty"
        office_problems.append(f"office_kind is {shown}; it must be province or district")
    parent = ""
    if cells["parent_office_code"]:
        parent = check_code(cells["parent_office_code"], "parent_office_code", office_problems)
        if kind == "province":
            office_problems.append("a province office cannot have a parent_office_code")
        elif parent == code:
            office_problems.append("an office cannot be its own parent")
    office = None if office_problems else OfficeRow(code, name, kind, parent)

    school_problems: list[str] = []
    school = None
    if any(cells[c] for c in SCHOOL_COLUMNS):
        school_code = check_code(cells["school_code"], "school_code", school_problems)
        school_name = check_name(cells["school_name"], "school_name", school_problems)
        level = normal_level(cells["level"]) if cells["level"] else None
        if not cells["level"]:
            school_problems.append("level is empty")
        elif level is None:
            school_problems.append(
                f"level {cells['level']!r} is not one of {', '.join(LEVELS)} (or several joined with &, "
                "e.g. TH&THCS)"
            )
        if not school_problems and level is not None:
            school = SchoolRow(school_code, school_name, level, code)
    return office, school, office_problems + school_problems


def differences(*fields: tuple[str, str, str]) -> str:
    """ "name 'B' (was 'A'), kind district (was province)": each (field, was, now) whose values differ."""
    return ", ".join(f"{what} {now} (was {was})" for what, was, now in fields if was != now)


def describe_office_difference(a: OfficeRow, b: OfficeRow) -> str:
    """What differs between two descriptions of one office."""
    return differences(
        ("name", repr(a.name), repr(b.name)),
        ("kind", a.kind, b.kind),
        ("parent", a.parent or "(none)", b.parent or "(none)"),
    )


def describe_school_difference(a: SchoolRow, b: SchoolRow) -> str:
    """What differs between two descriptions of one school."""
    return differences(
        ("name", repr(a.name), repr(b.name)), ("level", a.level, b.level), ("office", a.office, b.office)
    )


@dataclass
class Plan:
    """The checked content of a file: offices and schools by code, with the row that first gave them."""

    offices: dict[str, OfficeRow] = field(default_factory=dict)
    office_rows: dict[str, int] = field(default_factory=dict)
    schools: dict[str, SchoolRow] = field(default_factory=dict)


def data_rows(rows: list[list[str]], header: HeaderMap) -> tuple[list[tuple[int, dict[str, str]]], Problems]:
    """The data rows as (row number, cells by column name), and the problems of the file's layout.

    An empty file, a bad header or no data rows is a problem of the whole file, with no rows (every import).
    """
    if not rows or all(not any(r) for r in rows):
        return [], [(0, "the file is empty")]
    positions, problems = header(rows[0])
    if problems:
        return [], problems
    width = max(positions.values()) + 1
    found: list[tuple[int, dict[str, str]]] = []
    for number, raw in enumerate(rows[1:], start=2):
        if not any(raw):
            continue  # a blank line between blocks
        if any(raw[width:]):
            problems.append((number, f"the row has values beyond the {width} columns of the header"))
            continue
        found.append((number, {name: raw[i] if i < len(raw) else "" for name, i in positions.items()}))
    if not found and not problems:
        return [], [(0, "the file has a header but no data rows")]
    return found, problems


def check_rows(rows: list[list[str]], existing: dict[str, Office]) -> tuple[Plan, Problems]:
    """Every problem in the file, row by row and across rows, given the offices already stored."""
    plan = Plan()
    school_rows: dict[str, int] = {}
    found, problems = data_rows(rows, header_map)
    for number, cells in found:
        office, school, row_problems = parse_row(cells)
        problems.extend((number, p) for p in row_problems)
        if office is not None:
            first = plan.offices.get(office.code)
            if first is None:
                plan.offices[office.code] = office
                plan.office_rows[office.code] = number
            elif first != office:
                problems.append(
                    (
                        number,
                        f"office {office.code} differs from row {plan.office_rows[office.code]}: "
                        f"{describe_office_difference(first, office)}",
                    )
                )
        if school is not None:
            seen = plan.schools.get(school.code)
            if seen is None:
                plan.schools[school.code] = school
                school_rows[school.code] = number
            elif seen != school:
                problems.append(
                    (
                        number,
                        f"school {school.code} is also on row {school_rows[school.code]} with other data: "
                        f"{describe_school_difference(seen, school)}",
                    )
                )
    problems.extend(check_hierarchy(plan, existing))
    problems.sort(key=lambda p: p[0])
    return plan, problems


def check_hierarchy(plan: Plan, existing: dict[str, Office]) -> Problems:
    """Parents exist and are provinces; an office with districts under it stays a province."""
    problems: Problems = []
    for code, office in plan.offices.items():
        if not office.parent:
            continue
        row = plan.office_rows[code]
        given = plan.offices.get(office.parent)
        stored = existing.get(office.parent)
        kind = given.kind if given else (stored.kind if stored else None)
        if kind is None:
            problems.append((row, f"parent office {office.parent} is not in the file or the database"))
        elif kind != "province":
            problems.append((row, f"parent office {office.parent} is a {kind}; a parent must be a province"))
    # An office turning into a district must not keep districts under it in the database.
    by_id = {o.id: o for o in existing.values()}
    for stored in existing.values():
        parent = by_id.get(stored.parent_id) if stored.parent_id else None
        if parent is None or stored.code in plan.offices:
            continue
        new_parent = plan.offices.get(parent.code)
        if new_parent is not None and new_parent.kind != "province":
            problems.append(
                (
                    plan.office_rows[parent.code],
                    f"office {parent.code} cannot become a {new_parent.kind}: office {stored.code} in the "
                    "database is under it",
                )
            )
    return problems


# ---- writing -------------------------------------------------------------------------------


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    """`items` in slices of `size`."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def load_schools(s: Session, codes: Sequence[str]) -> dict[str, School]:
    """The stored schools with these codes, a few queries for any number of codes."""
    found: dict[str, School] = {}
    for part in chunks(codes):
        for school in s.exec(select(School).where(col(School.code).in_(part))):
            found[school.code] = school
    return found


def upsert(s: Session, plan: Plan, existing: dict[str, Office]) -> ImportResult:
    """Write the plan: provinces first so districts can point to them, then schools."""
    result = ImportResult()
    offices = dict(existing)
    ordered = sorted(plan.offices.values(), key=lambda o: (o.kind != "province", o.code))
    for wanted in ordered:
        parent_id = offices[wanted.parent].id if wanted.parent else None
        row = offices.get(wanted.code)
        if row is None:
            row = Office(code=wanted.code, name=wanted.name, kind=wanted.kind, parent_id=parent_id)
            offices[wanted.code] = row
            result.offices.new += 1
        elif (row.name, row.kind, row.parent_id) != (wanted.name, wanted.kind, parent_id):
            row.name, row.kind, row.parent_id = wanted.name, wanted.kind, parent_id
            result.offices.updated += 1
        else:
            result.offices.unchanged += 1
            continue
        s.add(row)
        if wanted.kind == "province":
            s.flush()  # districts below need the province's id
    s.flush()

    stored = load_schools(s, list(plan.schools))
    moved = False
    for school_row in plan.schools.values():
        office_id = offices[school_row.office].id
        assert office_id is not None
        values = (school_row.name, fold(school_row.name), school_row.level, office_id)
        school = stored.get(school_row.code)
        if school is None:
            s.add(
                School(
                    code=school_row.code,
                    name=school_row.name,
                    name_folded=values[1],
                    level=school_row.level,
                    office_id=office_id,
                )
            )
            result.schools.new += 1
        elif (school.name, school.name_folded, school.level, school.office_id) != values:
            moved = moved or (school.level, school.office_id) != values[2:]
            school.name, school.name_folded, school.level, school.office_id = values
            s.add(school)
            result.schools.updated += 1
        else:
            result.schools.unchanged += 1
    s.flush()
    if moved:  # the month rollup counts schools under their office and level: recomputed when next needed
        stats.forget_rollup(s)
    return result


def import_checked(
    db: Database,
    rows: list[list[str]],
    check: Callable[[list[list[str]], dict[str, Office]], tuple[Checked, Problems]],
    write: Callable[[Session, Checked, dict[str, Office]], Result],
) -> Result:
    """Check `rows` against the stored offices, then write them in the same transaction (every import)."""
    with db.session() as s:
        offices = {o.code: o for o in s.exec(select(Office))}
        checked, problems = check(rows, offices)
        if problems:
            raise ImportRejected(problems)
        return write(s, checked, offices)


def import_rows(db: Database, rows: list[list[str]]) -> ImportResult:
    """Check `rows` (header first) and upsert them in one transaction; ImportRejected writes nothing."""
    return import_checked(db, rows, check_rows, upsert)


def import_file(db: Database, path: Path) -> str:
    """Import a CSV or XLSX organisation file; a one-line summary, or ImportRejected with every problem."""
    return str(import_rows(db, read_rows(Path(path))))
