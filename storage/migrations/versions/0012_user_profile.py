"""user profile: the person's full name, position at the school and callback phone

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 20:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing accounts keep "" and are shown by their platform name until they fill /profile.
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "full_name", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "position", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("user", schema=None) as batch_op:
        batch_op.drop_column("phone")
        batch_op.drop_column("position")
        batch_op.drop_column("full_name")
