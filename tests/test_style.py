"""locales/STYLE.md's forbidden forms appear in no Vietnamese sentence; the list is read from the doc itself."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_locales import load

STYLE = Path(__file__).resolve().parents[1] / "locales" / "STYLE.md"
NOT_TEXT = re.compile(r"https?://\S+|/[a-z_]+|\{[a-z_]*\}")  # web addresses, commands, fields
SENTENCE_START = re.compile(r"(?:^|[.!?:;\n]\s*|[\"“(]\s*|[^\w\s]\s+)$")


def forbidden_forms() -> list[str]:
    """The first column of the table under "## Forbidden forms" in STYLE.md."""
    section = STYLE.read_text(encoding="utf-8").split("## Forbidden forms", 1)[1].split("\n## ", 1)[0]
    return [m for m in re.findall(r"^\|\s*`([^`]+)`\s*\|", section, re.M)]


def pattern(form: str) -> re.Pattern[str]:
    """`form` as a whole word, its first letter in either case."""
    first = re.escape(form[0].lower()) + re.escape(form[0].upper())
    return re.compile(rf"(?<!\w)[{first}]{re.escape(form[1:])}(?!\w)")


def uses(sentence: str, form: str) -> bool:
    """Whether `sentence` uses `form`; a lower-case form capitalised mid-sentence is a proper name."""
    text = NOT_TEXT.sub(" ", sentence)
    for m in pattern(form).finditer(text):
        proper = form[0].islower() and m.group()[0].isupper() and not SENTENCE_START.search(text[: m.start()])
        if not proper:
            return True
    return False


def test_style_lists_the_forms_it_forbids() -> None:
    forms = forbidden_forms()
    assert {"bạn", "mình", "Hãy", "nhé", "chứ?", "Chuyện gì", "bị trả lại", "GDĐT"} <= set(forms)


def test_the_matcher_reads_whole_words_and_spares_proper_names() -> None:
    assert uses("Hãy gửi ảnh.", "Hãy") and uses("Mã sai; hãy thử lại.", "Hãy")
    assert uses("Mình chưa hiểu ý bạn.", "mình") and uses("Mình chưa hiểu ý bạn.", "bạn")
    assert uses("Xin chào. Bạn là ai?", "bạn") and uses("Tiếp tục chứ?", "chứ?")
    assert not uses("Trường Tiểu học Mình Sơn đã nộp.", "mình")  # a proper name mid-sentence
    assert not uses("Thầy Bạn Văn An đã gửi.", "bạn")
    assert not uses("Ông mìnhx", "mình") and not uses("Phòng GD&ĐT", "GDĐT")
    assert not uses("/menu – Về danh mục chính", "Menu") and not uses("Nhà trường đã nộp.", "nha")
    assert uses("Mở Menu chính", "Menu") and not uses("{website}", "website")


def test_no_vietnamese_sentence_uses_a_forbidden_form() -> None:
    vi = load("vi")
    found = sorted(
        f"{key}: {form!r}" for key, text in vi.items() for form in forbidden_forms() if uses(text, form)
    )
    assert found == []
