"""The one Excel writer: values only, a text that looks like a formula kept as typed, with or without a title."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import load_workbook

from storage.exports import Sheet, Value, workbook_bytes, write_workbook

LOOKS_LIKE_A_FORMULA = ('=HYPERLINK("http://x") Trường', "+84 912", "-1 lớp", "@Trường", "=1+1")


@pytest.mark.parametrize("title", ["Tình hình nộp", None])
def test_a_formula_looking_text_is_a_text_shown_as_typed(tmp_path: Path, title: str | None) -> None:
    rows: list[list[Value]] = [[n, text] for n, text in enumerate(LOOKS_LIKE_A_FORMULA, start=1)]
    sheet = Sheet("Trang", title, ("STT", "Tên"), rows)
    path = write_workbook(tmp_path / "a.xlsx", [sheet])
    for book in (load_workbook(path), load_workbook(io.BytesIO(workbook_bytes([sheet])))):
        ws = book["Trang"]
        first = 2 if title is None else 3  # the first row under the header
        assert ws.freeze_panes == f"A{first}"
        cells = [ws.cell(first + n, 2) for n in range(len(LOOKS_LIKE_A_FORMULA))]
        assert [c.value for c in cells] == list(LOOKS_LIKE_A_FORMULA)  # no apostrophe added
        assert all(c.data_type == "s" and c.quotePrefix for c in cells)
        assert ws.cell(first, 1).value == 1 and not ws.cell(first, 1).quotePrefix
