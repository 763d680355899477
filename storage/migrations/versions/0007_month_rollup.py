"""leaders' status: the month rollup (closed months' figures per office and level) and recent article changes

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 06:24:49.777404
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Empty at first: the clock's first sweep (at start) fills the chart's months, and a month asked for
    # before that is computed on the spot.
    op.create_table(
        "monthrollup",
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=7), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("level", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("expected", sa.Integer(), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("on_time", sa.Integer(), nullable=False),
        sa.Column("approved", sa.Integer(), nullable=False),
        sa.Column("published", sa.Integer(), nullable=False),
        sa.Column("articles", sa.Integer(), nullable=False),
        sa.Column("computed_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["office.id"],
        ),
        sa.PrimaryKeyConstraint("period", "office_id", "level"),
    )
    # Plain CREATE INDEX, as in 0005: no table rebuild for an index.
    op.create_index(
        "ix_submission_kind_updated", "submission", ["kind", "updated_at", "period"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_submission_kind_updated", table_name="submission")
    op.drop_table("monthrollup")
