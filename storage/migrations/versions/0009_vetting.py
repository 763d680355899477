"""vetting: who sent each version and when its draft began; the words /find matches a submission by

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models
from storage.queries.submissions import search_text

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "search", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False, server_default=""
            )
        )
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.alter_column("search", server_default=None)
    # Versions sent before this revision keep NULL: the submission's sender stands for version 1.
    with op.batch_alter_table("submissionversion", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("drafted_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key("fk_submissionversion_user_id_user", "user", ["user_id"], ["id"])
    table = sa.table(
        "submission",
        sa.column("id", sa.Integer()),
        sa.column("kind", sa.String()),
        sa.column("answers", sa.JSON()),
        sa.column("search", sa.String()),
    )
    conn = op.get_bind()
    for row in conn.execute(sa.select(table.c.id, table.c.kind, table.c.answers)).all():
        words = search_text(row.kind, row.answers or {})
        conn.execute(sa.update(table).where(table.c.id == row.id).values(search=words))


def downgrade() -> None:
    with op.batch_alter_table("submissionversion", schema=None) as batch_op:
        batch_op.drop_constraint("fk_submissionversion_user_id_user", type_="foreignkey")
        batch_op.drop_column("drafted_at")
        batch_op.drop_column("user_id")
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_column("search")
