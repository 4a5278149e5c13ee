"""Live events: the change outbox, the link from a released copy to its original, and (PostgreSQL)
the notifications that wake other replicas' event pollers.

Revision ID: 0005
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TIME = sa.Float(precision=53)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(26)

CHANNEL = "mxrelay_events"
NOTIFIED_TABLES = ("recipients", "attempts", "refusals", "log_changes")


def upgrade() -> None:
    op.add_column("messages", sa.Column("released_from", ID, nullable=True))
    op.create_table(
        "log_changes",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_log_changes_created_at", "log_changes", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        # One notification per committing statement (NOTIFY folds repeats within a transaction);
        # the payload names the table, the listener only needs to be woken.
        op.execute(
            "CREATE FUNCTION mxrelay_notify_events() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME); RETURN NULL; END $$"
        )
        for table in NOTIFIED_TABLES:
            op.execute(
                f"CREATE TRIGGER mxrelay_notify_{table} AFTER INSERT ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION mxrelay_notify_events()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in NOTIFIED_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS mxrelay_notify_{table} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS mxrelay_notify_events()")
    op.drop_index("ix_log_changes_created_at", table_name="log_changes")
    op.drop_table("log_changes")
    op.drop_column("messages", "released_from")
