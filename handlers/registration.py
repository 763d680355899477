"""Registration: a principal, officer or leader binds their chat to a school or office with a code."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

from handlers.forms import Engine
from handlers.profile import ask_after_registration
from handlers.types import Context, Incoming, Reply
from storage import queries as q
from storage.queries import Redeem

# Only the shape our codes have: a plain word ("help", "menu") is not taken for a wrong code.
CODE_SHAPE = re.compile(rf"^[{q.CODE_ALPHABET}]{{{q.CODE_LENGTH}}}$", re.IGNORECASE)


def looks_like_code(text: str) -> bool:
    """Whether a message could be a registration code rather than a sentence."""
    return bool(CODE_SHAPE.match(text.strip()))


async def start(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """/start [CODE]: register with a code, or greet a registered user, or explain how to register."""
    code = msg.args.strip()
    if code:
        return await redeem(code, ctx, engine)
    if ctx.user is None or ctx.user.role is None:
        return [Reply(ctx.t("reg.welcome")), Reply(ctx.t("reg.how"))]
    return [ctx.extras["home"](ctx)]


async def on_text(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """Free input from an unregistered user: a pasted code, or the explanation."""
    if msg.text and looks_like_code(msg.text):
        return await redeem(msg.text, ctx, engine)
    return [Reply(ctx.t("reg.how"))]


async def redeem(code: str, ctx: Context, engine: Engine) -> list[Reply]:
    """Bind the user to the code's school or office, then ask who they are (the profile form); a wrong
    code gets a plain answer."""
    assert ctx.user is not None
    rules = ctx.settings.registration
    window = timedelta(minutes=rules.wrong_code_window_minutes)
    with ctx.db.session() as s:
        user = s.merge(ctx.user)
        outcome = q.redeem_invite(s, user, code[:64], ctx.clock.now(), rules.max_wrong_codes, window)
        s.flush()
        s.refresh(user)
        s.expunge(user)
    if outcome is not Redeem.OK:
        return [Reply(ctx.t(f"reg.{outcome.value}", minutes=rules.wrong_code_window_minutes))]
    fresh = replace(ctx, user=user)
    return [
        Reply(ctx.t(f"reg.ok.{user.role}"), commands_for=user.role),
        *await ask_after_registration(fresh, engine),
    ]
