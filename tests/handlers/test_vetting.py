"""Vetting through the console (issue #14, items 1–3): a submission read whole, what changed since the
return, its life from draft to published by buttons, /published, and /find without accents."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from bot.app import App
from handlers.types import Incoming, Kind, Reply
from handlers.wordiff import CHANGES
from storage import queries as q
from storage.models import ReviewAction, School, Submission
from tests.conftest import Chat
from tests.handlers.article_helpers import photo_files, write_article
from tests.handlers.helpers import add_district, add_user

LINK = "https://pgd.edu.vn/tin-tuc/ngay-hoi-doc-sach"


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, Path]:
    return photo_files(tmp_path)


def paragraphs(count: int, size: int = 1000) -> list[str]:
    """`count` distinct paragraphs of about `size` characters, each starting with its number."""
    sentence = "Học sinh các lớp thay nhau kể lại câu chuyện đã đọc trước toàn trường. "
    return [
        f"Đoạn {n}: " + (sentence * (size // len(sentence) + 1))[:size].rstrip() for n in range(1, count + 1)
    ]


async def send_article(principal: Chat, files: dict[str, Path], body: list[str]) -> None:
    """The whole article with `body` as its paragraphs, sent."""
    await write_article(principal, files, stop_before="body")
    for paragraph in body:  # the first answers the step; the others join it on the review screen
        await principal.send(paragraph)
    await principal.press("Gửi")


def press(user: str, value: str, n: str) -> Incoming:
    return Incoming("console", user, user, Kind.CHOICE, choice=value, update_id=n)


def the_article(app: App) -> Submission:
    with app.db.session() as s:
        return s.exec(select(Submission).where(Submission.kind == "article")).one()


def text_of(replies: list[Reply]) -> str:
    return "\n".join(r.text for r in replies)


async def test_a_long_article_is_read_whole_and_in_order(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    body = paragraphs(6)
    await send_article(chat_as("principal"), files, body)
    assert len("\n\n".join(body)) > 6000
    officer = chat_as("officer")
    await officer.send("/review")
    opened = await officer.press("Mở #1")
    text = opened[0].text
    places = [text.index(p) for p in body]  # every paragraph whole…
    assert places == sorted(places)  # …and in order
    assert (
        text.index("Sự việc, người tham gia: Học sinh thi kể chuyện") < places[0]
    )  # the 5W1H facts come first
    assert "ký tự)" not in text  # no preview of the body any more
    assert [a.caption for a in opened[0].attachments] == [
        "Ảnh toàn cảnh 1",
        "Ảnh người phát biểu 1",
        "Ảnh cận cảnh 1",
    ]
    assert "/media/" not in text and "console:" not in text  # no server path, no platform reference
    assert "Duyệt" in opened[-1].flat_choices()[0].label  # the actions come last, after the photos


async def test_the_diff_after_a_return_names_the_words_changed(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path], tmp_path: Path
) -> None:
    principal = chat_as("principal")
    await send_article(principal, files, ["Sáng 5/11, trường tổ chức ngày hội đọc sách cho học sinh."])
    officer = chat_as("officer")
    await demo.dispatcher.handle(press("officer", "rv:r:1:1", "r"))
    await officer.send("Nội dung chưa chính xác")
    await officer.press("Gửi")

    await principal.send("/menu")  # the kept notice comes first, with its edit button
    await principal.press("Sửa ngay")
    await principal.press("Sửa: Thời gian, địa điểm, sự việc")
    await principal.press("Sửa: Sự việc")
    await principal.send("Học sinh thi đọc diễn cảm theo sách; toàn trường, 320 học sinh")
    await principal.press("Sửa: Ảnh, video")
    await principal.press("Sửa: Ảnh toàn cảnh")
    await principal.send(f"/file {files['extra']}")
    await principal.press("Sửa: Nội dung")  # the section
    await principal.press("Sửa: Nội dung")  # the text in it
    await principal.send("Có 12 giải thưởng.")  # added as a paragraph
    await principal.press("Gửi")
    assert the_article(demo).version == 2

    await officer.send("/review")
    opened = await officer.press("Mở #1")
    text = opened[0].text
    assert "Đã sửa so với bản đã trả lại: Ảnh toàn cảnh, Sự việc, người tham gia, Nội dung" in text
    assert (
        "Sự việc, người tham gia (bỏ 2 từ, thêm 3 từ): Học sinh thi [-kể chuyện-] [+đọc diễn cảm+] theo sách"
        in text
    )
    assert "Nội dung (thêm 4 từ): … đọc sách cho học sinh. [+Có 12 giải thưởng.+]" in text
    assert "Ảnh, tệp đã thay: Ảnh toàn cảnh" in text
    assert "[-…-] là chữ đã bỏ" in text
    assert "Ảnh người phát biểu" not in text.split("Ảnh, tệp đã thay:")[1].split("\n")[0]


async def test_a_text_grown_from_50_to_5000_words_gives_a_bounded_diff(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    principal = chat_as("principal")
    fifty = " ".join(f"mở{n}" for n in range(50))
    await send_article(principal, files, [fifty])
    officer = chat_as("officer")
    await demo.dispatcher.handle(press("officer", "rv:r:1:1", "r"))
    await officer.send("Cần viết dài hơn")
    await officer.press("Gửi")
    await principal.send("/menu")
    await principal.press("Sửa ngay")
    await principal.press("Sửa: Nội dung")  # the section
    await principal.press("Sửa: Nội dung")  # the text in it
    for _ in range(5):  # 4,950 more words, in five messages, each added
        await principal.send(" ".join(("em", "đọc", "sách", "hay")[n % 4] for n in range(990)))
    await principal.press("Gửi")

    await officer.send("/review")
    opened = await officer.press("Mở #1")
    line = next(x for x in opened[0].text.split("\n") if x.startswith("✏️ Nội dung"))
    assert "(thêm 4950 từ)" in line and "(…4934 từ…)" in line
    assert len(line) < 600  # the diff is a line, not the 5,000 words again
    body = the_article(demo).answers["body"]
    assert len(body.split()) == 5000 and body in opened[0].text  # the whole text is still there below it


async def test_many_small_changes_are_counted_past_the_first_ones(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    principal = chat_as("principal")
    await send_article(principal, files, [" ".join(f"w{n}" for n in range(400))])
    with demo.db.session() as s:  # another version, every 20th word changed (as a resubmission stores it)
        row = s.exec(select(Submission)).one()
        assert row.id is not None
        q.review(s, row.id, 1, row.user_id, "return", demo.clock.now(), ("submitted",), "returned", "x")
        changed = " ".join(f"z{n}" if n % 20 == 0 else f"w{n}" for n in range(400))
        q.resubmit(s, row.id, 1, {**row.answers, "body": changed}, demo.clock.now(), row.user_id, None)
    officer = chat_as("officer")
    await officer.send("/review")
    opened = await officer.press("Mở #1")
    line = next(x for x in opened[0].text.split("\n") if x.startswith("✏️ Nội dung"))
    assert f"và {20 - CHANGES} chỗ sửa khác" in line and "[-w0-] [+z0+]" in line


async def test_from_draft_to_published_by_buttons(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    principal = chat_as("principal")
    await send_article(principal, files, ["Sáng 5/11, trường tổ chức ngày hội đọc sách."])
    officer = chat_as("officer")
    await officer.send("/menu")
    await officer.press("Thẩm định")
    await officer.press("Mở #1")
    await officer.press("Trả lại")
    await officer.press("Ảnh chưa đạt")
    await officer.press("Gửi")

    await principal.send("/menu")
    await principal.press("Sửa ngay")
    await principal.press("Sửa: Chủ đề, tiêu đề")
    await principal.press("Sửa: Tiêu đề")
    await principal.send("Ngày hội đọc sách 2026")
    await principal.press("Gửi")

    await officer.press("Mục chờ thẩm định")  # the button under the return's confirmation
    await officer.press("Mở #1")
    approved = await officer.press("Duyệt")
    assert "Đã duyệt #1" in approved[0].text
    await officer.press("Đã đăng #1")  # the button under the approval
    await officer.send(LINK)
    done = await officer.press("Gửi")
    assert "đã đăng" in done[0].text and the_article(demo).status == "published"
    opened = await officer.press("Mở #1")
    life = opened[-1].text
    steps = [
        "Bắt đầu soạn: Cô Lò Thị Lan",
        "Gửi, chờ duyệt: Cô Lò Thị Lan",
        "Trả lại bởi Anh Nguyễn Văn Minh",
        "Gửi lại (bản 2), chờ duyệt: Cô Lò Thị Lan",
        "Duyệt bởi Anh Nguyễn Văn Minh",
        f"Đăng bởi Anh Nguyễn Văn Minh lúc 09:00 10/11/2026: {LINK}",
    ]
    places = [life.index(step) for step in steps]
    assert places == sorted(places) and "hiện tại: Đã đăng" in life
    assert not opened[-1].choices  # nothing left to do

    ranking = text_of(await officer.send("/ranking"))
    assert "1 bài được đăng" in ranking  # the ranking's "published" weight now counts


async def test_published_lists_what_waits_and_pages(demo: App, chat_as: Callable[[str], Chat]) -> None:
    seed_articles(demo, 12, status="approved")
    officer = chat_as("officer")
    await officer.send("/menu")
    first = await officer.press("Chờ ghi nhận đã đăng")
    assert "12 bài đã duyệt, chưa ghi nhận đăng (1–10)" in first[0].text
    assert "Bài số 1 ·" in first[0].text and "Bài số 11" not in first[0].text  # approved longest ago first
    second = await officer.press("Xem tiếp (2 mục)")
    assert "(11–12)" in second[0].text and "Bài số 12" in second[0].text
    await officer.press("Đã đăng #12")
    await officer.send("https://pgd.edu.vn/bai-12")
    await officer.press("Gửi")
    again = await officer.send("/published")
    assert "11 bài đã duyệt" in again[0].text
    chat_as("leader")
    refused = await demo.dispatcher.handle(press("leader", "pb:0", "lp"))
    assert "không dành cho" in refused[0].text


async def test_published_links_that_are_refused(demo: App, chat_as: Callable[[str], Chat]) -> None:
    seed_articles(demo, 2, status="approved")
    officer = chat_as("officer")
    await officer.send("/published")
    await officer.press("Đã đăng #1")
    for bad, said in (
        ("ftp://pgd.edu.vn/bai-1", "Đường link chưa đúng"),
        ("pgd.edu.vn/bai-1", "Đường link chưa đúng"),
        ("https://pgd.edu.vn/" + "a" * 2000, "2000"),
    ):
        got = await officer.send(bad)
        assert said in got[0].text, bad
    await officer.send("https://pgd.edu.vn/bai-1")
    await officer.press("Gửi")
    assert published_links(demo) == {1: "https://pgd.edu.vn/bai-1"}

    again = await demo.dispatcher.handle(press("officer", "rv:p:1:1", "twice"))  # an old button
    assert "đã được ghi nhận là đã đăng: https://pgd.edu.vn/bai-1" in again[0].text
    await officer.send("/published")
    await officer.press("Đã đăng #2")
    await officer.send("https://pgd.edu.vn/bai-1")  # the first article's link, pasted again
    taken = await officer.press("Gửi")
    assert "đã được ghi cho bài #1" in taken[0].text
    assert published_links(demo) == {1: "https://pgd.edu.vn/bai-1"}
    await officer.press("Nhập lại đường link cho #2")
    await officer.send("https://pgd.edu.vn/bai-2")
    await officer.press("Gửi")
    assert published_links(demo) == {1: "https://pgd.edu.vn/bai-1", 2: "https://pgd.edu.vn/bai-2"}


async def test_nothing_outside_scope_or_level_is_opened_marked_or_found(
    demo: App, chat_as: Callable[[str], Chat]
) -> None:
    seed_articles(demo, 1, status="approved")  # a THCS school of PGD-DEMO
    add_district(demo, "PGD-KHAC")
    add_user(demo, "other_officer", "officer", "PGD-KHAC", "Anh Khác")
    add_user(demo, "mn_officer", "officer", "PGD-DEMO", "Cô Mầm Non", levels="MN")
    for outsider in ("other_officer", "mn_officer"):
        chat = chat_as(outsider)
        for value in ("o:1", "rv:p:1:1"):
            got = await demo.dispatcher.handle(press(outsider, value, f"{outsider}{value}"))
            assert "Không tìm thấy" in got[0].text
        assert "Không có bài nào" in (await chat.send("/published"))[0].text
        assert "Không tìm thấy mục nào" in (await chat.send("/find pu nhi"))[0].text
        assert "chưa có bài" in (await chat.send("/find"))[0].text
    assert the_article(demo).status == "approved"
    assert published_links(demo) == {}


async def test_find_without_accents(
    demo: App, chat_as: Callable[[str], Chat], files: dict[str, Path]
) -> None:
    await send_article(chat_as("principal"), files, ["Sáng 5/11, trường tổ chức ngày hội đọc sách."])
    seed_articles(demo, 3, status="approved", school="MN-HOABAN", month="2026-10")
    officer = chat_as("officer")
    found = await officer.send("/find pu nhi")
    assert "“pu nhi”: 1 mục" in found[0].text and "Ngày hội đọc sách" in found[0].text
    opened = await officer.press("Mở #1")
    assert "Sáng 5/11, trường tổ chức ngày hội đọc sách." in opened[0].text
    assert "1 mục" in (await officer.send("/find DOC SACH thang 11"))[0].text
    assert "1 mục" in (await officer.send("/find tieu bieu cua nha truong"))[0].text  # the theme
    assert "Không tìm thấy" in (await officer.send("/find pu nhi tháng 10"))[0].text
    assert "Không tìm thấy" in (await officer.send("/find nhi pu x"))[0].text
    every = await officer.send("/find")
    assert every[0].text.startswith("🗂 Tất cả: 4 mục")
    lines = every[0].text.split("\n")[1:]
    assert "#1 ·" in lines[0] and "#2 ·" in lines[-1]  # newest first
    assert (
        "Không tìm thấy mục nào: Đã duyệt · tháng 09/2026"
        in (await officer.send("/find đã duyệt tháng 9"))[0].text
    )  # a month with no approved items
    assert "3 mục" in (await officer.send("/find da duyet thang 10"))[0].text
    bad = await officer.send("/find tháng 13")
    assert "chưa đúng" in bad[0].text
    leader = chat_as("leader")
    await leader.send("/find pu nhi")
    seen = await leader.press("Mở #1")
    assert "Ngày hội đọc sách" in seen[0].text and not seen[-1].choices  # leaders read, not act


async def test_find_pages_newest_first(demo: App, chat_as: Callable[[str], Chat]) -> None:
    seed_articles(demo, 11, status="submitted")
    officer = chat_as("officer")
    first = await officer.send("/find bai so")
    assert "11 mục, mới nhất trước (1–8)" in first[0].text and "Bài số 11 ·" in first[0].text
    second = await officer.press("Xem tiếp (3 mục)")
    assert "(9–11)" in second[0].text and "Bài số 1 ·" in second[0].text
    long = await officer.send("/find " + " ".join(["bai"] * 7 + ["so" * 20]))
    assert not any("Xem tiếp" in c.label for c in long[0].flat_choices())


def seed_articles(app: App, count: int, *, status: str, school: str = "THCS-PUNHI", month: str = "") -> None:
    """`count` articles of a school ("Bài số 1"… sent an hour apart, approved in that order)."""
    with app.db.session() as s:
        found = s.exec(select(School).where(School.code == school)).one()
        principal = q.get_user(s, "console", "principal")
        officer = q.get_user(s, "console", "officer")
        assert (
            found.id is not None
            and principal is not None
            and principal.id is not None
            and officer is not None
        )
        start = app.clock.now() - timedelta(days=2)
        for n in range(count):
            when = start + timedelta(hours=n)
            answers = {"title": f"Bài số {n + 1}", "theme_text": "Hoạt động tiêu biểu"}
            row = Submission(
                kind="article",
                school_id=found.id,
                user_id=principal.id,
                period=month or app.clock.now().strftime("%Y-%m"),
                status=status,
                answers=answers,
                search=q.search_text("article", answers),
                token=f"seed-{school}-{n}",
                submitted_at=when,
                reviewed_at=when if status != "submitted" else None,
                reviewed_by_id=officer.id if status != "submitted" else None,
                created_at=when,
                updated_at=when,
            )
            s.add(row)


def published_links(app: App) -> dict[int, str]:
    with app.db.session() as s:
        rows = s.exec(select(ReviewAction).where(ReviewAction.action == "publish")).all()
    return {r.submission_id: r.note for r in rows}
