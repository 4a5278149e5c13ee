"""The first schema: messages, bodies, variants, recipients, queue, attempts, refusals, tags, search.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME = sa.Float(precision=53)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ID = sa.String(26)
ADDRESS = sa.String(512)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", ID, primary_key=True),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
        sa.Column("client_port", sa.Integer, nullable=False),
        sa.Column("helo", sa.String(255), nullable=False),
        sa.Column("esmtp", sa.Boolean, nullable=False),
        sa.Column("username", sa.String(255)),
        sa.Column("tls_version", sa.String(32)),
        sa.Column("tls_cipher", sa.String(128)),
        sa.Column("mail_from", ADDRESS, nullable=False),
        sa.Column("mail_params", sa.Text, nullable=False),
        sa.Column("smtputf8", sa.Boolean, nullable=False),
        sa.Column("body_8bitmime", sa.Boolean, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("header_from", sa.Text, nullable=False),
        sa.Column("header_to", sa.Text, nullable=False),
        sa.Column("message_id_header", sa.Text, nullable=False),
        sa.Column("snippet", sa.Text, nullable=False),
        sa.Column("attachments", sa.Integer, nullable=False),
        sa.Column("recipient_count", sa.Integer, nullable=False),
        sa.Column("transforms", sa.Text, nullable=False),
        sa.Column("received_header", sa.Text, nullable=False),
        sa.Column("transaction_id", sa.String(64), nullable=False),
        sa.Column("seen", sa.Boolean, nullable=False),
        sa.Column("body_pruned_at", TIME),
    )
    op.create_index("ix_messages_received_at", "messages", ["received_at"])
    op.create_index("ix_messages_mail_from", "messages", ["mail_from"])
    op.create_index("ix_messages_message_id_header", "messages", ["message_id_header"])

    op.create_table(
        "message_bodies",
        sa.Column("message_id", ID, primary_key=True),
        sa.Column("received_at", TIME, nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("stored_size", sa.Integer, nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_message_bodies_received_at", "message_bodies", ["received_at"])

    op.create_table(
        "variants",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("transforms", sa.Text, nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "variant"),
    )

    op.create_table(
        "recipients",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("address", ADDRESS, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("code", sa.Integer),
        sa.Column("enhanced", sa.String(16)),
        sa.Column("text", sa.Text),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_recipients_message", "recipients", ["message_id", "variant"])
    op.create_index("ix_recipients_address", "recipients", ["address"])

    op.create_table(
        "queue",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("queued_at", TIME, nullable=False),
        sa.Column("next_attempt_at", TIME, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", TIME),
        sa.Column("hold_kind", sa.String(16)),
        sa.Column("hold_reason", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("message_id", "variant", name="uq_queue_message_variant"),
    )
    waiting = sa.text("state IN ('queued', 'deferred')")
    op.create_index(
        "ix_queue_due",
        "queue",
        ["next_attempt_at"],
        sqlite_where=waiting,
        postgresql_where=waiting,
    )
    leased = sa.text("state = 'active'")
    op.create_index(
        "ix_queue_leases",
        "queue",
        ["lease_expires_at"],
        sqlite_where=leased,
        postgresql_where=leased,
    )
    op.create_index("ix_queue_state_created", "queue", ["state", "created_at"])

    op.create_table(
        "attempts",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("message_id", ID, nullable=False),
        sa.Column("variant", sa.Integer, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("duration", sa.Float(precision=53), nullable=False),
        sa.Column("transport", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("code", sa.Integer),
        sa.Column("enhanced", sa.String(16)),
        sa.Column("text", sa.Text),
        sa.Column("http_status", sa.Integer),
        sa.Column("error_code", sa.String(64)),
        sa.Column("remote_id", sa.String(255)),
        sa.Column("recipients", sa.Text, nullable=False),
    )
    op.create_index("ix_attempts_message", "attempts", ["message_id", "variant"])
    op.create_index("ix_attempts_started_at", "attempts", ["started_at"])

    op.create_table(
        "refusals",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("refused_at", TIME, nullable=False),
        sa.Column("client_address", sa.String(64), nullable=False),
        sa.Column("client_port", sa.Integer, nullable=False),
        sa.Column("helo", sa.String(255), nullable=False),
        sa.Column("username", sa.String(255)),
        sa.Column("mail_from", ADDRESS, nullable=False),
        sa.Column("recipient", ADDRESS, nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("enhanced", sa.String(16), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
    )
    op.create_index("ix_refusals_refused_at", "refusals", ["refused_at"])
    op.create_index("ix_refusals_recipient", "refusals", ["recipient"])

    op.create_table(
        "message_tags",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "tag"),
    )
    op.create_index("ix_message_tags_tag", "message_tags", ["tag"])

    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE message_search USING fts5("
            "message_id, subject, addresses, body, tokenize = 'unicode61')"
        )
    else:
        op.execute(
            "CREATE TABLE message_search ("
            " message_id VARCHAR(26) PRIMARY KEY,"
            " subject TEXT NOT NULL,"
            " addresses TEXT NOT NULL,"
            " body TEXT NOT NULL,"
            " document tsvector GENERATED ALWAYS AS (to_tsvector('simple',"
            " subject || ' ' || addresses || ' ' || body)) STORED)"
        )
        op.execute("CREATE INDEX ix_message_search_document ON message_search USING gin (document)")


def downgrade() -> None:
    op.execute("DROP TABLE message_search")
    for table in (
        "message_tags",
        "refusals",
        "attempts",
        "queue",
        "recipients",
        "variants",
        "message_bodies",
        "messages",
    ):
        op.drop_table(table)
