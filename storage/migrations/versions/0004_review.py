"""review actions, officer levels

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 04:30:30.645699
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reviewaction",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("reviewaction", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviewaction_submission_id"), ["submission_id"], unique=False)

    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "levels", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=""
            )
        )

    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "levels", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default=""
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("levels")

    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_column("levels")

    with op.batch_alter_table("reviewaction", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reviewaction_submission_id"))

    op.drop_table("reviewaction")
