"""draft: on SQLite an id is never given again (AUTOINCREMENT)

A form's button names its draft by id and version. SQLite gave a dropped draft's id to the next draft
made (its rowid was the largest), so a button left on an old screen of a cancelled or restarted form
could act on the new draft; PostgreSQL's sequences never give an id twice.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 15:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "draft", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
