"""The current schema of the store, as SQLAlchemy Core tables.

The migrations in `migrations/versions/` build this schema (a test compares the two on both
dialects); queries use these tables, or the named statements in `sql/`. Layout, by use:

- `messages`: one row per accepted message: envelope, session, headers worth listing (subject, From,
  To, Message-ID), a text snippet, size and SHA-256 of the bytes as received, the relay's `Received:`
  header (prepended on every delivery attempt, so retries send the same bytes), `seen` for the
  Mailpit-style read flag. Kept for `MXRELAY_STORE_LOG_RETENTION`.
- `message_bodies`: the raw bytes as received, compressed; kept for `MXRELAY_STORE_BODY_RETENTION`
  and within `MXRELAY_STORE_BODY_MAX_SIZE` (never pruned while the message is still queued).
- `variants`: how a message is split for delivery (the calendar transform, `MXRELAY_ICS_STRIP`,
  may send a stripped copy to some recipients): the transforms to apply to the stored bytes, and the hash and
  size of the bytes that variant sends.
- `recipients`: each accepted recipient, its variant, its delivery state and the last reply.
- `queue`: one entry per variant still owned by the queue (state, next attempt, lease); entries stay
  after delivery (state `delivered` or `dead`) as history and leave with the message.
- `attempts`: every delivery attempt with its timing, transport, outcome and remote reply.
- `refusals`: every recipient refused at RCPT, with the client, the sender and the reply.
- `message_fields`: each message's header fields lower-cased for substring search (`search_sql.py`):
  envelope sender, From, To, Cc, Bcc (with the envelope-only recipients), Reply-To, the recipients
  its transaction had refused, Subject and Message-ID; indexed by trigrams (created by the
  migration, not here: an FTS5 table on SQLite, a `pg_trgm` index on PostgreSQL).
- `tags`, `message_tags`: tags as Mailpit has them (a name, case-insensitive: `key` is the name
  lower-cased) and which messages carry them (`store/tags.py`); an `X-Tags` header sets them at
  ingest; retention deletes a message's with the message.
- `message_counts`: total and unread messages, kept by triggers on `messages` (created by the
  migration) in the transaction that changes them: a listing reads them instead of counting.
- `pacing_lanes`, `pacing_promises`: Graph's per-mailbox pacing state, shared by the replicas of
  one queue (`store/lanes.py`): a JSON state per sending mailbox plus the app-wide row `''`, and
  the slots promised to messages waiting in the queue.
- `audit_log`: who did what through the API (delete, mark read, tag, release, retry, send), when,
  from where, to how many, and how it ended (`store/audit.py`); kept for
  `MXRELAY_STORE_AUDIT_RETENTION`.
- `log_changes`: the outbox of what the API changed (deleted, read, tagged, truncated, queue
  actions), one row per event for the live events' pollers (`changes.py`); kept minutes, not days.
  Its keys are never reused (AUTOINCREMENT on SQLite), so a poller's cursor stays true.
- `messages.released_from`: set on a copy released from a stored message (`POST
  /api/v1/message/{ID}/release`), the original's id.
- `message_search` (created by the migration, not here): the full-text index over subject, addresses
  and text body: an FTS5 table on SQLite, a `tsvector` column with a GIN index on PostgreSQL.

Times are epoch seconds (double precision) and message ids are ULIDs (text, sortable by arrival).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData()

Time = Float(precision=53)
RowId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key on PostgreSQL; SQLite's rowid alias must be spelled INTEGER."""

ID_LENGTH = 26
ADDRESS_LENGTH = 512

messages = Table(
    "messages",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("received_at", Time, nullable=False),
    Column("client_address", String(64), nullable=False),
    Column("client_port", Integer, nullable=False),
    Column("helo", String(255), nullable=False),
    Column("esmtp", Boolean, nullable=False),
    Column("username", String(255)),
    Column("tls_version", String(32)),
    Column("tls_cipher", String(128)),
    Column("mail_from", String(ADDRESS_LENGTH), nullable=False),
    Column("mail_params", Text, nullable=False),
    Column("smtputf8", Boolean, nullable=False),
    Column("body_8bitmime", Boolean, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("subject", Text, nullable=False),
    Column("header_from", Text, nullable=False),
    Column("header_to", Text, nullable=False),
    Column("message_id_header", Text, nullable=False),
    Column("snippet", Text, nullable=False),
    Column("attachments", Integer, nullable=False),
    Column("recipient_count", Integer, nullable=False),
    Column("transforms", Text, nullable=False),
    Column("received_header", Text, nullable=False),
    Column("transaction_id", String(64), nullable=False),
    Column("seen", Boolean, nullable=False),
    Column("body_pruned_at", Time),
    Column("released_from", String(ID_LENGTH)),
    # Mailpit's From, To, Cc, Bcc and ReplyTo with display names (JSON, `store/fields.py`), and
    # the number of inline parts; NULL on rows older than these columns, until the backfill has
    # read them from the stored bytes.
    Column("addresses", Text),
    Column("inline_parts", Integer),
    Index("ix_messages_received_at", "received_at"),
    Index("ix_messages_mail_from", "mail_from"),
    Index("ix_messages_message_id_header", "message_id_header"),
    Index(
        "ix_messages_unfilled",
        "id",
        sqlite_where=text("addresses IS NULL"),
        postgresql_where=text("addresses IS NULL"),
    ),
    Index("ix_messages_seen", "id", "seen", unique=True),
)

message_bodies = Table(
    "message_bodies",
    metadata,
    Column("message_id", String(ID_LENGTH), primary_key=True),
    Column("received_at", Time, nullable=False),
    Column("encoding", String(16), nullable=False),
    Column("stored_size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Index("ix_message_bodies_received_at", "received_at"),
)

variants = Table(
    "variants",
    metadata,
    Column("message_id", String(ID_LENGTH), nullable=False),
    Column("variant", Integer, nullable=False),
    Column("transforms", Text, nullable=False),
    Column("report", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    PrimaryKeyConstraint("message_id", "variant"),
)

recipients = Table(
    "recipients",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("message_id", String(ID_LENGTH), nullable=False),
    Column("variant", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("address", String(ADDRESS_LENGTH), nullable=False),
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("code", Integer),
    Column("enhanced", String(16)),
    Column("text", Text),
    Column("updated_at", Time, nullable=False),
    Index("ix_recipients_message", "message_id", "variant"),
    Index("ix_recipients_state", "state", "message_id"),
)

queue = Table(
    "queue",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("message_id", String(ID_LENGTH), nullable=False),
    Column("variant", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Time, nullable=False),
    Column("queued_at", Time, nullable=False),
    Column("next_attempt_at", Time, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", Time),
    Column("hold_kind", String(16)),
    Column("hold_reason", Text),
    Column("last_error", Text),
    Column("updated_at", Time, nullable=False),
    UniqueConstraint("message_id", "variant", name="uq_queue_message_variant"),
    Index(
        "ix_queue_due",
        "next_attempt_at",
        sqlite_where=text("state IN ('queued', 'deferred')"),
        postgresql_where=text("state IN ('queued', 'deferred')"),
    ),
    Index(
        "ix_queue_leases",
        "lease_expires_at",
        sqlite_where=text("state = 'active'"),
        postgresql_where=text("state = 'active'"),
    ),
    Index("ix_queue_state_created", "state", "created_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("message_id", String(ID_LENGTH), nullable=False),
    Column("variant", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("started_at", Time, nullable=False),
    Column("duration", Float(precision=53), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("owner", String(128), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("code", Integer),
    Column("enhanced", String(16)),
    Column("text", Text),
    Column("http_status", Integer),
    Column("error_code", String(64)),
    Column("remote_id", String(255)),
    Column("recipients", Text, nullable=False),
    Index("ix_attempts_message", "message_id", "variant"),
    Index("ix_attempts_started_at", "started_at"),
    Index("ix_attempts_transport", "transport", "message_id"),
)

refusals = Table(
    "refusals",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("refused_at", Time, nullable=False),
    Column("client_address", String(64), nullable=False),
    Column("client_port", Integer, nullable=False),
    Column("helo", String(255), nullable=False),
    Column("username", String(255)),
    Column("mail_from", String(ADDRESS_LENGTH), nullable=False),
    Column("recipient", String(ADDRESS_LENGTH), nullable=False),
    Column("code", Integer, nullable=False),
    Column("enhanced", String(16), nullable=False),
    Column("text", Text, nullable=False),
    Column("reason", String(32), nullable=False),
    Index("ix_refusals_refused_at", "refused_at"),
    Index("ix_refusals_recipient", "recipient"),
)

FIELD_COLUMNS = (
    "envelope_from",
    "from_list",
    "to_list",
    "cc_list",
    "bcc_list",
    "reply_to_list",
    "refused_list",
    "subject",
    "message_id_header",
)

message_fields = Table(
    "message_fields",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("message_id", String(ID_LENGTH), nullable=False),
    *(Column(name, Text, nullable=False) for name in FIELD_COLUMNS),
    UniqueConstraint("message_id", name="uq_message_fields_message"),
)

TAG_LENGTH = 255

tags = Table(
    "tags",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("name", String(TAG_LENGTH), nullable=False),
    Column("key", String(TAG_LENGTH), nullable=False),
    UniqueConstraint("key", name="uq_tags_key"),
)

message_tags = Table(
    "message_tags",
    metadata,
    Column("message_id", String(ID_LENGTH), nullable=False),
    Column("tag_id", RowId, nullable=False),
    PrimaryKeyConstraint("message_id", "tag_id"),
    Index("ix_message_tags_tag_id", "tag_id", "message_id"),
)

message_counts = Table(
    "message_counts",
    metadata,
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("total", BigInteger, nullable=False),
    Column("unread", BigInteger, nullable=False),
)

pacing_lanes = Table(
    "pacing_lanes",
    metadata,
    Column("lane", String(ADDRESS_LENGTH), primary_key=True),
    Column("state", Text, nullable=False),
    Column("updated_at", Time, nullable=False),
    Index("ix_pacing_lanes_updated_at", "updated_at"),
)

pacing_promises = Table(
    "pacing_promises",
    metadata,
    Column("lane", String(ADDRESS_LENGTH), nullable=False),
    Column("message", String(64), nullable=False),
    Column("slot", Time, nullable=False),
    PrimaryKeyConstraint("lane", "message"),
    Index("ix_pacing_promises_slot", "slot"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("at", Time, nullable=False),
    Column("actor", String(255), nullable=False),
    Column("client_address", String(64), nullable=False),
    Column("action", String(255), nullable=False),
    Column("target", Text, nullable=False),
    Column("count", Integer),
    Column("outcome", String(16), nullable=False),
    Index("ix_audit_log_at", "at"),
)

log_changes = Table(
    "log_changes",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("created_at", Time, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_log_changes_created_at", "created_at"),
    sqlite_autoincrement=True,
)
