"""Channel overrides in the catalogue: a reader on Zalo reads Zalo's sentence, everyone else the plain one."""

from __future__ import annotations

import shutil
import string
from pathlib import Path

import pytest

from bot.app import App
from handlers import reminders
from handlers.i18n import LOCALES_DIR, Catalog, override_key
from handlers.types import Incoming, Kind
from storage import queries as q
from storage.models import User


def fields(sentence: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(sentence) if f}


@pytest.fixture(name="small")
def small_fixture(tmp_path: Path) -> Catalog:
    """A two-language catalogue where English lacks one Zalo sentence and one plain sentence."""
    (tmp_path / "vi.toml").write_text(
        """
[greet]
hello = "Chào {name}"
bye = "Tạm biệt"
only_vi = "Chỉ có tiếng Việt"

[channel.zalo.greet]
hello = "Chào {name}, trên Zalo"
bye = "Tạm biệt, trên Zalo"
""",
        encoding="utf-8",
    )
    (tmp_path / "en.toml").write_text(
        """
[greet]
hello = "Hello {name}"
bye = "Bye"

[channel.zalo.greet]
hello = "Hello {name}, on Zalo"
""",
        encoding="utf-8",
    )
    return Catalog(tmp_path, default="vi")


def test_the_channel_sentence_wins_on_its_channel_and_the_plain_one_elsewhere(small: Catalog) -> None:
    assert small.translator("vi", "zalo")("greet.hello", name="Lan") == "Chào Lan, trên Zalo"
    assert small.translator("vi", "telegram")("greet.hello", name="Lan") == "Chào Lan"
    assert small.translator("vi")("greet.hello", name="Lan") == "Chào Lan"
    assert small.translator("vi", "zalo")("greet.only_vi") == "Chỉ có tiếng Việt"  # no override: plain


def test_english_falls_back_to_the_default_languages_override_then_the_plain_sentence(small: Catalog) -> None:
    zalo, telegram = small.translator("en", "zalo"), small.translator("en", "telegram")
    assert zalo("greet.hello", name="Lan") == "Hello Lan, on Zalo"
    # What is true on a channel outranks the language: the Vietnamese Zalo sentence before "Bye".
    assert zalo("greet.bye") == "Tạm biệt, trên Zalo"
    assert telegram("greet.bye") == "Bye"
    assert zalo("greet.only_vi") == telegram("greet.only_vi") == "Chỉ có tiếng Việt"
    assert zalo("greet.nowhere") == "greet.nowhere"
    assert small.translator("fr", "zalo")("greet.hello", name="Lan") == "Chào Lan, trên Zalo"


def test_the_zalo_photo_advice_in_both_real_languages_with_fields_filled() -> None:
    catalog = Catalog(LOCALES_DIR)
    for lang in ("vi", "en"):
        plain, zalo = catalog.translator(lang, "telegram"), catalog.translator(lang, "zalo")
        assert zalo("article.photo_wide") == catalog.messages[lang]["channel.zalo.article.photo_wide"]
        assert plain("article.photo_wide") == catalog.messages[lang]["article.photo_wide"]
        assert zalo("article.photo_wide") != plain("article.photo_wide")
    assert "dạng Tệp" in catalog.translator("vi")("media.need_photo")
    assert "dạng Tệp" not in catalog.translator("vi", "zalo")("media.need_photo")
    # a sentence without an override reads the same everywhere, with its fields filled
    assert catalog.translator("vi", "zalo")("media.too_large", mb=30, limit=20) == (
        "Tệp quá lớn (30 MB). Tối đa 20 MB."
    )


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_every_override_replaces_a_plain_sentence_and_needs_no_other_fields(lang: str) -> None:
    messages = Catalog(LOCALES_DIR).messages[lang]
    overrides = [k for k in messages if k.startswith("channel.")]
    assert overrides, "no channel overrides at all"
    for key in overrides:
        channel, _, plain = key.removeprefix("channel.").partition(".")
        assert key == override_key(channel, plain)
        assert plain in messages, f"{key} overrides nothing"
        assert fields(messages[key]) <= fields(messages[plain]), key  # the code passes the plain one's


async def test_translators_made_for_a_user_speak_on_that_users_channel(demo: App) -> None:
    with demo.db.session() as s:
        officer = q.get_user(s, "console", "officer")
        assert officer is not None
        s.expunge(officer)
    zalo_officer = User(channel="zalo", external_id="z1", chat_id="z1", role="officer", locale="en")
    msg = Incoming("zalo", "z1", "z1", Kind.TEXT, text="hi")

    ctx = demo.dispatcher.context(msg, zalo_officer)

    assert (ctx.t.lang, ctx.t.channel) == ("en", "zalo")
    assert ctx.t("media.need_photo") == demo.catalog.messages["en"]["channel.zalo.media.need_photo"]
    assert ctx.t_for(officer)("media.need_photo") == demo.catalog.messages["vi"]["media.need_photo"]
    assert ctx.t_for(zalo_officer)("media.need_photo") == ctx.t("media.need_photo")


def test_reminders_are_worded_per_language_and_channel(demo: App, tmp_path: Path) -> None:
    """The sweep keeps one translator per (language, channel): a Zalo principal is not given the
    words made for a console principal of the same language."""
    for path in LOCALES_DIR.glob("*.toml"):
        shutil.copy(path, tmp_path / path.name)
    with (tmp_path / "vi.toml").open("a", encoding="utf-8") as extra:
        extra.write('\n[channel.zalo.reminder]\nbody = "Zalo: {what}, {school}, {due}, {days}"\n')
    catalog = Catalog(tmp_path)
    with demo.db.session() as s:
        school = q.school_by_code(s, "MN-HOABAN")
        assert school is not None
        for channel in ("console", "zalo"):
            s.add(
                User(
                    channel=channel,
                    external_id=f"hoaban-{channel}",
                    chat_id="1",
                    role="principal",
                    school_id=school.id,
                    office_id=school.office_id,
                    created_at=demo.clock.now(),
                )
            )

    plan = reminders.plan(demo.db, demo.clock, demo.settings, catalog, demo.clock.now().replace(hour=8))

    said = {i.user.external_id: i.reply.text for i in plan.items}
    assert said["hoaban-zalo"].startswith("Zalo: Bài viết tháng 11/2026, ")
    assert said["hoaban-console"].startswith("⏰ Nhắc nộp Bài viết tháng 11/2026")
    assert said["principal"].startswith("⏰ Nhắc nộp")  # the demo principal, on the console
