"""leaders' status: covering indexes for the month's rows per school and each school's joining date

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 05:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain CREATE INDEX: SQLite needs no table rebuild for an index (a batch rebuild of "user" would
    # trip over the foreign keys pointing at it).
    op.create_index(
        "ix_submission_kind_period_school",
        "submission",
        ["kind", "period", "school_id", "late", "status"],
        unique=False,
    )
    op.create_index("ix_user_school_role_created", "user", ["school_id", "role", "created_at"], unique=False)
    op.create_index(op.f("ix_incident_created_at"), "incident", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_incident_created_at"), table_name="incident")
    op.drop_index("ix_user_school_role_created", table_name="user")
    op.drop_index("ix_submission_kind_period_school", table_name="submission")
