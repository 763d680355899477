"""One question, one number: a district's month as /status, the chart, /export, /digest, the escalation and
/ranking count it, each read the way its reader gets it (the chat's text, the chart's data, the workbook
opened with openpyxl, the outbox row's text), every one out of every school of the district.

The demo district, two schools more and the clock the morning after November's deadline:

    on time      Trường Mầm non Hoa Ban              (registered)
    late         Trường Tiểu học Thị Trấn            (registered, sent this morning)
    missing      Trường PTDTBT THCS Pú Nhi           (registered: the demo principal)
    missing      Trường Tiểu học Bản Phủ             (registered)
    unregistered Trường TH&THCS Na Mai, Trường THCS Thị Trấn Điện Biên Đông, Trường Mầm non Sơn La
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook

from bot.app import App
from handlers import reminders
from handlers.calendar import FrozenClock, Period
from handlers.leaders import summary
from handlers.leaders.reader import office_where
from handlers.months import MonthState
from handlers.types import Context
from storage import queries as q
from storage.models import Submission
from tests.conftest import Chat
from tests.handlers.helpers import add_principal, add_school, flushed

TZ = ZoneInfo("Asia/Ho_Chi_Minh")
MORNING_AFTER = datetime(2026, 11, 16, 8, 0, tzinfo=TZ)  # the escalation's hour, the day after the deadline
JOINED = datetime(2026, 9, 1, 9, tzinfo=TZ)
NOVEMBER = Period(2026, 11)

ON_TIME = {"Trường Mầm non Hoa Ban"}
LATE = {"Trường Tiểu học Thị Trấn"}
MISSING = {"Trường PTDTBT THCS Pú Nhi", "Trường Tiểu học Bản Phủ"}
UNREGISTERED = {"Trường TH&THCS Na Mai", "Trường THCS Thị Trấn Điện Biên Đông", "Trường Mầm non Sơn La"}
SCHOOLS = 7
# (schools, sent, on time, late, not sent though registered, not registered)
EXPECTED = (SCHOOLS, 2, 1, 1, 2, 3)


def seed(app: App) -> None:
    with app.db.session() as s:
        office = q.office_by_code(s, "PGD-DEMO")
        assert office is not None and office.id is not None
        banphu = add_school(s, "TH-BANPHU", "Trường Tiểu học Bản Phủ", "TH", office.id)
        add_school(s, "MN-SONLA", "Trường Mầm non Sơn La", "MN", office.id)
        add_principal(s, banphu, "p-banphu", JOINED)
        for code, late, when in (
            ("MN-HOABAN", False, datetime(2026, 11, 3, 10, tzinfo=TZ)),
            ("TH-THITRAN", True, datetime(2026, 11, 16, 7, tzinfo=TZ)),
        ):
            school = q.school_by_code(s, code)
            assert school is not None and school.id is not None
            author = add_principal(s, school, f"p-{code.lower()}", JOINED)
            flushed(
                s,
                Submission(
                    kind="article",
                    school_id=school.id,
                    user_id=author.id or 0,
                    period=NOVEMBER.key,
                    status="submitted",
                    answers={"title": "Ngày hội đọc sách"},
                    token=secrets.token_hex(8),
                    late=late,
                    submitted_at=when,
                    created_at=when,
                    updated_at=when,
                ),
            )


def numbers(pattern: str, text: str) -> tuple[int, ...]:
    found = re.search(pattern, text)
    assert found, (pattern, text)
    return tuple(int(n) for n in found.groups())


def names_under(text: str, heading: str) -> set[str]:
    """The names after a heading line "…(n):", one "• name" a line, up to the next line without a bullet."""
    lines = text.splitlines()
    start = next(n for n, line in enumerate(lines) if line.strip().startswith(heading))
    out = set()
    for line in lines[start + 1 :]:
        if not line.strip().startswith("•"):
            break
        out.add(line.strip()[2:])
    return out


async def test_every_reader_gets_the_same_numbers_out_of_every_school(
    demo: App, chat_as: Callable[[str], Chat], clock: FrozenClock
) -> None:
    clock.set(MORNING_AFTER)
    seed(demo)
    leader, officer = chat_as("leader"), chat_as("officer")

    # /status: the text a leader forwards.
    status = (await leader.send("/status"))[0].text
    sent, schools = numbers(r"Bài viết tháng: (\d+)/(\d+) trường đã nộp", status)
    on_time, late, missing, unregistered = numbers(
        r"Đúng hạn: (\d+) · Nộp muộn: (\d+) · Chưa nộp: (\d+) · Chưa đăng ký: (\d+)", status
    )
    from_status = (schools, sent, on_time, late, missing, unregistered)
    missing_line = re.search(r"Chưa nộp \(\d+\): (.*)", status)
    unregistered_line = re.search(r"Chưa đăng ký \(\d+\): (.*)", status)
    assert missing_line is not None and unregistered_line is not None
    status_missing = set(missing_line[1].split("; "))
    status_unregistered = set(unregistered_line[1].split("; "))
    assert "Tất cả các trường đã nộp" not in status

    # The chart: the data it is drawn from (a small office: each school's months), November's column.
    with demo.db.session() as s:
        user = q.get_user(s, "console", "leader")
    t = demo.catalog.translator("vi", "console")
    ctx = Context(demo.db, demo.clock, t, demo.settings, user, "console", demo.catalog)
    where = office_where(demo.db, "PGD-DEMO")
    assert where is not None
    months = [NOVEMBER.shift(-n) for n in range(summary.MONTHS_CHARTED - 1, -1, -1)]
    rows = summary.school_states(ctx, months, summary.gather(ctx, where, NOVEMBER))
    column = [states[-1] for _, states in rows]
    from_chart = (
        len(rows),
        sum(1 for x in column if x.sent),
        column.count(MonthState.ON_TIME),
        column.count(MonthState.LATE),
        column.count(MonthState.MISSING) + column.count(MonthState.PENDING),
        column.count(MonthState.NOT_JOINED),
    )
    assert MonthState.NOT_JOINED in summary.CHARTED  # its own colour and legend entry
    assert {name for name, states in rows if states[-1] is MonthState.NOT_JOINED} == UNREGISTERED

    # /export: the workbook, opened as the office opens it.
    exported = await leader.send("/export")
    sheet = load_workbook(Path(exported[0].file_path)).worksheets[0]
    header = [c.value for c in sheet[2]]
    state_at, name_at = header.index("Tình trạng"), header.index("Tên trường")
    states = [(row[name_at], row[state_at]) for row in sheet.iter_rows(min_row=3, values_only=True)]
    by_state = [s for _, s in states]
    from_export = (
        len(states),
        by_state.count("Đúng hạn") + by_state.count("Nộp muộn"),
        by_state.count("Đúng hạn"),
        by_state.count("Nộp muộn"),
        by_state.count("Chưa nộp"),
        by_state.count("Chưa đăng ký"),
    )
    export_unregistered = {name for name, state in states if state == "Chưa đăng ký"}

    # /digest: the officer's, on demand.
    digest = (await officer.send("/digest"))[0].text
    sent, schools, missing, unregistered = numbers(
        r"Bài viết tháng 11/2026 \(hạn 15/11/2026, quá hạn 1 ngày\): (\d+)/(\d+) trường đã nộp; "
        r"chưa nộp (\d+), chưa đăng ký (\d+)\.",
        digest,
    )
    article = digest.split("Bài viết tháng 11/2026")[1].split("📝")[0]
    digest_missing = set(", ".join(re.findall(r"chưa nộp \(\d+\): ([^;\n]*)", article)).split(", "))
    digest_unregistered = set(", ".join(re.findall(r"chưa đăng ký \(\d+\): ([^;\n]*)", article)).split(", "))
    from_digest = (schools, sent, None, None, missing, unregistered)

    # The escalation: what the clock would send the leader and the officer this morning.
    plan = reminders.plan(demo.db, demo.clock, demo.settings, demo.catalog, MORNING_AFTER)
    escalations = {i.user.external_id: i.reply.text for i in plan.items if i.kind == "article-late"}
    assert set(escalations) == {"officer", "leader"}
    for text in escalations.values():
        sent, schools, missing, unregistered = numbers(
            r"\(hạn 15/11/2026, đã qua\): (\d+)/(\d+) trường đã nộp; chưa nộp (\d+), chưa đăng ký (\d+)\.",
            text,
        )
        assert (schools, sent, missing, unregistered) == (SCHOOLS, 2, 2, 3)
        assert names_under(text, "Chưa nộp (") == MISSING
        assert names_under(text, "Chưa đăng ký dùng bot (") == UNREGISTERED

    # /ranking: every school ranked; the months on time this school year are November's alone.
    ranking = (await leader.send("/ranking"))[0].text
    ranked = [line for line in ranking.splitlines() if re.match(r"\d+\. ", line)]
    on_time_months = sum(int(n) for n in re.findall(r"đúng hạn (\d+) tháng", ranking))
    marked = [line for line in ranked if "(chưa đăng ký)" in line]
    (said_unregistered, said_schools) = numbers(r"Chưa đăng ký dùng bot: (\d+)/(\d+) trường", ranking)
    assert said_schools == len(ranked) == SCHOOLS
    assert len(marked) == said_unregistered

    assert from_status == EXPECTED
    assert from_chart == EXPECTED
    assert from_export == EXPECTED
    assert from_digest == (SCHOOLS, 2, None, None, 2, 3)
    assert (len(ranked), on_time_months, len(marked)) == (SCHOOLS, EXPECTED[2], EXPECTED[5])
    assert status_missing == digest_missing == MISSING
    assert status_unregistered == digest_unregistered == export_unregistered == UNREGISTERED
    assert {line.split(". ", 1)[1].split(" (chưa đăng ký)")[0] for line in marked} == UNREGISTERED
