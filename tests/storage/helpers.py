"""Import test helpers: write CSV and XLSX files, and read the problems of a refused import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from storage.db import Database
from storage.errors import ImportRejected

Problems = list[tuple[int, str]]


def write(tmp_path: Path, lines: list[str], name: str = "import.csv", bom: bool = False) -> Path:
    """A CSV file of `lines` as Excel writes it (CRLF, optionally a BOM)."""
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    return path


def write_xlsx(tmp_path: Path, rows: list[list[Any]], name: str = "import.xlsx") -> Path:
    """An XLSX file with `rows` on its first sheet; None leaves a cell empty."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for i, row in enumerate(rows, start=1):
        for j, value in enumerate(row, start=1):
            if value is not None:
                sheet.cell(row=i, column=j, value=value)
    path = tmp_path / name
    book.save(path)
    return path


def refused(
    db: Database, path: Path, importer: Callable[[Database, Path], str], snapshot: Callable[[Database], Any]
) -> Problems:
    """The problems of a file `importer` must refuse, checking that `snapshot` of the database is unchanged."""
    before = snapshot(db)
    with pytest.raises(ImportRejected) as info:
        importer(db, path)
    assert snapshot(db) == before
    return info.value.problems


def rows_of(problems: Problems) -> list[int]:
    """The row number of each problem."""
    return [row for row, _ in problems]


def reason(problems: Problems, row: int) -> str:
    """Every problem of one row, joined."""
    return " | ".join(r for n, r in problems if n == row)


def assert_header_refused(problems: Problems, expected: str, header: str) -> None:
    """Every problem is on row 1 (the header), one says `expected`, and they show the header wanted."""
    assert set(rows_of(problems)) == {1}
    assert expected in reason(problems, 1)
    assert header in reason(problems, 1)
