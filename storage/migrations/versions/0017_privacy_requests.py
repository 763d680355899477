"""privacyrequest: the record of people's requests to see or erase their data (Decree 13/2023)

Revision ID: 0017
Revises: 0015
Create Date: 2026-11-30 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import storage.models

revision: str = "0017"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "privacyrequest",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("person", sa.Integer(), nullable=False),
        sa.Column("asked_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("privacyrequest", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacyrequest_person"), ["person"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("privacyrequest", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacyrequest_person"))
    op.drop_table("privacyrequest")
