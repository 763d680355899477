"""Excel workbooks: plain values under a frozen header, columns wide enough, dates dd/mm/yyyy.

The one writer of every workbook the bot makes (the status workbook, the bundle's index). The caller
brings every word (titles, headers, cell texts) already translated; this module only lays them out.
Nothing in a workbook is a formula: a text that starts with "=" (or "+", "-", "@", which some
spreadsheets also read as a formula) is stored as a text cell with the quote-prefix style, so it is
shown as typed, with no apostrophe added to its value. A text that is one http(s) link is also a link. openpyxl is imported when the first workbook
is made, not with this module, so a start that makes none does not pay for it.
"""

from __future__ import annotations

import io
import os
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openpyxl import Workbook
    from openpyxl.cell.cell import Cell, MergedCell
    from openpyxl.worksheet.worksheet import Worksheet

Value = str | int | float | date | None
DATE_FORMAT = "DD/MM/YYYY"
MIN_WIDTH = 6
MAX_WIDTH = 60  # longer texts wrap
FORMULA_STARTS = ("=", "+", "-", "@")
LINK_STARTS = ("http://", "https://")
MAX_LINK = 2000
TITLE_ROW = 1
HEADER_ROW = 2


@dataclass(frozen=True)
class Sheet:
    """One sheet: its tab name, a title line (None: the header is the first row), the header, the rows."""

    name: str
    title: str | None
    headers: tuple[str, ...]
    rows: Sequence[Sequence[Value]] = field(default_factory=list)


def shown(value: Value) -> str:
    """The value as a reader sees it in the cell, to size the column."""
    if value is None:
        return ""
    if isinstance(value, date):
        return "00/00/0000"
    return unicodedata.normalize("NFC", str(value))


def width_of(values: Sequence[Value]) -> float:
    """A column width that fits the longest line of its cells (Vietnamese letters are one character)."""
    longest = max((len(line) for v in values for line in shown(v).splitlines() or [""]), default=0)
    return float(min(MAX_WIDTH, max(MIN_WIDTH, longest + 2)))


def put(cell: Cell | MergedCell, value: Value) -> None:
    """A plain value: a date with the Vietnamese format, a text that looks like a formula kept as text."""
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, str):
        value = unicodedata.normalize("NFC", value)
        cell.value = value
        if value.startswith(FORMULA_STARTS):
            cell.data_type = "s"  # openpyxl would otherwise write "=..." as a formula
            cell.quotePrefix = True
        elif value.startswith(LINK_STARTS) and len(value) <= MAX_LINK and not any(c.isspace() for c in value):
            cell.hyperlink = value  # a web link (a signed report's) opens from the cell
        return
    cell.value = value
    if isinstance(value, date):
        cell.number_format = DATE_FORMAT


def fill(ws: Worksheet, sheet: Sheet) -> None:
    """Title, header (bold, frozen, filterable), rows, column widths."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    header_row = TITLE_ROW
    if sheet.title is not None:
        put(ws.cell(TITLE_ROW, 1), sheet.title)
        ws.cell(TITLE_ROW, 1).font = Font(bold=True, size=12)
        header_row = HEADER_ROW
    header_fill = PatternFill("solid", fgColor="DDEBF7")
    for c, header in enumerate(sheet.headers, start=1):
        cell = ws.cell(header_row, c)
        put(cell, header)
        cell.font = Font(bold=True)
        cell.fill = header_fill
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for r, row in enumerate(sheet.rows, start=header_row + 1):
        for c, value in enumerate(row, start=1):
            put(ws.cell(r, c), value)
    ws.freeze_panes = ws.cell(header_row + 1, 1).coordinate
    last = get_column_letter(max(1, len(sheet.headers)))
    ws.auto_filter.ref = f"A{header_row}:{last}{header_row + max(1, len(sheet.rows))}"
    for c, header in enumerate(sheet.headers, start=1):
        column = [header, *(row[c - 1] if c - 1 < len(row) else None for row in sheet.rows)]
        width = width_of(column)
        ws.column_dimensions[get_column_letter(c)].width = width
        if width >= MAX_WIDTH:
            for r in range(header_row + 1, header_row + 1 + len(sheet.rows)):
                ws.cell(r, c).alignment = Alignment(wrap_text=True, vertical="top")


def workbook(sheets: Sequence[Sheet]) -> Workbook:
    """A workbook with these sheets, in order."""
    from openpyxl import Workbook

    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for sheet in sheets:
        fill(book.create_sheet(sheet.name[:31]), sheet)
    return book


def write_workbook(path: Path, sheets: Sequence[Sheet]) -> Path:
    """Write the sheets to an .xlsx file, atomically."""
    book = workbook(sheets)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    book.save(partial)
    partial.replace(path)
    return path


def workbook_bytes(sheets: Sequence[Sheet]) -> bytes:
    """The sheets as the bytes of an .xlsx file (for a file inside a ZIP)."""
    out = io.BytesIO()
    workbook(sheets).save(out)
    return out.getvalue()
