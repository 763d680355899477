"""user registered_at: when an account got its role, so a school joins when its principal registers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 07:17:31.711982
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing accounts keep NULL: for them "joined" falls back to created_at, as before.
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registered_at", storage.models.UTCDateTime(), nullable=True))
        batch_op.drop_index("ix_user_school_role_created")
        batch_op.create_index(
            "ix_user_school_role_joined", ["school_id", "role", "registered_at", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_index("ix_user_school_role_joined")
        batch_op.create_index(
            "ix_user_school_role_created", ["school_id", "role", "created_at"], unique=False
        )
        batch_op.drop_column("registered_at")
