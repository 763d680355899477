"""incidents as cases: when it happened, the callback phone, the state and who holds it, the result,
the escalation; the messages on a case; the platform id of a sent outbox message (for edits)

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-30 20:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Incidents raised before this revision: acknowledged ones are taken by their first acknowledger.
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("happened_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column(
                "state", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default="new"
            )
        )
        batch_op.add_column(sa.Column("holder_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("acked_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("resolved_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "result", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "result_link",
                sqlmodel.sql.sqltypes.AutoString(length=2000),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(sa.Column("closed_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("escalated_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key("fk_incident_holder_id_user", "user", ["holder_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_incident_state"), ["state"], unique=False)
    op.execute(
        "UPDATE incident SET state = 'acked', "
        "holder_id = (SELECT a.user_id FROM incidentack a WHERE a.incident_id = incident.id "
        "ORDER BY a.created_at, a.id LIMIT 1), "
        "acked_at = (SELECT MIN(a.created_at) FROM incidentack a WHERE a.incident_id = incident.id) "
        "WHERE EXISTS (SELECT 1 FROM incidentack a WHERE a.incident_id = incident.id)"
    )
    op.create_table(
        "incidentmessage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("side", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("text", sqlmodel.sql.sqltypes.AutoString(length=4096), nullable=False),
        sa.Column("links", sa.JSON(), nullable=False),
        sa.Column("media", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("incidentmessage", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_incidentmessage_incident_id"), ["incident_id"], unique=False)
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("ref", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("ref")
    with op.batch_alter_table("incidentmessage", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidentmessage_incident_id"))
    op.drop_table("incidentmessage")
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_state"))
        batch_op.drop_constraint("fk_incident_holder_id_user", type_="foreignkey")
        for name in (
            "escalated_at",
            "closed_at",
            "result_link",
            "result",
            "resolved_at",
            "acked_at",
            "holder_id",
            "state",
            "phone",
            "happened_at",
        ):
            batch_op.drop_column(name)
