"""cancelleddraft: a cancelled draft kept for a day, so that /drafts can restore it

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 17:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cancelleddraft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("form", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("step", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("mode", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("cancelled_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("cancelleddraft", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_cancelleddraft_user_id"), ["user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_cancelleddraft_cancelled_at"), ["cancelled_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cancelleddraft", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cancelleddraft_cancelled_at"))
        batch_op.drop_index(batch_op.f("ix_cancelleddraft_user_id"))
    op.drop_table("cancelleddraft")
