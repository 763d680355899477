"""Leaders' status through the console: the month's summary, one school, the ranking, the chart, Excel.

A district (the demo's) with a school of each level and a known history: every figure below is counted
by hand from `seed_history`. The clock stands at 10/11/2026 09:00, before November's deadline.
"""

from __future__ import annotations

import secrets
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from openpyxl.cell.cell import Cell
from openpyxl.worksheet.worksheet import Worksheet
from PIL import Image
from sqlalchemy import update
from sqlmodel import Session, col

from bot.app import App, open_app
from bot.config import load_settings
from bot.demo import seed_demo
from handlers.calendar import FrozenClock
from handlers.leaders import charts
from handlers.types import Incoming, Reply
from storage import migrate
from storage import queries as q
from storage.exports import MAX_WIDTH
from storage.models import Incident, IncidentAck, Office, Submission, User
from tests.conftest import Chat
from tests.handlers.helpers import add_principal, add_school, add_user, console_user, flushed
from tests.storage.test_postgres import pg_url_fixture  # noqa: F401  (the fixture pg_url)
from tests.support import id_of

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
JOINED = datetime(2025, 8, 1, 9, tzinfo=TZ)


def at(y: int, m: int, d: int, h: int = 9) -> datetime:
    return datetime(y, m, d, h, tzinfo=TZ)


class History:
    """Ids of what `seed_history` made."""

    def __init__(self) -> None:
        self.schools: dict[str, int] = {}
        self.incidents: dict[str, int] = {}
        self.nominations: dict[str, int] = {}


def add(
    s: Session, school_id: int, user_id: int, kind: str, period: str | None, when: datetime, **fields: Any
) -> Submission:
    return flushed(
        s,
        Submission(
            kind=kind,
            school_id=school_id,
            user_id=user_id,
            period=period,
            status=fields.get("status", "submitted"),
            answers=fields.get("answers", {"title": "Bài viết"}),
            token=secrets.token_hex(16),
            late=fields.get("late", False),
            submitted_at=when,
            created_at=when,
            updated_at=when,
        ),
    )


STUDENT = {
    "kind": "individual",
    "name": "Nguyễn Văn An",
    "role": "student",
    "consent": "no",
    "purpose": "press",
    "deeds": "Em An cứu bạn đuối nước",
}
TEACHER = {
    "kind": "individual",
    "name": "Trần Thị Bích",
    "role": "teacher",
    "consent": None,
    "purpose": "commendation",
    "deeds": "Cô Bích dạy chữ cho trẻ vùng cao",
}


def seed_history(app: App) -> History:
    """District A (the demo's) and district B, principals, articles, nominations, reports, incidents."""
    h = History()
    with app.db.session() as s:
        codes = ("MN-HOABAN", "TH-THITRAN", "THCS-PUNHI", "THCS-TTDBD", "THTHCS-NAMAI")
        found = {c: q.school_by_code(s, c) for c in codes}
        schools = {c: sc for c, sc in found.items() if sc is not None}
        assert schools.keys() == found.keys()
        h.schools = {c: id_of(sc) for c, sc in schools.items()}
        province = q.office_by_code(s, "SGD-DEMO")
        assert province is not None
        district_b = Office(
            code="PGD-B", name="Phòng GD&ĐT huyện Mường Nhé", kind="district", parent_id=province.id
        )
        s.add(district_b)
        s.flush()
        b1 = add_school(s, "THCS-B1", "Trường THCS Bản Phủ", "THCS", district_b.id)
        h.schools["THCS-B1"] = id_of(b1)
        console_user(
            s, "leader_b", JOINED, display_name="Bà Lò Thị Hoa", role="leader", office_id=district_b.id
        )
        demo_principal = q.get_user(s, "console", "principal")
        assert demo_principal is not None
        s.execute(update(User).where(col(User.id) == demo_principal.id).values(created_at=JOINED))
        p = {
            "MN-HOABAN": id_of(add_principal(s, schools["MN-HOABAN"], "p-hoaban", JOINED)),
            "TH-THITRAN": id_of(add_principal(s, schools["TH-THITRAN"], "p-thitran", JOINED)),
            "THCS-PUNHI": id_of(demo_principal),
            "THCS-TTDBD": id_of(add_principal(s, schools["THCS-TTDBD"], "p-ttdbd", at(2026, 9, 20))),
            "THCS-B1": id_of(add_principal(s, b1, "p-b1", JOINED)),
        }
        sid = h.schools

        def sent(kind: str, code: str, period: str | None, when: datetime, **fields: Any) -> Submission:
            return add(s, sid[code], p[code], kind, period, when, **fields)

        sent("article", "THCS-PUNHI", "2026-06", at(2026, 6, 20), late=True)
        for code, status in (
            ("MN-HOABAN", "approved"),
            ("TH-THITRAN", "submitted"),
            ("THCS-PUNHI", "published"),
        ):
            sent("article", code, "2026-09", at(2026, 9, 8), status=status)
        sent("article", "MN-HOABAN", "2026-10", at(2026, 10, 10), status="published")
        sent("article", "TH-THITRAN", "2026-10", at(2026, 10, 20), late=True, status="approved")
        sent("article", "THCS-PUNHI", "2026-10", at(2026, 10, 5), status="returned")
        sent("article", "THCS-PUNHI", "2026-10", at(2026, 10, 20), late=True, status="approved")
        sent("article", "THCS-B1", "2026-10", at(2026, 10, 3), status="published")
        sent("article", "MN-HOABAN", "2026-11", at(2026, 11, 3))
        sent("article", "THCS-B1", "2026-11", at(2026, 11, 2))

        student = sent("nomination", "THCS-PUNHI", "2026-2027-HK1", at(2026, 10, 2), answers=STUDENT)
        h.nominations["THCS-PUNHI"] = id_of(student)
        sent("nomination", "MN-HOABAN", "2026-2027-HK1", at(2026, 10, 6), answers=TEACHER, status="approved")
        sent("nomination", "THCS-PUNHI", "2025-2026-HK2", at(2026, 3, 2), answers=TEACHER, status="published")
        sent("nomination", "THCS-B1", "2026-2027-HK1", at(2026, 10, 9), answers=TEACHER)

        sent("report", "MN-HOABAN", "6thang-2026", at(2026, 6, 10))
        sent("report", "TH-THITRAN", "6thang-2026", at(2026, 6, 28), late=True)
        sent("report", "THCS-PUNHI", "6thang-2026", at(2026, 6, 25), late=True, status="approved")
        sent("report", "MN-HOABAN", "nam-2026", at(2026, 11, 5))
        sent("report", "THCS-B1", "nam-2026", at(2026, 11, 6))

        officer = q.get_user(s, "console", "officer")
        leader = q.get_user(s, "console", "leader")
        assert officer is not None and leader is not None
        for name, code, severity, when, acked_by in (
            ("oct", "MN-HOABAN", "medium", at(2026, 10, 12), leader),
            ("punhi", "THCS-PUNHI", "high", at(2026, 11, 4), None),
            ("thitran", "TH-THITRAN", "low", at(2026, 11, 6), officer),
            ("b1", "THCS-B1", "high", at(2026, 11, 7), None),
        ):
            sub = sent("incident", code, None, when, answers={"what": "Sự cố"})
            incident = Incident(
                submission_id=id_of(sub),
                school_id=sid[code],
                severity=severity,
                created_at=when,
                state="acked" if acked_by is not None else "new",
                holder_id=acked_by.id if acked_by is not None else None,
                acked_at=when if acked_by is not None else None,
            )
            s.add(incident)
            s.flush()
            h.incidents[name] = id_of(incident)
            if acked_by is not None:
                s.add(IncidentAck(incident_id=id_of(incident), user_id=id_of(acked_by), created_at=when))
    return h


@pytest.fixture(name="history")
def history_fixture(demo: App) -> History:
    return seed_history(demo)


def text_of(replies: list[Reply]) -> str:
    assert replies, "no reply"
    assert "Xin lỗi, đã có lỗi" not in replies[0].text, replies[0].text
    return replies[0].text


# ---- the month's summary --------------------------------------------------------------------------


async def test_the_current_month_summary_has_every_figure(
    history: History, chat_as: Callable[[str], Chat]
) -> None:
    replies = await chat_as("leader").send("/status")
    punhi = history.incidents["punhi"]
    assert text_of(replies) == (
        "📊 Tình hình nộp – Tháng 11/2026\n"
        "Phòng GD&ĐT huyện Điện Biên Đông (demo)\n"
        "Hạn nộp bài viết: 15/11/2026 (còn 5 ngày).\n\n"
        "📝 Bài viết tháng: 1/5 trường đã nộp (20%)\n"
        "• Đúng hạn: 1 · Nộp muộn: 0 · Chưa nộp: 3 · Chưa đăng ký: 1\n"
        "• Đã duyệt: 0 · Đã đăng: 0\n\n"
        "Theo cấp học:\n"
        "• Mầm non: 1/1 – đúng hạn 1, muộn 0, chưa nộp 0, chưa đăng ký 0, đã duyệt 0, đã đăng 0\n"
        "• Tiểu học: 0/1 – đúng hạn 0, muộn 0, chưa nộp 1, chưa đăng ký 0, đã duyệt 0, đã đăng 0\n"
        "• THCS: 0/2 – đúng hạn 0, muộn 0, chưa nộp 2, chưa đăng ký 0, đã duyệt 0, đã đăng 0\n"
        "• TH&THCS: 0/1 – đúng hạn 0, muộn 0, chưa nộp 0, chưa đăng ký 1, đã duyệt 0, đã đăng 0\n\n"
        "Chưa nộp (3): Trường PTDTBT THCS Pú Nhi; Trường THCS Thị Trấn Điện Biên Đông; Trường Tiểu học Thị Trấn\n"
        "Chưa đăng ký (1): Trường TH&THCS Na Mai\n\n"
        "🏅 Đề xuất điển hình học kỳ I năm học 2026-2027: 2 đề xuất từ 2 trường (1 chờ duyệt).\n\n"
        "🚨 Sự cố truyền thông trong tháng: 2, đã có người xác nhận 1/2.\n"
        f"Chưa ai xác nhận: #{punhi} Trường PTDTBT THCS Pú Nhi (Rất nghiêm trọng)\n\n"
        f"📂 Sự cố còn mở quá 7 ngày (1): #{history.incidents['oct']} Trường Mầm non Hoa Ban (Đã tiếp nhận)\n\n"
        "📊 Báo cáo năm 2026 (hạn 01/12/2026, còn 21 ngày): 1/5 trường đã nộp; chưa nộp 3, chưa đăng ký 1."
    )
    assert [c.label for c in replies[0].flat_choices()] == ["📥 Tải Excel", "🏆 Xếp hạng năm học"]


async def test_a_past_month_counts_late_approved_and_published_once_per_school(
    history: History, chat_as: Callable[[str], Chat]
) -> None:
    text = text_of(await chat_as("leader").send("/status 10/2026"))
    assert text.startswith(
        "📊 Tình hình nộp – Tháng 10/2026\nPhòng GD&ĐT huyện Điện Biên Đông (demo)\n"
        "Hạn nộp bài viết: 15/10/2026 (đã qua)."
    )
    assert (
        "📝 Bài viết tháng: 3/5 trường đã nộp (60%)\n"
        "• Đúng hạn: 2 · Nộp muộn: 1 · Chưa nộp: 1 · Chưa đăng ký: 1\n"
        "• Đã duyệt: 3 · Đã đăng: 1"
    ) in text
    assert "• Mầm non: 1/1 – đúng hạn 1, muộn 0, chưa nộp 0, chưa đăng ký 0, đã duyệt 1, đã đăng 1" in text
    assert "• Tiểu học: 1/1 – đúng hạn 0, muộn 1, chưa nộp 0, chưa đăng ký 0, đã duyệt 1, đã đăng 0" in text
    assert "• THCS: 1/2 – đúng hạn 1, muộn 0, chưa nộp 1, chưa đăng ký 0, đã duyệt 1, đã đăng 0" in text
    assert "Chưa nộp (1): Trường THCS Thị Trấn Điện Biên Đông" in text
    assert "🚨 Sự cố truyền thông trong tháng: 1, đã có người xác nhận 1/1." in text
    assert "Chưa ai xác nhận" not in text and "Bản Phủ" not in text


async def test_a_school_that_joined_later_counts_as_not_registered_before(
    history: History, chat_as: Callable[[str], Chat]
) -> None:
    text = text_of(await chat_as("leader").send("/status tháng 8/2026"))
    assert (
        "📝 Bài viết tháng: 0/5 trường đã nộp (0%)\n• Đúng hạn: 0 · Nộp muộn: 0 · Chưa nộp: 3 · Chưa đăng ký: 2"
        in text
    )
    assert "Chưa đăng ký (2): Trường TH&THCS Na Mai; Trường THCS Thị Trấn Điện Biên Đông" in text


@pytest.mark.parametrize(
    "typed",
    ["10/2026", "2026-10", "T10/2026", "tháng 10 năm 2026", "Tháng 10", "10", "tháng mười", "Thang muoi"],
)
async def test_months_are_read_in_the_usual_ways(
    history: History, chat_as: Callable[[str], Chat], typed: str
) -> None:
    text = text_of(await chat_as("leader").send(f"/status {typed}"))
    assert text.startswith("📊 Tình hình nộp – Tháng 10/2026")


async def test_the_chart_is_sent_with_the_summary(history: History, chat_as: Callable[[str], Chat]) -> None:
    replies = await chat_as("leader").send("/status")
    path = Path(replies[0].photo_path)
    assert path.is_file() and path.stat().st_size > 10_000
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width == 800 and image.height >= 300


async def test_see_all_lists_every_missing_school_of_a_large_scope(
    history: History, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    with demo.db.session() as s:
        district = q.office_by_code(s, "PGD-DEMO")
        assert district is not None
        schools = [
            add_school(s, f"MN-X{n:02d}", f"Trường Mầm non Bản Số {n:02d}", "MN", district.id)
            for n in range(12)
        ]
        for n, school in enumerate(schools):
            add_principal(s, school, f"p-x{n}", JOINED)
    chat = chat_as("leader")
    replies = await chat.send("/status")
    text = text_of(replies)
    assert "📝 Bài viết tháng: 1/17 trường đã nộp (6%)" in text
    assert "• Mầm non: 1/13 – đúng hạn 1, muộn 0, chưa nộp 12, chưa đăng ký 0" in text
    assert "Chưa nộp (15): Trường Mầm non Bản Số 00; " in text
    assert "\n… và 5 trường khác.\nChưa đăng ký (1): Trường TH&THCS Na Mai" in text
    assert replies[0].flat_choices()[0].label == "📋 Xem tất cả 15 trường chưa nộp"
    with Image.open(replies[0].photo_path) as image:  # 16 schools: by level, not by school
        assert (image.width, image.height) == (800, 450)
    everything = text_of(await chat.press("Xem tất cả"))
    lines = everything.splitlines()
    assert lines[0] == "Các trường chưa nộp bài viết tháng 11/2026 (15):"
    assert len(lines) == 16 and "• Trường Tiểu học Thị Trấn" in lines


# ---- scope ---------------------------------------------------------------------------------------


async def test_a_leader_of_another_district_sees_nothing_of_this_one(history: History, demo: App) -> None:
    chat = Chat(demo, "leader_b")
    text = text_of(await chat.send("/status 10/2026"))
    assert "Phòng GD&ĐT huyện Mường Nhé" in text and "📝 Bài viết tháng: 1/1 trường đã nộp (100%)" in text
    assert "Điện Biên Đông" not in text and "Pú Nhi" not in text
    assert "🏅 Đề xuất điển hình học kỳ I năm học 2026-2027: 1 đề xuất từ 1 trường (1 chờ duyệt)." in text
    assert "Không tìm thấy trường nào khớp “pu nhi”" in text_of(await chat.send("/status pu nhi"))
    pressed = await demo.dispatcher.handle(
        chat_incoming("leader_b", f"ls:s:{history.schools['THCS-PUNHI']}", "forged")
    )
    assert pressed[0].text == "Trường này không thuộc phạm vi phụ trách."
    ranking = text_of(await chat.send("/ranking"))
    assert "Bản Phủ" in ranking and "Pú Nhi" not in ranking and "Hoa Ban" not in ranking


async def test_a_province_leader_sees_both_districts(history: History, demo: App) -> None:
    add_user(demo, "director", "leader", "SGD-DEMO", "Giám đốc", joined=JOINED)
    text = text_of(await Chat(demo, "director").send("/status 10/2026"))
    assert text.startswith("📊 Tình hình nộp – Tháng 10/2026\nSở GD&ĐT Điện Biên (demo)")
    assert "📝 Bài viết tháng: 4/6 trường đã nộp (67%)" in text


async def test_principals_may_not_and_officers_may(history: History, chat_as: Callable[[str], Chat]) -> None:
    refused = await chat_as("principal").send("/status")
    assert refused[0].text == "Chức năng này không dành cho tài khoản này."
    home = await chat_as("principal").send("/menu")
    assert "📊 Tình hình nộp" not in [c.label for c in home[0].flat_choices()]
    officer = text_of(await chat_as("officer").send("/status"))
    assert officer.startswith("📊 Tình hình nộp – Tháng 11/2026")


async def test_the_leaders_menu_button_opens_the_summary(
    history: History, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("leader")
    await chat.send("/menu")
    replies = await chat.press("📊 Tình hình nộp")
    assert text_of(replies).startswith("📊 Tình hình nộp – Tháng 11/2026")


@pytest.mark.skipif(
    not hasattr(User, "levels"), reason="officers limited to levels come with the review desk"
)
async def test_an_officer_for_one_level_sees_only_that_level(history: History, demo: App) -> None:
    add_user(demo, "officer_thcs", "officer", "PGD-DEMO", "Chị Mai", joined=JOINED, levels="THCS")
    chat = Chat(demo, "officer_thcs")
    text = text_of(await chat.send("/status 10/2026"))
    figures, _, incidents = text.partition("🚨")
    assert "📝 Bài viết tháng: 1/3 trường đã nộp (33%)" in figures and "Hoa Ban" not in figures
    # Incidents are the office's shared emergency (#17 item 7): the preschool's is shown all the same.
    assert "Hoa Ban" in incidents
    assert "Có 3 trường khớp “thcs”" in text_of(await chat.send("/status thcs"))  # TH&THCS counts as THCS
    assert "Không tìm thấy" in text_of(await chat.send("/status hoa ban"))


# ---- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("13/2026", "Chưa rõ tháng “13/2026”. Vui lòng nhập tháng và năm, ví dụ: /status 10/2026"),
        (
            "tháng mười ba",
            "Chưa rõ tháng “tháng mười ba”. Vui lòng nhập tháng và năm, ví dụ: /status 10/2026",
        ),
        ("0/2026", "Chưa rõ tháng “0/2026”"),
        ("tháng", "Chưa rõ tháng “tháng”"),
        ("2026", "Chưa rõ tháng “2026”"),
        ("12/2026", "Tháng 12/2026 chưa đến nên chưa có số liệu. Tháng này là 11/2026."),
        (
            "7/2025",
            "Tháng 07/2025 chưa có trường nào trong phạm vi đăng ký dùng bot. Trường đầu tiên đăng ký ngày "
            "01/08/2025; vui lòng chọn từ tháng 08/2025 trở đi.",
        ),
        (
            "Trường Xyz",
            "Không tìm thấy trường nào khớp “Trường Xyz” trong phạm vi phụ trách. Vui lòng nhập một phần tên trường "
            "(có dấu hoặc không dấu) hoặc mã trường.",
        ),
    ],
)
async def test_bad_input_gets_a_plain_answer(
    history: History, chat_as: Callable[[str], Chat], typed: str, answer: str
) -> None:
    replies = await chat_as("leader").send(f"/status {typed}")
    assert replies[0].text.startswith(answer) and not replies[0].photo_path


async def test_a_leader_with_no_schools_or_none_registered(app: App) -> None:
    with app.db.session() as s:
        seed_demo(s, app.clock.now())
        province = q.office_by_code(s, "SGD-DEMO")
        assert province is not None
        empty = Office(code="PGD-MOI", name="Phòng GD&ĐT huyện Mới", kind="district", parent_id=province.id)
        s.add(empty)
        s.flush()
        console_user(
            s, "new_leader", app.clock.now(), display_name="Ông Mới", role="leader", office_id=empty.id
        )
        principal = q.get_user(s, "console", "principal")
        assert principal is not None
        principal.role = None  # the demo district: schools, but nobody registered
        s.add(principal)
    nothing = await Chat(app, "new_leader").send("/status")
    assert nothing[0].text.startswith("Phạm vi phụ trách chưa có trường nào.")
    for command in ("/status", "/export", "/ranking"):
        unregistered = await Chat(app, "leader").send(command)
        if command == "/ranking":
            assert (
                unregistered[0].text == "Năm học 2026-2027 chưa có trường nào trong phạm vi đăng ký dùng bot."
            )
        else:
            assert unregistered[0].text.startswith(
                "Các trường trong phạm vi phụ trách (5 trường) chưa đăng ký dùng bot"
            )


# ---- one school ----------------------------------------------------------------------------------


async def test_one_school_by_name_without_accents(history: History, chat_as: Callable[[str], Chat]) -> None:
    text = text_of(await chat_as("leader").send("/status pu nhi"))
    assert text == (
        "🏫 Trường PTDTBT THCS Pú Nhi (THCS-PUNHI) · THCS\nPhòng GD&ĐT huyện Điện Biên Đông (demo)\n\n"
        "Đăng ký dùng bot từ ngày 01/08/2025.\nTài khoản của trường: Cô Lò Thị Lan.\n\n"
        "📝 Bài viết tháng, 12 tháng gần đây: 2 đúng hạn, 1 muộn, 8 chưa nộp.\n"
        "12/2025 ❌ · 01/2026 ❌ · 02/2026 ❌ · 03/2026 ❌ · 04/2026 ❌ · 05/2026 ❌ · 06/2026 ⏰ · 07/2026 ❌ · "
        "08/2026 ❌ · 09/2026 ✅ · 10/2026 ✅ · 11/2026 🕓\n"
        "✅ đúng hạn · ⏰ muộn · ❌ chưa nộp · 🕓 chưa đến hạn · ▫️ chưa đăng ký\n\n"
        "🏅 Đề xuất điển hình: 1 trong học kỳ này, 1 trong năm học.\n"
        f"• #{history.nominations['THCS-PUNHI']} N.V.A. (Học sinh) – Giới thiệu với báo chí – Chờ duyệt\n\n"
        "📊 Báo cáo định kỳ:\n"
        "• Báo cáo năm 2025 (hạn 01/12/2025): chưa nộp\n"
        "• Báo cáo 6 tháng 2026 (hạn 20/06/2026): nộp ngày 25/06/2026, muộn – Đã duyệt\n"
        "• Báo cáo năm 2026 (hạn 01/12/2026, còn 21 ngày): chưa nộp"
    )


async def test_a_school_name_or_code_that_looks_like_a_month_word_or_number(
    history: History, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    with demo.db.session() as s:
        district = q.office_by_code(s, "PGD-DEMO")
        assert district is not None
        add_school(s, "30123456", "Trường Tiểu học Thắng Lợi", "TH", district.id)
    chat = chat_as("leader")
    for typed in ("thắng lợi", "30123456"):
        text = text_of(await chat.send(f"/status {typed}"))
        assert text.startswith("🏫 Trường Tiểu học Thắng Lợi (30123456) · Tiểu học"), typed
        assert "Trường chưa đăng ký dùng bot." in text
    assert text_of(await chat.send("/status tháng chạp")).startswith("📊 Tình hình nộp – Tháng 12/2025")


async def test_a_school_by_code_and_a_choice_when_several_match(
    history: History, chat_as: Callable[[str], Chat]
) -> None:
    chat = chat_as("leader")
    by_code = text_of(await chat.send("/status th-thitran"))
    assert by_code.startswith("🏫 Trường Tiểu học Thị Trấn (TH-THITRAN) · Tiểu học")
    joined_late = text_of(await chat.send("/status THCS-TTDBD"))
    assert "08/2026 ▫️ · 09/2026 ❌ · 10/2026 ❌ · 11/2026 🕓" in joined_late
    assert "Báo cáo 6 tháng (hạn 20/06/2026)" not in joined_late  # due before it joined
    replies = await chat.send("/status thi tran")
    assert replies[0].text == "Có 2 trường khớp “thi tran”. Vui lòng chọn một trường:"
    assert [c.label for c in replies[0].flat_choices()] == [
        "Trường THCS Thị Trấn Điện Biên Đông",
        "Trường Tiểu học Thị Trấn",
    ]
    chosen = text_of(await chat.press("Tiểu học Thị Trấn"))
    assert chosen.startswith("🏫 Trường Tiểu học Thị Trấn (TH-THITRAN)")


# ---- ranking -------------------------------------------------------------------------------------


async def test_the_ranking_follows_the_stated_formula(
    history: History, chat_as: Callable[[str], Chat]
) -> None:
    text = text_of(await chat_as("leader").send("/ranking"))
    assert text == (
        "🏆 Xếp hạng truyền thông năm học 2026-2027\nPhòng GD&ĐT huyện Điện Biên Đông (demo)\n"
        "Điểm = 2 × tháng nộp bài đúng hạn + 1 × bài được duyệt + 1 × bài được đăng + 2 × đề xuất điển hình"
        " + 3 × báo cáo định kỳ đúng hạn\n"
        "Số liệu tính đến ngày 10/11/2026.\n\n"
        "1. Trường Mầm non Hoa Ban – 14 điểm (đúng hạn 3 tháng, 2 bài được duyệt, 1 bài được đăng, 1 đề xuất,"
        " 1 báo cáo đúng hạn)\n"
        "2. Trường PTDTBT THCS Pú Nhi – 9 điểm (đúng hạn 2 tháng, 2 bài được duyệt, 1 bài được đăng, 1 đề xuất,"
        " 0 báo cáo đúng hạn)\n"
        "3. Trường Tiểu học Thị Trấn – 3 điểm (đúng hạn 1 tháng, 1 bài được duyệt, 0 bài được đăng, 0 đề xuất,"
        " 0 báo cáo đúng hạn)\n"
        "4. Trường TH&THCS Na Mai (chưa đăng ký) – 0 điểm (đúng hạn 0 tháng, 0 bài được duyệt, 0 bài được đăng, 0 đề xuất,"
        " 0 báo cáo đúng hạn)\n"
        "4. Trường THCS Thị Trấn Điện Biên Đông – 0 điểm (đúng hạn 0 tháng, 0 bài được duyệt, 0 bài được đăng,"
        " 0 đề xuất, 0 báo cáo đúng hạn)\n"
        "Chưa đăng ký dùng bot: 1/5 trường (tính là chưa nộp, 0 điểm)."
    )


async def test_a_past_school_year_is_ranked_to_its_end(
    history: History, chat_as: Callable[[str], Chat]
) -> None:
    text = text_of(await chat_as("leader").send("/ranking 2025-2026"))
    assert "Số liệu tính đến ngày 31/08/2026." in text
    assert "1. Trường Mầm non Hoa Ban – 3 điểm" in text  # the six-month report, on time
    assert "2. Trường PTDTBT THCS Pú Nhi – 2 điểm" in text  # a nomination; its June article was late


async def test_the_weights_come_from_the_settings(demo: App, tmp_path: Path) -> None:
    settings = load_settings(
        None,
        database_url=demo.settings.database_url,
        media_dir=str(tmp_path / "media2"),
        ranking={
            "article_on_time": 1,
            "article_approved": 0,
            "article_published": 0,
            "nomination": 5.5,
            "report_on_time": 0,
        },
    )
    seed_history(demo)
    with open_app(settings, demo.clock) as other:
        text = text_of(await Chat(other, "leader").send("/ranking 2026-27"))
    assert "Điểm = 1 × tháng nộp bài đúng hạn + 5.5 × đề xuất điển hình\n" in text
    assert (
        "1. Trường Mầm non Hoa Ban – 8.5 điểm" in text and "2. Trường PTDTBT THCS Pú Nhi – 7.5 điểm" in text
    )


@pytest.mark.parametrize(
    ("typed", "answer"),
    [
        ("năm nay", "Chưa rõ năm học “năm nay”. Vui lòng nhập theo dạng: /ranking 2025-2026"),
        ("2025-2027", "Chưa rõ năm học “2025-2027”."),
        ("2027-2028", "Năm học 2027-2028 chưa bắt đầu. Năm học hiện tại là 2026-2027."),
        ("2023-2024", "Năm học 2023-2024 chưa có trường nào trong phạm vi đăng ký dùng bot."),
    ],
)
async def test_bad_school_years(
    history: History, chat_as: Callable[[str], Chat], typed: str, answer: str
) -> None:
    replies = await chat_as("leader").send(f"/ranking {typed}")
    assert replies[0].text.startswith(answer)


# ---- Excel ---------------------------------------------------------------------------------------


async def test_the_workbook_has_three_sheets_with_every_cell(
    history: History, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    with demo.db.session() as s:
        district = q.office_by_code(s, "PGD-DEMO")
        assert district is not None
        add_school(s, "TEST-EQ", '=HYPERLINK("http://x") Trường thử', "TH", district.id)
    replies = await chat_as("leader").send("/export 10/2026")
    assert replies[0].text == (
        "📥 Tệp Excel tình hình nộp tháng 10/2026, 6 trường: trang theo trường, trang năm học 2026-2027, "
        "trang đề xuất điển hình, trang sự cố, một trang cho mỗi kỳ báo cáo định kỳ và trang Đăng ký (ai đã dùng bot, mã còn hiệu lực)."
    )
    path = Path(replies[0].file_path)
    assert path.name == "TinhHinhNop_PGD-DEMO_2026-10.xlsx"
    book = load_workbook(path)
    assert book.sheetnames == [
        "Tháng 10-2026",
        "Năm học 2026-2027",
        "Đề xuất điển hình",
        "Sự cố",
        "Báo cáo năm 2026",
        "Báo cáo 6 tháng 2027",
        "Đăng ký",
    ]
    month, year, nominations = (book[n] for n in book.sheetnames[:3])
    for ws in book.worksheets:
        assert ws.freeze_panes == "A3"
        for row in ws.iter_rows():
            for cell in row:
                assert cell.data_type != "f", cell.coordinate
        check_widths(ws)

    assert month["A1"].value.startswith(
        "Tình hình nộp bài viết tháng 10/2026 – Phòng GD&ĐT huyện Điện Biên Đông"
    )
    assert [c.value for c in month[2]] == [
        "STT",
        "Mã trường",
        "Tên trường",
        "Cấp học",
        "Đơn vị quản lý",
        "Đăng ký dùng bot",
        "Tình trạng",
        "Ngày nộp",
        "Số bài",
        "Thẩm định",
        "Đã đăng",
        "Người gửi",
    ]
    rows = {r[1]: r for r in month.iter_rows(min_row=3, values_only=True)}
    assert rows["MN-HOABAN"][5:] == (
        datetime(2025, 8, 1),
        "Đúng hạn",
        datetime(2026, 10, 10),
        1,
        "Đã đăng",
        "Có",
        "p-hoaban",  # who sent it: a principal without a profile, by the platform name
    )
    assert rows["THCS-PUNHI"][6:] == (
        "Đúng hạn",
        datetime(2026, 10, 5),
        2,
        "Đã duyệt",
        "Không",
        "Cô Lò Thị Lan",
    )
    assert rows["TH-THITRAN"][6:] == ("Nộp muộn", datetime(2026, 10, 20), 1, "Đã duyệt", "Không", "p-thitran")
    assert rows["THCS-TTDBD"][5:] == (datetime(2026, 9, 20), "Chưa nộp", None, 0, None, None, None)
    assert rows["THTHCS-NAMAI"][5:] == (None, "Chưa đăng ký", None, 0, None, None, None)
    assert rows["TEST-EQ"][2] == '=HYPERLINK("http://x") Trường thử'
    assert "THCS-B1" not in rows
    date_cell = next(c for c in month["F"][2:] if c.value is not None)
    assert date_cell.number_format == "DD/MM/YYYY"

    assert "Điểm = 2 × tháng nộp bài đúng hạn" in year["A1"].value
    ranked = [r for r in year.iter_rows(min_row=3, values_only=True)]
    assert [(r[0], r[1], r[13]) for r in ranked[:3]] == [
        (1, "MN-HOABAN", 14),
        (2, "THCS-PUNHI", 9),
        (3, "TH-THITRAN", 3),
    ]
    by_code = {r[1]: r for r in ranked}
    assert by_code["TH-THITRAN"][6:13] == (1, 1, 0, 1, 0, 0, 0)  # on time, late, missing, approved...
    assert by_code["THCS-TTDBD"][6:9] == (0, 0, 2)  # September and October owed, neither sent

    noms = list(nominations.iter_rows(min_row=3, values_only=True))
    assert [(r[3], r[6], r[10], r[11]) for r in noms] == [
        ("Trường PTDTBT THCS Pú Nhi", "N.V.A.", "Không", "Em N.V.A. cứu bạn đuối nước"),  # consent.py
        ("Trường Mầm non Hoa Ban", "Trần Thị Bích", "Có", "Cô Bích dạy chữ cho trẻ vùng cao"),
    ]
    assert noms[0][1] == datetime(2026, 10, 2) and noms[0][2] == "I"


async def test_the_workbook_has_a_sheet_per_report_deadline_with_every_school(
    history: History, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    answers = {
        "which": "6thang-2026",
        "articles_sent": 4,
        "articles_on_time": 3,
        "articles_approved": 2,
        "articles_published": 1,
        "nominations_press": 1,
        "nominations_commendation": 0,
        "incidents": 0,
        "highlights": "Ngày hội đọc sách được báo tỉnh đưa tin",
        "difficulties": "Thiếu máy ảnh",
        "document": {"link": "https://drive.example.vn/bao-cao-6-thang.pdf"},
    }
    with demo.db.session() as s:
        row = s.get(Submission, next(iter(submissions_of(s, history.schools["MN-HOABAN"], "6thang-2026"))))
        assert row is not None
        row.answers = answers
        s.add(row)
    replies = await chat_as("leader").send("/export 06/2026")
    book = load_workbook(Path(replies[0].file_path))
    assert book.sheetnames[4:] == ["Báo cáo năm 2025", "Báo cáo 6 tháng 2026", "Đăng ký"]
    sheet = book["Báo cáo 6 tháng 2026"]
    assert sheet["A1"].value.startswith(
        "Báo cáo 6 tháng 2026 – Phòng GD&ĐT huyện Điện Biên Đông (demo) (hạn 20/06/2026"
    )
    assert [c.value for c in sheet[2]][6:] == [
        "Tình trạng",
        "Ngày nộp",
        "Bài viết đã gửi",
        "Bài đúng hạn",
        "Bài đã duyệt",
        "Bài đã đăng",
        "Đề xuất giới thiệu báo chí",
        "Đề xuất khen thưởng",
        "Sự cố đã báo",
        "Điểm nổi bật",
        "Khó khăn, đề xuất",
        "Báo cáo có chữ ký",
        "Thẩm định",
    ]
    rows = {r[1]: r for r in sheet.iter_rows(min_row=3, values_only=True)}
    assert set(rows) == {"MN-HOABAN", "TH-THITRAN", "THCS-PUNHI", "THCS-TTDBD", "THTHCS-NAMAI"}
    assert rows["MN-HOABAN"][6:] == (
        "Đúng hạn",
        datetime(2026, 6, 10),
        4,
        3,
        2,
        1,
        1,
        0,
        0,
        "Ngày hội đọc sách được báo tỉnh đưa tin",
        "Thiếu máy ảnh",
        "https://drive.example.vn/bao-cao-6-thang.pdf",
        "Chờ duyệt",
    )
    link = next(c for c in sheet["R"] if c.value == "https://drive.example.vn/bao-cao-6-thang.pdf")
    assert link.hyperlink.target == "https://drive.example.vn/bao-cao-6-thang.pdf"
    assert rows["TH-THITRAN"][6:8] == ("Nộp muộn", datetime(2026, 6, 28))
    assert rows["THCS-PUNHI"][6] == "Nộp muộn" and rows["THCS-PUNHI"][-1] == "Đã duyệt"
    # Pú Nhi had joined by the yearly report's deadline of 2025 and sent nothing: missing.
    yearly = {r[1]: r for r in book["Báo cáo năm 2025"].iter_rows(min_row=3, values_only=True)}
    assert yearly["THCS-PUNHI"][6:8] == ("Chưa nộp", None)
    # Thị Trấn Điện Biên Đông joined in September 2026, after June's deadline; Na Mai never did.
    assert rows["THCS-TTDBD"][6:8] == ("Chưa đăng ký", None)
    assert rows["THTHCS-NAMAI"][6:] == ("Chưa đăng ký", *([None] * 12))


def submissions_of(s: Session, school_id: int, period: str) -> list[int | None]:
    from sqlmodel import select

    stmt = select(col(Submission.id)).where(Submission.school_id == school_id, Submission.period == period)
    return list(s.exec(stmt))


def check_widths(ws: Worksheet) -> None:
    """Every column is as wide as its longest text (up to the cap, where the text wraps)."""
    for column in ws.iter_cols(min_row=2):
        longest = max(
            len(str(c.value)) if not isinstance(c.value, datetime) else 10
            for c in column
            if c.value is not None
        )
        first = column[0]
        assert isinstance(first, Cell)  # a merged cell has no column letter
        width = ws.column_dimensions[first.column_letter].width
        assert width >= min(MAX_WIDTH, longest), (ws.title, first.column_letter)


async def test_a_school_that_looks_like_a_formula_is_text_in_the_workbook(
    history: History, demo: App, chat_as: Callable[[str], Chat]
) -> None:
    names = ("+84 Trường thử", "-Trường thử", "@Trường thử", "=1+1 Trường thử")
    with demo.db.session() as s:
        district = q.office_by_code(s, "PGD-DEMO")
        assert district is not None
        for n, name in enumerate(names):
            add_school(s, f"TEST-F{n}", name, "TH", district.id)
    replies = await chat_as("leader").send("/export 10/2026")
    month = load_workbook(Path(replies[0].file_path)).worksheets[0]
    cells = {row[1].value: row[2] for row in month.iter_rows(min_row=3)}
    for n, name in enumerate(names):
        cell = cells[f"TEST-F{n}"]
        assert cell.value == name and cell.data_type == "s" and cell.quotePrefix, name


async def test_the_excel_button_and_a_bad_month(history: History, chat_as: Callable[[str], Chat]) -> None:
    chat = chat_as("leader")
    await chat.send("/status")
    replies = await chat.press("Tải Excel")
    assert Path(replies[0].file_path).name == "TinhHinhNop_PGD-DEMO_2026-11.xlsx"
    bad = await chat.send("/export tháng mười ba")
    assert bad[0].text.startswith("Chưa rõ tháng “tháng mười ba”. Vui lòng nhập tháng và năm, ví dụ: /export")
    future = await chat.send("/export 01/2027")
    assert (
        future[0].text == "Tháng 01/2027 chưa đến nên chưa có số liệu. Tháng này là 11/2026."
        and not future[0].file_path
    )


# ---- the charts themselves -------------------------------------------------------------------------

VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxy áàảãạấầẩẫậắằẳẵặéèẻẽẹếềểễệíìỉĩịóòỏõọốồổỗộớờởỡợúùủũụứừửữựýỳỷỹỵ"


def test_every_vietnamese_letter_renders_without_a_missing_glyph(tmp_path: Path) -> None:
    letters = VIETNAMESE + VIETNAMESE.upper()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts.rate_chart(
            tmp_path / "a.png",
            f"Tỷ lệ {letters}",
            "% trường đã nộp",
            ["06/2026", "07/2026"],
            [charts.Series(letters[:40], (50.0, None)), charts.Series("Tiểu học", (None, 75.0))],
        )
        charts.school_chart(
            tmp_path / "b.png",
            "Bài viết tháng, theo trường",
            "Số tháng",
            [letters[:50], "Trường PTDTBT THCS Pú Nhi"],
            [(1, 2, 2, 0, 1), (6, 0, 0, 0, 0)],
            ("Đúng hạn", "Nộp muộn", "Chưa nộp", "Chưa đến hạn", "Chưa đăng ký"),
            6,
        )
    assert [str(w.message) for w in caught] == []
    assert (tmp_path / "a.png").stat().st_size > 5_000 and (tmp_path / "b.png").stat().st_size > 5_000


def test_a_missing_glyph_would_be_caught(tmp_path: Path) -> None:
    """The check above can fail: a letter the font lacks warns, and the warning is seen."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        charts.rate_chart(tmp_path / "c.png", "✅", "%", ["1"], [charts.Series("x", (1.0,))])
    assert any("missing from font" in str(w.message) for w in caught)


def chat_incoming(user: str, choice: str, update: str) -> Incoming:
    from handlers.types import Kind

    return Incoming("console", user, user, Kind.CHOICE, choice=choice, update_id=update)


# ---- the same on PostgreSQL ------------------------------------------------------------------------


async def test_the_same_figures_on_postgresql(pg_url: str, clock: FrozenClock, tmp_path: Path) -> None:
    """Every statement is portable: summary, one school, ranking and workbook on a real local server."""
    settings = load_settings(None, database_url=pg_url, media_dir=str(tmp_path / "media"))
    with open_app(settings, clock, upgrade=False) as app:
        migrate.upgrade(app.db)
        with app.db.session() as s:
            seed_demo(s, app.clock.now())
        history = seed_history(app)
        chat = Chat(app, "leader")
        text = text_of(await chat.send("/status 10/2026"))
        assert (
            "📝 Bài viết tháng: 3/5 trường đã nộp (60%)\n• Đúng hạn: 2 · Nộp muộn: 1 · Chưa nộp: 1 · Chưa đăng ký: 1"
            in text
        )
        assert "• THCS: 1/2 – đúng hạn 1, muộn 0, chưa nộp 1, chưa đăng ký 0, đã duyệt 1, đã đăng 0" in text
        now = await chat.send("/status")
        assert (
            "📝 Bài viết tháng: 1/5 trường đã nộp (20%)" in text_of(now) and Path(now[0].photo_path).is_file()
        )
        assert "2 đúng hạn, 1 muộn, 8 chưa nộp" in text_of(await chat.send("/status Pú Nhi"))
        ranking = text_of(await chat.send("/ranking"))
        assert (
            "1. Trường Mầm non Hoa Ban – 14 điểm" in ranking
            and "2. Trường PTDTBT THCS Pú Nhi – 9 điểm" in ranking
        )
        exported = await chat.send("/export 10/2026")
        book = load_workbook(exported[0].file_path)
        rows = {r[1]: r for r in book.worksheets[0].iter_rows(min_row=3, values_only=True)}
        assert rows["TH-THITRAN"][6:] == (
            "Nộp muộn",
            datetime(2026, 10, 20),
            1,
            "Đã duyệt",
            "Không",
            "p-thitran",
        )
        assert history.schools["THCS-B1"] and "THCS-B1" not in rows
