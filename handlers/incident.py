"""Báo cáo nhanh sự cố, handled as a case: a school raises a communications incident, its office hears at
once, one officer or leader takes it, works it, records the result and closes it; the office and the
school write to each other on the case meanwhile.

The scope rule (issue #17 item 7): an incident is the office's shared emergency. It reaches, and
`/incidents`, `/status`, the digest and the workbook show it to, every officer and leader of the
school's district and province whatever their level limit (`scope.seen_by(user, by_level=False)`).

A case's state moves Mới → Đã tiếp nhận (the first acknowledgement: its holder) → Đang xử lý → Đã xử lý
(a result, optionally the link where it was published) → Đóng, each move one conditional UPDATE
(`storage.queries.incidents.move`). Every message to someone else is an outbox row written in the
transaction of the change (`handlers.notify.tell`): stored means delivered, at once, quiet hours or not.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handlers.consent import Shield, shield
from handlers.forms import Answers, Engine, Form, Step, StepKind, display, media_name
from handlers.forms.engine import SubmitHook
from handlers.forms.steps import PHOTO_KINDS, offering, read_phone
from handlers.i18n import Translator
from handlers.notify import ALERT, NOTICE, tell, tell_each
from handlers.profile import person_label
from handlers.types import Attachment, Choice, Context, Incoming, Reply
from storage import queries as q
from storage import scope, stats
from storage.models import Draft, Incident, School, Submission, User

if TYPE_CHECKING:
    from sqlmodel import Session

    from handlers.calendar import Clock
    from handlers.config import Settings
    from handlers.i18n import Catalog
    from storage.db import Database

NETWORKS = ("facebook", "zalo", "tiktok", "youtube", "press", "tv")
SEVERITIES = ("low", "medium", "high")
STAFF = frozenset({"officer", "leader"})
PREFIX = "ic"  # the case's buttons: "ic:<action>:<incident id>"
CASE = "_case"  # the hidden answer naming the case a reply, update or result form is about
ALERT_EDIT = "alert-edit"  # an alert changed to say who holds the case (an edit where the channel can)
ON_CASE = "case"  # a message on a case, to the other side
LATE = "incident-late"  # the period prefix of an escalation to the leaders
LISTED = 10  # cases listed by /incidents
MONTHS_SHOWN = 6  # months of figures in /incidents


def delivery(ctx: Context) -> str:
    """Which account of a person on several channels a message goes to (delivery.prefer)."""
    return ctx.settings.prefer


def local(ctx: Context, moment: datetime | None) -> str:
    """ "29/11/2026 14:30" in the office's time zone ("" for none)."""
    return moment.astimezone(ctx.clock.tz).strftime("%H:%M %d/%m/%Y") if moment is not None else ""


def happened_at(ctx: Context, answers: Answers) -> datetime | None:
    """When the incident happened, as the school gave it (local), as an aware datetime."""
    value = answers.get("when")
    if not isinstance(value, str) or "T" not in value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=ctx.clock.tz)


def known_phone(ctx: Context, answers: Answers) -> str | None:
    """The reporter's callback number from their profile (`User.phone`), in the form the step keeps."""
    return read_phone(ctx.user.phone) if ctx.user is not None and ctx.user.phone else None


# ---- raising it ------------------------------------------------------------------------------------


async def submit(ctx: Context, draft: Draft) -> list[Reply]:
    """Store the incident once and alert every officer and leader over the school."""
    user = ctx.user
    assert user is not None and user.id is not None and user.school_id is not None
    now = ctx.clock.now()
    with ctx.db.session() as s:
        sub, created = q.create_submission(
            s,
            kind="incident",
            school_id=user.school_id,
            user_id=user.id,
            token=draft.token,
            answers=draft.answers,
            status="submitted",
            now=now,
        )
        if not created:
            return [Reply(ctx.t("form.already_sent", title=ctx.t(INCIDENT_FORM.title)))]
        incident = q.create_incident(
            s,
            sub,
            str(draft.answers.get("severity")),
            now,
            happened_at=happened_at(ctx, draft.answers),
            phone=str(draft.answers.get("phone") or ""),
        )
        school = s.get(School, user.school_id)
        assert school is not None
        recipients = q.one_per_person(q.staff_over_school(s, user.school_id), delivery(ctx))
        guard = shield(s, [school.id or 0])  # the school's withheld names, read once for them all
        alerts = [(r, alert_for(s, ctx, r, incident, sub, school, user, guard=guard)) for r in recipients]
        # in the incident's own transaction: stored means alerted
        tell_each(s, ctx, alerts, kind=ALERT, period=f"incident:{incident.id}")
    if not recipients:
        return [Reply(ctx.t("incident.sent_nobody", number=incident.id))]
    names = ", ".join(person_label(r, ctx.t) for r in recipients)
    return [Reply(ctx.t("incident.sent", number=incident.id, count=len(recipients), names=names))]


def alert_for(
    s: Session,
    ctx: Context,
    to: User,
    incident: Incident,
    sub: Submission,
    school: School,
    by: User,
    late: bool = False,
    guard: Shield | None = None,
) -> Reply:
    """The alert one officer or leader receives, in their language: every answer, when it happened and
    was reported, the number to call back, the screenshots; buttons to take the case and to open it.
    `late`: sent again to a leader because nobody took it within incident.ack_minutes. `guard`: the
    school's names withheld, read already (`shield`)."""
    t = ctx.t_for(to)
    reader = replace(ctx, t=t)
    lines = [t("incident.alert", number=incident.id, school=school.name, by=person_label(by, t))]
    if late:
        minutes = ctx.settings.incident.ack_minutes
        lines.insert(0, t("incident.case.late", number=incident.id, minutes=minutes))
    guard = shield(s, [school.id or 0]) if guard is None else guard
    answers = guard.seen_by(to).answers(sub)  # a pupil's name withheld without consent
    for step in INCIDENT_FORM.steps:
        if step.kind in PHOTO_KINDS or (step.is_optional(answers) and not answers.get(step.key)):
            continue
        lines.append(f"• {t(step.prompt + '_short')}: {display(step, answers.get(step.key), reader)}")
    lines.append(t("incident.case.reported", when=local(ctx, incident.created_at)))
    buttons = (
        (Choice(t("btn.ack"), f"k:{incident.id}"),),
        (Choice(t("incident.case.open", number=incident.id), f"{PREFIX}:o:{incident.id}"),),
    )
    return Reply("\n".join(lines), buttons, attachments=evidence(s, ctx, sub.answers.get("photos")))


def evidence(s: Session, ctx: Context, items: Any) -> tuple[Attachment, ...]:
    """The screenshots and photos of an incident or an update (their stored records, read in `s`),
    named by role and number, as every file is shown)."""
    wanted = [int(i["media_id"]) for i in items or [] if isinstance(i, dict) and "media_id" in i]
    rows = {m.id: m for m in q.media_files(s, wanted)}
    root = Path(ctx.settings.media_dir)
    found = []
    for number, media_id in enumerate(wanted, start=1):
        row = rows.get(media_id)
        if row is not None:
            path = str(root / row.path) if row.path else ""
            name = media_name(EVIDENCE, number, ctx)
            found.append(Attachment("photo", name, row.file_id, row.channel, path))
    return tuple(found)


# ---- taking it -------------------------------------------------------------------------------------


def holder_label(t: Translator, holder: User | None) -> str:
    """ "Anh Nguyễn Văn Minh (Chuyên viên truyền thông)"."""
    if holder is None:
        return t("incident.no_ack")
    return t("incident.case.person", name=person_label(holder, t), role=t(f"role.{holder.role}"))


async def acknowledge(msg: Incoming, ctx: Context) -> list[Reply]:
    """An officer or leader presses "Đã nắm thông tin": the first takes the case (one conditional
    UPDATE); the school is told who; the others' alerts are changed to say who holds it, without the
    button. A later press is told who holds it."""
    number = msg.choice.partition(":")[2]
    user = ctx.user
    assert user is not None and user.id is not None
    with ctx.db.session() as s:
        found = q.incident_seen_by(s, user, int(number)) if number.isdigit() else None
        if found is None:
            return [Reply(ctx.t("incident.not_found"))]
        incident, _school = found
        first = q.acknowledge(s, incident.id or 0, user.id, ctx.clock.now())
        if first:
            for p in q.one_per_person(q.school_users(s, incident.school_id), delivery(ctx)):
                t = ctx.t_for(p)
                text = t(
                    "incident.acked",
                    number=incident.id,
                    name=person_label(user, t),
                    role=t(f"role.{user.role}"),
                )
                tell(s, ctx, p, Reply(text), kind=NOTICE, period=f"ack:{incident.id}", step=str(user.id))
            show_holder(s, ctx, incident.id or 0, user)
            holder: User | None = user
        else:
            fresh = s.get(Incident, incident.id)
            holder = s.get(User, fresh.holder_id) if fresh is not None and fresh.holder_id else None
    if not first:
        if holder is not None and holder.id == user.id:
            return [Reply(ctx.t("incident.ack_again", number=incident.id))]
        return [Reply(ctx.t("incident.case.held_by", number=incident.id, who=holder_label(ctx.t, holder)))]
    return [Reply(ctx.t("incident.ack_done", number=incident.id)), *await show_case(ctx, incident.id or 0)]


def show_holder(s: Session, ctx: Context, incident_id: int, holder: User) -> None:
    """Every other alert of the case (and its escalations) changed to say who holds it, no button."""
    for row in q.alert_rows(s, [f"incident:{incident_id}", f"{LATE}:{incident_id}"]):
        if row.user_id == holder.id or row.id is None:
            continue
        to = s.get(User, row.user_id)
        if to is None:
            continue
        t = ctx.t_for(to)
        held = t("incident.case.held", who=holder_label(t, holder))
        opener = (Choice(t("incident.case.open", number=incident_id), f"{PREFIX}:o:{incident_id}"),)
        reply = Reply(f"{row.payload.get('text', '')}\n\n{held}", (opener,), edit_of=row.id)
        tell(s, ctx, to, reply, kind=ALERT_EDIT, period=f"incident:{incident_id}", step=f"held:{row.id}")


# ---- the case --------------------------------------------------------------------------------------


def case_lines(ctx: Context, s: Session, incident: Incident, school: School) -> list[str]:
    """The case as anyone in scope reads it: state, holder, times, phone, result, every message."""
    t = ctx.t
    guard = shield(s, [school.id or 0], ctx.user)  # a pupil's name withheld without consent
    holder = s.get(User, incident.holder_id) if incident.holder_id else None
    lines = [
        t(
            "incident.case.header",
            number=incident.id,
            school=school.name,
            state=t(f"incident.state.{incident.state}"),
        ),
        t("incident.case.holder", who=holder_label(t, holder)),
    ]
    if incident.happened_at is not None:
        lines.append(t("incident.case.happened", when=local(ctx, incident.happened_at)))
    lines.append(t("incident.case.reported", when=local(ctx, incident.created_at)))
    if incident.phone:
        lines.append(t("incident.case.phone", phone=incident.phone))
    if incident.result:
        lines.append(t("incident.case.result_line", result=guard.text(school.id or 0, incident.result)))
    if incident.result_link:
        lines.append(t("incident.case.result_link_line", link=incident.result_link))
    messages = q.messages_of(s, incident.id or 0)
    if messages:
        lines.append(t("incident.case.messages"))
    for m, writer in messages:
        side = t(f"incident.case.side.{m.side}")
        lines.append(
            t(
                "incident.case.message",
                when=local(ctx, m.created_at),
                name=person_label(writer, t),
                side=side,
                text=guard.text(school.id or 0, m.text),
            )
        )
        lines += [f"  {link}" for link in m.links]
        if m.media:
            lines.append(t("incident.case.photos", count=len(m.media)))
    return lines


def case_buttons(ctx: Context, incident: Incident) -> tuple[tuple[Choice, ...], ...]:
    """What the reader can do next, by role and state."""
    user = ctx.user
    n = incident.id
    if user is None or incident.state == "closed":
        return ()
    if user.role == "principal":
        return ((Choice(ctx.t("incident.case.btn.update"), f"{PREFIX}:u:{n}"),),)
    if user.role not in STAFF:
        return ()
    if incident.state == "new":
        return ((Choice(ctx.t("btn.ack"), f"k:{n}"),),)
    reply = (Choice(ctx.t("incident.case.btn.reply"), f"{PREFIX}:g:{n}"),)
    following = {
        "acked": (Choice(ctx.t("incident.case.btn.working"), f"{PREFIX}:w:{n}"),),
        "working": (Choice(ctx.t("incident.case.btn.resolved"), f"{PREFIX}:r:{n}"),),
        "resolved": (Choice(ctx.t("incident.case.btn.close"), f"{PREFIX}:c:{n}"),),
    }[incident.state]
    return (following, reply)


async def show_case(ctx: Context, incident_id: int) -> list[Reply]:
    """The case whole, with the buttons for what the reader may do next."""
    assert ctx.user is not None
    with ctx.db.session() as s:
        found = q.incident_seen_by(s, ctx.user, incident_id)
        if found is None:
            return [Reply(ctx.t("incident.not_found"))]
        incident, school = found
        lines = case_lines(ctx, s, incident, school)
        sub = s.get(Submission, incident.submission_id)
        files = evidence(s, ctx, sub.answers.get("photos")) if sub is not None else ()
        for m, _ in q.messages_of(s, incident_id):
            files += evidence(s, ctx, m.media)
    return [Reply("\n".join(lines), case_buttons(ctx, incident), attachments=files)]


async def case_button(msg: Incoming, ctx: Context, engine: Engine) -> list[Reply]:
    """The case's buttons: open it; move it on; reply to the school; the school's update."""
    parts = msg.choice.split(":")
    user = ctx.user
    if len(parts) != 3 or not parts[2].isdigit() or user is None or user.id is None:
        return [Reply(ctx.t("error.bad_button"))]
    action, number = parts[1], int(parts[2])
    staff_only, school_only = action in ("w", "r", "c", "g"), action == "u"
    with ctx.db.session() as s:
        found = q.incident_seen_by(s, user, number)
    if (
        found is None
        or action not in ("o", "w", "r", "c", "g", "u")
        or (staff_only and user.role not in STAFF)
        or (school_only and user.role != "principal")
    ):
        return [Reply(ctx.t("incident.not_found"))]
    incident, _school = found
    if action == "o":
        return await show_case(ctx, number)
    if incident.state == "closed":
        return [Reply(ctx.t("incident.case.is_closed", number=number))]
    if action == "w":
        return await start_work(ctx, incident)
    if action == "c":
        return await close(ctx, incident)
    if action == "r" and incident.state not in ("acked", "working"):
        return [Reply(not_now(ctx, incident))]
    if action in ("g", "r") and incident.state == "new":
        return [Reply(ctx.t("incident.case.take_first", number=number))]
    form = {"g": REPLY_FORM, "r": RESULT_FORM, "u": UPDATE_FORM}[action]
    draft = engine.fresh(form, ctx, {CASE: number})
    return [engine.screen(form, draft, ctx)]


def not_now(ctx: Context, incident: Incident) -> str:
    """Why a move does not apply to the case as it stands."""
    if incident.state == "new":
        return ctx.t("incident.case.take_first", number=incident.id)
    return ctx.t("incident.case.already", number=incident.id, state=ctx.t(f"incident.state.{incident.state}"))


async def advance(
    ctx: Context,
    incident: Incident,
    from_states: tuple[str, ...],
    to: str,
    told: str,
    fields: dict[str, Any] | None = None,
    done: str = "",
    **values: Any,
) -> list[Reply]:
    """Move the case on if it still stands where the press found it (the school is told, `told` with
    `fields`); `done`, then the case, to the writer; else why not."""
    with ctx.db.session() as s:
        moved = q.move(s, incident.id or 0, from_states, to, **values)
        if moved:
            tell_school(s, ctx, incident, to, told, **(fields or {}))
    if not moved:
        with ctx.db.session() as s:
            fresh = s.get(Incident, incident.id)
        return [Reply(not_now(ctx, fresh or incident))]
    case = await show_case(ctx, incident.id or 0)
    return [Reply(ctx.t(done, number=incident.id)), *case] if done else case


async def start_work(ctx: Context, incident: Incident) -> list[Reply]:
    """Đang xử lý: from taken only; the school is told."""
    return await advance(ctx, incident, ("acked",), "working", "incident.case.told_working")


async def close(ctx: Context, incident: Incident) -> list[Reply]:
    """Đóng: only once a result is recorded (Đã xử lý); the school is told."""
    if incident.state != "resolved":
        return [Reply(ctx.t("incident.case.need_result", number=incident.id))]
    return await advance(
        ctx,
        incident,
        ("resolved",),
        "closed",
        "incident.case.told_closed",
        done="incident.case.closed_done",
        closed_at=ctx.clock.now(),
    )


def tell_school(s: Session, ctx: Context, incident: Incident, step: str, key: str, **fields: Any) -> None:
    """The school's principals hear of a move of their case at once, with a button to open it."""
    assert ctx.user is not None
    for p in q.one_per_person(q.school_users(s, incident.school_id), delivery(ctx)):
        t = ctx.t_for(p)
        who = holder_label(t, ctx.user)
        opener = (Choice(t("incident.case.open", number=incident.id), f"{PREFIX}:o:{incident.id}"),)
        reply = Reply(t(key, number=incident.id, who=who, **fields), (opener,))
        tell(s, ctx, p, reply, kind=NOTICE, period=f"case:{incident.id}", step=step)


def target(ctx: Context, draft: Draft) -> tuple[Incident, School] | None:
    """The case a reply, update or result form is about, if the writer still sees it."""
    number = draft.answers.get(CASE)
    if not isinstance(number, int) or ctx.user is None:
        return None
    with ctx.db.session() as s:
        return q.incident_seen_by(s, ctx.user, number)


async def submit_result(ctx: Context, draft: Draft) -> list[Reply]:
    """Đã xử lý: the result (and the link where it was published) recorded; the school is told."""
    found = target(ctx, draft)
    if found is None:
        return [Reply(ctx.t("incident.not_found"))]
    incident, _ = found
    result = str(draft.answers.get("result") or "")
    link = str(draft.answers.get("link") or "")
    return await advance(
        ctx,
        incident,
        ("acked", "working"),
        "resolved",
        "incident.case.told_resolved",
        {"result": result + (f"\n{link}" if link else "")},
        result=result,
        result_link=link,
        resolved_at=ctx.clock.now(),
    )


async def submit_reply(ctx: Context, draft: Draft) -> list[Reply]:
    """Trả lời trường: the office's guidance kept on the case and sent to the school at once."""
    return await add_to_case(ctx, draft, "office")


async def submit_update(ctx: Context, draft: Draft) -> list[Reply]:
    """The school's update (text, links, photos) kept on the case and sent to its holder at once (to
    every officer and leader over the school while nobody holds it)."""
    return await add_to_case(ctx, draft, "school")


async def add_to_case(ctx: Context, draft: Draft, side: str) -> list[Reply]:
    """One message on a case, stored with its outbox rows in one transaction; refused once closed."""
    found = target(ctx, draft)
    user = ctx.user
    if found is None or user is None or user.id is None:
        return [Reply(ctx.t("incident.not_found"))]
    incident, school = found
    if incident.state == "closed":
        return [Reply(ctx.t("incident.case.is_closed", number=incident.id))]
    text = str(draft.answers.get("text") or "")
    links = list(draft.answers.get("links") or [])
    media = list(draft.answers.get("photos") or [])
    now = ctx.clock.now()
    with ctx.db.session() as s:
        message = q.add_message(s, incident.id or 0, user.id, side, text, now, links=links, media=media)
        if side == "office":
            recipients = q.school_users(s, incident.school_id)
        else:
            holder = s.get(User, incident.holder_id) if incident.holder_id else None
            recipients = [holder] if holder is not None else q.staff_over_school(s, incident.school_id)
        files = evidence(s, ctx, media)
        guard = shield(s, [incident.school_id])  # a pupil's name withheld from the office without consent
        for to in q.one_per_person(recipients, delivery(ctx)):
            t = ctx.t_for(to)
            shown = text if to.school_id == incident.school_id else guard.text(incident.school_id, text)
            body = t(
                f"incident.case.from_{side}",
                number=incident.id,
                school=school.name,
                who=holder_label(t, user),
                when=local(ctx, now),
                text=shown,
            )
            body += "".join(f"\n{link}" for link in links)
            action = "u" if side == "office" else "g"
            label = "incident.case.btn.update" if side == "office" else "incident.case.btn.reply"
            buttons = ((Choice(t(label), f"{PREFIX}:{action}:{incident.id}"),),)
            reply = Reply(body, buttons, attachments=files)
            tell(s, ctx, to, reply, kind=ON_CASE, period=f"case:{incident.id}", step=f"m{message.id}")
    return [
        Reply(ctx.t(f"incident.case.sent_{side}", number=incident.id)),
        *await show_case(ctx, incident.id or 0),
    ]


# ---- /incidents ------------------------------------------------------------------------------------


async def list_incidents(msg: Incoming, ctx: Context) -> list[Reply]:
    """/incidents: the cases in the user's scope, open first, each with its state and holder and a
    button to open it; for officers and leaders, the figures by month."""
    user = ctx.user
    assert user is not None
    with ctx.db.session() as s:
        rows = q.incidents_in_scope(s, user, limit=LISTED)
        holders = {i.holder_id: s.get(User, i.holder_id) for i, _ in rows if i.holder_id}
        where = scope.of_user(user, by_level=False)
        times = stats.incident_times(s, where) if where is not None and user.role in STAFF else []
    if not rows:
        return [Reply(ctx.t("incident.none"))]
    lines = [ctx.t("incident.list")]
    buttons = []
    for incident, school in rows:
        lines.append(
            ctx.t(
                "incident.case.line",
                number=incident.id,
                school=school.name,
                when=local(ctx, incident.happened_at or incident.created_at),
                severity=ctx.t(f"incident.level.{incident.severity}"),
                state=ctx.t(f"incident.state.{incident.state}"),
                who=holder_label(ctx.t, holders.get(incident.holder_id or 0)),
            )
        )
        buttons.append(
            (Choice(ctx.t("incident.case.open", number=incident.id), f"{PREFIX}:o:{incident.id}"),)
        )
    if times:
        lines += ["", ctx.t("incident.figures.title"), *figure_lines(ctx, times)]
    return [Reply("\n".join(lines), tuple(buttons))]


def span(t: Translator, minutes: float) -> str:
    """A duration in words: minutes under two hours, hours under two days, else days."""
    if minutes < 120:
        return t("incident.figures.minutes", count=round(minutes))
    if minutes < 48 * 60:
        return t("incident.figures.hours", count=round(minutes / 60))
    return t("incident.figures.days", count=round(minutes / 1440))


def figure_lines(ctx: Context, times: list[stats.IncidentTimes]) -> list[str]:
    """Per month (latest first): how many, the median time to acknowledge and to close."""
    months: dict[str, list[stats.IncidentTimes]] = defaultdict(list)
    for row in times:
        months[row.created_at.astimezone(ctx.clock.tz).strftime("%Y-%m")].append(row)
    out = []
    for key in sorted(months, reverse=True)[:MONTHS_SHOWN]:
        rows = months[key]
        acked = [(r.acked_at - r.created_at).total_seconds() / 60 for r in rows if r.acked_at]
        closed = [(r.closed_at - r.created_at).total_seconds() / 60 for r in rows if r.closed_at]
        out.append(
            ctx.t(
                "incident.figures.month",
                month=f"{key[5:]}/{key[:4]}",
                count=len(rows),
                ack=span(ctx.t, statistics.median(acked)) if acked else ctx.t("incident.figures.none"),
                close=span(ctx.t, statistics.median(closed)) if closed else ctx.t("incident.figures.none"),
            )
        )
    return out


# ---- escalation ------------------------------------------------------------------------------------


def sweep_escalations(db: Database, clock: Clock, settings: Settings, catalog: Catalog) -> int:
    """Cases nobody took within incident.ack_minutes: the alert again to the office's leaders, marked as
    unacknowledged, once (on the alert lane: quiet hours do not hold it). How many rows were made."""
    now = clock.now()
    before = now - timedelta(minutes=settings.incident.ack_minutes)
    made = 0
    with db.session() as s:
        for incident in q.unacknowledged_before(s, before):
            if not q.mark_escalated(s, incident.id or 0, now):
                continue
            sub = s.get(Submission, incident.submission_id)
            school = s.get(School, incident.school_id)
            by = s.get(User, sub.user_id) if sub is not None else None
            if sub is None or school is None or by is None:
                continue
            for leader in q.one_per_person(q.leaders_over(s, incident.school_id), settings.prefer):
                t = catalog.translator(leader.locale or settings.locale, leader.channel)
                ctx = Context(db, clock, t, settings, leader, leader.channel, catalog)
                alert = alert_for(s, ctx, leader, incident, sub, school, by, late=True)
                tell(s, ctx, leader, alert, kind=ALERT, period=f"{LATE}:{incident.id}")
                made += 1
    return made


# ---- the forms -------------------------------------------------------------------------------------

EVIDENCE = Step(
    "photos", "incident.evidence.photos", StepKind.PHOTOS, optional=True, max_items=10, min_side=0
)  # screenshots and photos of any size (no 1280 px rule here)
LINKS = Step("links", "incident.evidence.links", StepKind.LINKS, optional=True, max_items=10)
PRINCIPAL = frozenset({"principal"})

INCIDENT_FORM = Form(
    name="incident",
    title="incident.title",
    roles=PRINCIPAL,
    submit=submit,
    steps=(
        Step("what", "incident.what", StepKind.LONGTEXT),
        Step("when", "incident.when", StepKind.DATETIME, past_only=True),
        Step("where", "incident.where", StepKind.TEXT, max_len=300),
        offering(
            "networks",
            "incident.networks",
            "incident.network",
            NETWORKS,
            StepKind.MULTI,
            other=True,
            max_len=100,
        ),
        LINKS,
        EVIDENCE,
        Step("actions", "incident.actions", StepKind.LONGTEXT, optional=True),
        offering("severity", "incident.severity", "incident.level", SEVERITIES),
        Step("phone", "incident.evidence.phone", StepKind.PHONE, optional=True, known=known_phone),
    ),
)


def case_form(name: str, roles: frozenset[str], submit: SubmitHook, *steps: Step) -> Form:
    """A form about one case (its number in the hidden answer CASE): "incident_<name>", titled by the
    locale key incident.case.<name>_title."""
    return Form(f"incident_{name}", f"incident.case.{name}_title", steps, roles, submit)


REPLY_FORM = case_form(
    "reply", STAFF, submit_reply, Step("text", "incident.case.guidance", StepKind.LONGTEXT)
)
UPDATE_FORM = case_form(
    "update",
    PRINCIPAL,
    submit_update,
    Step("text", "incident.case.update", StepKind.LONGTEXT),
    LINKS,
    EVIDENCE,
)
RESULT_FORM = case_form(
    "result",
    STAFF,
    submit_result,
    Step("result", "incident.case.result", StepKind.TEXT, max_len=1000),
    Step("link", "incident.case.result_link", StepKind.URL, optional=True),
)
