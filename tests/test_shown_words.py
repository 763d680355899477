"""The scan every test ends with (tests/conftest.py `_words_not_keys`) can fail, and fails on what it should."""

from __future__ import annotations

import pytest

from tests.support import keys_shown


@pytest.mark.parametrize(
    "text",
    [
        "#3 · Báo cáo định kỳ · Trường PTDTBT THCS Pú Nhi · nam-2026",  # the officer's queue before issue 14
        'Đã duyệt Báo cáo định kỳ "6thang-2026"',
        "Chưa nộp Bài viết tháng 11/2026: 4 trường (còn -15 ngày)",
        "Số liệu tháng 2026-11",
        "Đề xuất 2026-2027-HK1",
        "4 school(s) (-3 days left)",
    ],
)
def test_a_key_or_a_negative_number_of_days_is_caught(text: str) -> None:
    assert keys_shown([text])


@pytest.mark.parametrize(
    "text",
    [
        "Báo cáo năm 2026 (hạn 01/12/2026, quá hạn 15 ngày)",
        "🏅 Đề xuất điển hình học kỳ I năm học 2026-2027",
        "Link: https://drive.example.vn/bao-cao-nam-2026.pdf",
        "Hạn nộp bài viết: 15/11/2026 (còn 5 ngày); hôm nay là hạn",
        "Tệp TinhHinhNop_PGD-DEMO_2026-11.xlsx",
    ],
)
def test_names_dates_school_years_and_links_pass(text: str) -> None:
    assert keys_shown([text]) == []
