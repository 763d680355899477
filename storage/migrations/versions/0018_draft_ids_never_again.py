"""draft, cancelleddraft: on SQLite an id is never given again (AUTOINCREMENT)

A form's button names its draft by id and version, a restore button its cancelled draft by id.
SQLite gave a dropped row's id to the next row made (its rowid was the largest), so a button left
on an old screen of a cancelled or restarted form could act on the new draft, and an old restore
button could bring back another cancelled draft than the one it named; PostgreSQL's sequences never
give an id twice.

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

TABLES = ("draft", "cancelleddraft")


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
