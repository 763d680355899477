"""`schoolbot backup` while a real `schoolbot run` process is mid-wave, then `schoolbot restore`
elsewhere: every row of the snapshot and every media file comes back; the only rows that differ from
the live database afterwards are the outbox's sends that went on after the snapshot (and the leases)."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from bot.app import open_app
from bot.config import load_settings
from handlers.types import Reply
from storage.media import MediaStore
from tests.bot.test_outbox_telegram import WINDOW
from tests.bot.test_run_process import WAIT, bot_process, config_file, schoolbot, terminated, toml
from tests.fakes.telegram_api import FakeBotAPI, FloodLimits
from tests.storage.test_backup import sqlite_rows, stored_media
from tests.support import add_principals, migrated_copy, until

ALERTS = 80
# What a send changes in its outbox row; everything else of every row must come back as it was.
SENDING = {
    "status",
    "attempts",
    "lease_owner",
    "lease_until",
    "updated_at",
    "sent_at",
    "last_error",
    "not_before",
    "ref",  # the message id the platform gave the send (kept for a later edit)
}


async def test_a_backup_mid_wave_restores_every_row_and_file(tmp_path: Path, migrated: Path) -> None:
    database = tmp_path / "live" / "schoolbot.db"
    media = tmp_path / "live" / "media"
    url = migrated_copy(migrated, database)
    outbox = [
        "[outbox]",
        f"rate = {25 / WINDOW}",
        f"per_chat_seconds = {WINDOW}",
        "concurrency = 4",
        "poll_seconds = 0.05",
    ]
    with FakeBotAPI(limits=FloodLimits(window=WINDOW)) as api:
        config = config_file(tmp_path, url, api.base_url, *outbox, media=str(media))
        with open_app(load_settings(config)) as app:
            users = add_principals(app, ALERTS, [(None, None)], first=7_000_000)
            app.outbox.enqueue_direct(
                "wave:backup", {u.id or 0: [Reply(f"Thông báo {u.external_id}")] for u in users}
            )
        store = MediaStore(media)
        for n in range(6):
            store.save(secrets.token_bytes(50_000 + n), ".jpg")
        api.slow("sendMessage", 1.0)  # 4 at a time: the wave lasts 20 s, the backup is made well within it
        log = tmp_path / "run.log"
        with bot_process(config, log) as bot:
            await until(
                lambda: len(api.calls_to("sendMessage", ok_only=True)) >= ALERTS // 4, "the wave", WAIT
            )
            archive = tmp_path / "mid-wave.zip"
            made = schoolbot("backup", "--out", str(archive), "--config", str(config))
            sent_by_then = len(api.calls_to("sendMessage", ok_only=True))
            assert terminated(bot) == 0, log.read_text(encoding="utf-8")
    assert made.returncode == 0 and "6 media file(s)" in made.stdout, made.stderr
    assert sent_by_then < ALERTS, "the wave should still be going when the backup was made"

    elsewhere = tmp_path / "elsewhere"
    target = tmp_path / "elsewhere.toml"
    target_url = f"sqlite:///{elsewhere / 'schoolbot.db'}"
    target.write_text(
        f"database_url = {toml(target_url)}\nmedia_dir = {toml(str(elsewhere / 'media'))}\n", encoding="utf-8"
    )
    restored = schoolbot("restore", str(archive), "--config", str(target))
    assert restored.returncode == 0, restored.stderr

    live, back = sqlite_rows(database), sqlite_rows(elsewhere / "schoolbot.db")
    assert set(back) == set(live)
    differing = {name for name in live if live[name] != back[name]}
    assert differing <= {"outbox", "lease"}, differing
    assert [r["id"] for r in back["outbox"]] == [r["id"] for r in live["outbox"]]
    for was, now in zip(back["outbox"], live["outbox"], strict=True):
        assert {k: v for k, v in was.items() if k not in SENDING} == {
            k: v for k, v in now.items() if k not in SENDING
        }
        if was["status"] == "sent":
            assert now["status"] == "sent" and now["sent_at"] == was["sent_at"]
    states = {r["status"] for r in back["outbox"]}
    assert "sent" in states and states & {"pending", "claimed"}  # a snapshot taken mid-wave
    assert stored_media(elsewhere / "media") == stored_media(media)
    check = sqlite3.connect(elsewhere / "schoolbot.db")
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()
