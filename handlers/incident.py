"""Báo cáo nhanh sự cố: a school raises a communications incident; its office hears at once."""

from __future__ import annotations

from dataclasses import replace

from handlers.forms import Form, Step, StepKind, display
from handlers.forms.steps import offering
from handlers.notify import ALERT, NOTICE, tell
from handlers.types import Choice, Context, Incoming, Reply
from storage import queries as q
from storage.models import Draft, Incident, School, Submission, User

NETWORKS = ("facebook", "zalo", "tiktok", "youtube", "press", "tv")
SEVERITIES = ("low", "medium", "high")


def delivery(ctx: Context) -> str:
    """Which account of a person on several channels a message goes to (delivery.prefer)."""
    return ctx.settings.prefer


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
        incident = q.create_incident(s, sub, str(draft.answers.get("severity")), now)
        school = s.get(School, user.school_id)
        assert school is not None
        recipients = q.one_per_person(q.staff_over_school(s, user.school_id), delivery(ctx))
        for r in recipients:  # in the incident's own transaction: stored means alerted
            alert = alert_for(ctx, r, incident, sub, school, user)
            tell(s, ctx, r, alert, kind=ALERT, period=f"incident:{incident.id}")
    if not recipients:
        return [Reply(ctx.t("incident.sent_nobody", number=incident.id))]
    names = ", ".join(r.display_name or ctx.t(f"role.{r.role}") for r in recipients)
    return [Reply(ctx.t("incident.sent", number=incident.id, count=len(recipients), names=names))]


def alert_for(ctx: Context, to: User, incident: Incident, sub: Submission, school: School, by: User) -> Reply:
    """The alert one officer or leader receives, in their language, with an acknowledge button."""
    t = ctx.t_for(to)
    reader = replace(ctx, t=t)
    lines = [t("incident.alert", number=incident.id, school=school.name, by=by.display_name)]
    for step in INCIDENT_FORM.steps:
        lines.append(f"• {t(step.prompt + '_short')}: {display(step, sub.answers.get(step.key), reader)}")
    button = Choice(t("btn.ack"), f"k:{incident.id}")
    return Reply("\n".join(lines), ((button,),))


async def acknowledge(msg: Incoming, ctx: Context) -> list[Reply]:
    """An officer or leader presses "Đã nắm thông tin": recorded once; the school is told who."""
    number = msg.choice.partition(":")[2]
    user = ctx.user
    assert user is not None and user.id is not None
    with ctx.db.session() as s:
        incident = s.get(Incident, int(number)) if number.isdigit() else None
        in_scope = incident is not None and any(
            r.id == user.id for r in q.staff_over_school(s, incident.school_id)
        )
        if incident is None or not in_scope:
            return [Reply(ctx.t("incident.not_found"))]
        first = q.acknowledge(s, incident.id or 0, user.id, ctx.clock.now())
        if first:
            for p in q.one_per_person(q.school_users(s, incident.school_id), delivery(ctx)):
                t = ctx.t_for(p)
                text = t(
                    "incident.acked", number=incident.id, name=user.display_name, role=t(f"role.{user.role}")
                )
                tell(s, ctx, p, Reply(text), kind=NOTICE, period=f"ack:{incident.id}", step=str(user.id))
    if not first:
        return [Reply(ctx.t("incident.ack_again", number=incident.id))]
    return [Reply(ctx.t("incident.ack_done", number=incident.id))]


async def list_incidents(msg: Incoming, ctx: Context) -> list[Reply]:
    """/incidents: the latest incidents in the user's scope, who acknowledged, and ack buttons."""
    user = ctx.user
    assert user is not None
    with ctx.db.session() as s:
        rows = q.incidents_in_scope(s, user, limit=10)
        lines, buttons = [], []
        for incident, school in rows:
            acks = q.acks_of(s, incident.id or 0)
            who = ", ".join(a.display_name for a in acks) or ctx.t("incident.no_ack")
            when = incident.created_at.astimezone(ctx.clock.tz).strftime("%d/%m %H:%M")
            lines.append(
                ctx.t(
                    "incident.line",
                    number=incident.id,
                    school=school.name,
                    when=when,
                    severity=ctx.t(f"incident.level.{incident.severity}"),
                    who=who,
                )
            )
            if user.role in ("officer", "leader") and all(a.id != user.id for a in acks):
                buttons.append((Choice(ctx.t("btn.ack_number", number=incident.id), f"k:{incident.id}"),))
    if not lines:
        return [Reply(ctx.t("incident.none"))]
    return [Reply(ctx.t("incident.list") + "\n" + "\n".join(lines), tuple(buttons))]


INCIDENT_FORM = Form(
    name="incident",
    title="incident.title",
    roles=frozenset({"principal"}),
    submit=submit,
    steps=(
        Step("what", "incident.what", StepKind.LONGTEXT),
        Step("when", "incident.when", StepKind.DATE, past_only=True),
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
        Step("actions", "incident.actions", StepKind.LONGTEXT, optional=True),
        offering("severity", "incident.severity", "incident.level", SEVERITIES),
    ),
)
