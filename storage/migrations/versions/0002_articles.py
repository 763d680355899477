"""articles: versions, review, lateness, plan themes

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 04:04:38.568177
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plantheme",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("office_id", sa.Integer(), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("theme", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("notes", sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=False),
        sa.ForeignKeyConstraint(
            ["office_id"],
            ["office.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("office_id", "period", "theme"),
    )
    with op.batch_alter_table("plantheme", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plantheme_office_id"), ["office_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_plantheme_period"), ["period"], unique=False)

    op.create_table(
        "submissionversion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submission.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("submission_id", "version"),
    )
    with op.batch_alter_table("submissionversion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_submissionversion_submission_id"), ["submission_id"], unique=False
        )

    with op.batch_alter_table("mediafile", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, server_default="")
        )

    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("submitted_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "review_note",
                sqlmodel.sql.sqltypes.AutoString(length=2000),
                nullable=False,
                server_default="",
            )
        )
        batch_op.add_column(sa.Column("reviewed_by_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.create_foreign_key("fk_submission_reviewed_by_id_user", "user", ["reviewed_by_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_constraint("fk_submission_reviewed_by_id_user", type_="foreignkey")
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("reviewed_by_id")
        batch_op.drop_column("review_note")
        batch_op.drop_column("submitted_at")
        batch_op.drop_column("late")

    with op.batch_alter_table("mediafile", schema=None) as batch_op:
        batch_op.drop_column("note")

    with op.batch_alter_table("submissionversion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_submissionversion_submission_id"))

    op.drop_table("submissionversion")
    with op.batch_alter_table("plantheme", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plantheme_period"))
        batch_op.drop_index(batch_op.f("ix_plantheme_office_id"))

    op.drop_table("plantheme")
