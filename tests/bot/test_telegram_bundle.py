"""The press bundle over Telegram: a month over the upload limit arrives as numbered ZIPs, each under the
limit the (fake) Bot API enforces, that together hold every file."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from tests.bot.test_telegram import DISTRICT_OFFICER, Tg, api_fixture, settings_fixture, tg_fixture  # noqa: F401
from tests.bot.test_telegram_article import texts
from tests.conftest import Chat
from tests.handlers.article_helpers import write_article
from tests.handlers.test_bundle import ZIP_NAME, approve_all, entries, noisy_files
from tests.handlers.test_nomination import nominate


async def test_a_month_over_the_limit_arrives_in_parts_on_telegram(tg: Tg, tmp_path: Path) -> None:
    principal = Chat(tg.app, "principal", "Cô Lò Thị Lan")
    await write_article(principal, noisy_files(tmp_path))
    await principal.press("Gửi")
    await nominate(principal, tmp_path, role="Giáo viên", photos=2)
    await principal.press("Gửi")
    await approve_all(tg.app)
    whole = await Chat(tg.app, "officer").send("/bundle 11/2026")  # the console: no limit, one ZIP
    everything = entries([Path(whole[0].file_path)])

    limit = 600_000
    tg.api.upload_limit = limit  # the fake refuses a larger file, as Telegram does past 50 MB
    tg.app.dispatcher.upload_limits["telegram"] = limit
    await tg.register(DISTRICT_OFFICER, "officer", office="PGD-DEMO")
    before = len(tg.api.calls_to("sendDocument"))
    accepted = len(tg.api.calls_to("sendDocument", ok_only=True))
    replies = await tg.send(DISTRICT_OFFICER, "/bundle tháng 11")
    assert "Tư liệu tháng 11/2026: 2 mục" in texts(replies) and "được gửi thành" in texts(replies)
    assert "dòng lệnh" not in texts(replies)  # no dead end
    sent = tg.api.calls_to("sendDocument")[before:]
    assert len(sent) >= 2 and len(tg.api.calls_to("sendDocument", ok_only=True)) - accepted == len(sent)
    documents = [call["document"] for call in sent]
    assert [d["filename"] for d in documents] == [
        ZIP_NAME.replace(".zip", f"_phần {n} trên {len(sent)}.zip") for n in range(1, len(sent) + 1)
    ]
    assert all(d["size"] < limit for d in documents)
    parts = []
    for n, document in enumerate(documents, 1):
        path = tmp_path / f"received-{n}.zip"
        path.write_bytes(document["content"])
        parts.append(path)
    assert entries(parts) == everything
    with zipfile.ZipFile(io.BytesIO(documents[-1]["content"])) as archive:
        assert "Danh mục.xlsx" in archive.namelist()
