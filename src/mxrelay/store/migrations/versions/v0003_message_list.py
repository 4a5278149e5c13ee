"""The message list as Mailpit's API has it: address lists, searchable header fields, tags by id,
read counts kept by triggers, and the indexes the search filters use.

- `messages.addresses` (Mailpit's From/To/Cc/Bcc/ReplyTo with display names, as JSON) and
  `messages.inline_parts`: filled at ingest; NULL on older rows means "not known yet", and a
  bounded background backfill (`store/fields.py`) reads them from the stored bytes later.
- `message_fields`: each message's header fields lower-cased for substring search; on SQLite an
  FTS5 trigram index (`message_fields_search`, external content, kept by triggers), on PostgreSQL a
  `pg_trgm` GIN index on the same text (skipped, with LIKE still answering, where the extension
  cannot be created).
- `tags` (one row per tag, `key` its lower-cased name: tags are case-insensitive, as in Mailpit)
  and `message_tags` by tag id (rebuilt: nothing wrote the old table, rows are carried over).
- `message_counts`: total and unread messages, kept by triggers on `messages` in the writing
  transaction, so a listing never counts the whole table.
- Indexes for `status:` (recipients by state), `transport:` (attempts by transport), counting a
  search's unread matches (messages by id and read flag) and the backfill (messages whose address
  lists are not known yet).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ID = sa.String(26)
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COUNT = sa.BigInteger()
PG_COUNT_SHARDS = 16

FIELDS = (
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
HAYSTACK = " || ' ' || ".join(FIELDS)
"""The text the trigram index covers (the same expression as `store/search_sql.py`'s)."""

BIG_TABLE_INDEXES = (
    ("ix_recipients_state", "recipients", ("state", "message_id"), None),
    ("ix_attempts_transport", "attempts", ("transport", "message_id"), None),
    ("ix_messages_unfilled", "messages", ("id",), "addresses IS NULL"),
    ("ix_messages_seen", "messages", ("id", "seen"), None),
)
"""`ix_messages_seen` is unique (so is its first column): it lets a search count its matches and
their unread ones from the index alone."""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    _add_columns()
    _index_big_tables(dialect)
    _create_fields(dialect)
    _rebuild_tags()
    _create_counts(dialect)


def _add_columns() -> None:
    """Nullable columns without a default: no table rewrite on either database."""
    op.add_column("messages", sa.Column("addresses", sa.Text))
    op.add_column("messages", sa.Column("inline_parts", sa.Integer))


def _index_big_tables(dialect: str) -> None:
    """Indexes on tables that may hold millions of rows. The migrations run in one transaction
    (`store/migrate.py`), where PostgreSQL cannot build an index concurrently: the build holds
    writers back for its duration (seconds per million rows). An operator of a large store who
    cannot have that builds them beforehand with `CREATE INDEX CONCURRENTLY` under these names
    (the README says how), and the migration leaves them be (`IF NOT EXISTS`)."""
    for name, table, columns, where in BIG_TABLE_INDEXES:
        condition = sa.text(where) if where else None
        op.create_index(
            name,
            table,
            list(columns),
            unique=name == "ix_messages_seen",
            sqlite_where=condition,
            postgresql_where=condition,
            if_not_exists=dialect == "postgresql",
        )


def _create_fields(dialect: str) -> None:
    op.create_table(
        "message_fields",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("message_id", ID, nullable=False),
        *(sa.Column(name, sa.Text, nullable=False) for name in FIELDS),
        sa.UniqueConstraint("message_id", name="uq_message_fields_message"),
    )
    if dialect == "sqlite":
        # The message ids of full-text matches read from an index of FTS5's content table
        # (`id`, the match's rowid; `c0`, its first column, `message_id`) rather than row by row
        # through FTS5: a word in one message in a hundred is ten thousand rows at a million.
        op.execute("CREATE INDEX ix_message_search_key ON message_search_content (id, c0)")
        op.execute(
            f"CREATE VIEW message_fields_haystack AS SELECT id, {HAYSTACK} AS haystack "
            "FROM message_fields"
        )
        op.execute(
            "CREATE VIRTUAL TABLE message_fields_search USING fts5(haystack, "
            "content='message_fields_haystack', content_rowid='id', tokenize='trigram', "
            "detail='none')"
        )
        new = " || ' ' || ".join(f"new.{name}" for name in FIELDS)
        old = " || ' ' || ".join(f"old.{name}" for name in FIELDS)
        forget = (
            "INSERT INTO message_fields_search (message_fields_search, rowid, haystack) "
            f"VALUES ('delete', old.id, {old});"
        )
        learn = f"INSERT INTO message_fields_search (rowid, haystack) VALUES (new.id, {new});"
        op.execute(
            f"CREATE TRIGGER message_fields_ai AFTER INSERT ON message_fields BEGIN {learn} END"
        )
        op.execute(
            f"CREATE TRIGGER message_fields_ad AFTER DELETE ON message_fields BEGIN {forget} END"
        )
        op.execute(
            "CREATE TRIGGER message_fields_au AFTER UPDATE ON message_fields "
            f"BEGIN {forget} {learn} END"
        )
        return
    bind = op.get_bind()
    savepoint = bind.begin_nested()
    try:
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except sa.exc.DBAPIError:
        # No right to create it: substring filters still work (LIKE), without an index.
        savepoint.rollback()
        return
    savepoint.commit()
    op.execute(
        "CREATE INDEX ix_message_fields_trgm ON message_fields "
        f"USING gin (({HAYSTACK}) gin_trgm_ops)"
    )


def _rebuild_tags() -> None:
    op.create_table(
        "tags",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.UniqueConstraint("key", name="uq_tags_key"),
    )
    op.execute(
        "INSERT INTO tags (name, key) SELECT MIN(tag), lower(tag) FROM message_tags "
        "GROUP BY lower(tag)"
    )
    op.rename_table("message_tags", "message_tags_old")
    op.drop_index("ix_message_tags_tag", table_name="message_tags_old")
    op.create_table(
        "message_tags",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("tag_id", ROW_ID, nullable=False),
        sa.PrimaryKeyConstraint("message_id", "tag_id"),
    )
    op.create_index("ix_message_tags_tag_id", "message_tags", ["tag_id", "message_id"])
    op.execute(
        "INSERT INTO message_tags (message_id, tag_id) SELECT DISTINCT o.message_id, t.id "
        "FROM message_tags_old o JOIN tags t ON t.key = lower(o.tag)"
    )
    op.drop_table("message_tags_old")


def _create_counts(dialect: str) -> None:
    op.create_table(
        "message_counts",
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("total", COUNT, nullable=False),
        sa.Column("unread", COUNT, nullable=False),
    )
    if dialect == "sqlite":
        for statement in _SQLITE_COUNT_TRIGGERS:
            op.execute(statement)
    else:
        for statement in _PG_COUNT_TRIGGERS:
            op.execute(statement)
    # The triggers exist from here on (on PostgreSQL they lock out writers until the commit), so
    # counting once now and adding every change later keeps the figures exact.
    op.execute(
        "INSERT INTO message_counts (shard, total, unread) SELECT 0, COUNT(*), "
        "COALESCE(SUM(CASE WHEN seen THEN 0 ELSE 1 END), 0) FROM messages"
    )


_SQLITE_COUNT_TRIGGERS = (
    "CREATE TRIGGER message_counts_ai AFTER INSERT ON messages BEGIN "
    "UPDATE message_counts SET total = total + 1, "
    "unread = unread + (CASE WHEN new.seen THEN 0 ELSE 1 END) WHERE shard = 0; END",
    "CREATE TRIGGER message_counts_ad AFTER DELETE ON messages BEGIN "
    "UPDATE message_counts SET total = total - 1, "
    "unread = unread - (CASE WHEN old.seen THEN 0 ELSE 1 END) WHERE shard = 0; END",
    "CREATE TRIGGER message_counts_au AFTER UPDATE OF seen ON messages "
    "WHEN old.seen <> new.seen BEGIN "
    "UPDATE message_counts SET unread = unread + (CASE WHEN new.seen THEN -1 ELSE 1 END) "
    "WHERE shard = 0; END",
)

# Statement-level triggers (one update per statement, not per row), each on a row of its own per
# connection (`pg_backend_pid() % shards`), so replicas committing at once do not queue on one row.
_PG_COUNT_FUNCTION = """
CREATE FUNCTION message_counts_{name}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO message_counts AS c (shard, total, unread)
    SELECT pg_backend_pid() % {shards}, {total}, {unread}
    {source}
    ON CONFLICT (shard) DO UPDATE
    SET total = c.total + excluded.total, unread = c.unread + excluded.unread;
    RETURN NULL;
END $$
"""
_UNREAD = "COUNT(*) FILTER (WHERE NOT seen)"
_PG_COUNT_TRIGGERS = (
    _PG_COUNT_FUNCTION.format(
        name="insert",
        shards=PG_COUNT_SHARDS,
        total="COUNT(*)",
        unread=_UNREAD,
        source="FROM new_rows HAVING COUNT(*) > 0",
    ),
    _PG_COUNT_FUNCTION.format(
        name="delete",
        shards=PG_COUNT_SHARDS,
        total="-COUNT(*)",
        unread=f"-{_UNREAD}",
        source="FROM old_rows HAVING COUNT(*) > 0",
    ),
    _PG_COUNT_FUNCTION.format(
        name="update",
        shards=PG_COUNT_SHARDS,
        total="0",
        unread=f"(SELECT {_UNREAD} FROM new_rows) - (SELECT {_UNREAD} FROM old_rows)",
        source=f"WHERE (SELECT {_UNREAD} FROM new_rows) <> (SELECT {_UNREAD} FROM old_rows)",
    ),
    "CREATE TRIGGER message_counts_insert AFTER INSERT ON messages "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION message_counts_insert()",
    "CREATE TRIGGER message_counts_delete AFTER DELETE ON messages "
    "REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION message_counts_delete()",
    "CREATE TRIGGER message_counts_update AFTER UPDATE ON messages "
    "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION message_counts_update()",
)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, _, _ in reversed(BIG_TABLE_INDEXES):
        op.drop_index(name, table_name=table)
    if dialect == "sqlite":
        for trigger in (
            "message_counts_ai",
            "message_counts_ad",
            "message_counts_au",
            "message_fields_ai",
            "message_fields_ad",
            "message_fields_au",
        ):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE message_fields_search")
        op.execute("DROP VIEW message_fields_haystack")
        op.execute("DROP INDEX ix_message_search_key")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER message_counts_{name} ON messages")
            op.execute(f"DROP FUNCTION message_counts_{name}()")
    op.drop_table("message_counts")
    op.rename_table("message_tags", "message_tags_new")
    op.create_table(
        "message_tags",
        sa.Column("message_id", ID, nullable=False),
        sa.Column("tag", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "tag"),
    )
    op.create_index("ix_message_tags_tag", "message_tags", ["tag"])
    op.execute(
        "INSERT INTO message_tags (message_id, tag) SELECT n.message_id, t.name "
        "FROM message_tags_new n JOIN tags t ON t.id = n.tag_id"
    )
    op.drop_table("message_tags_new")
    op.drop_table("tags")
    op.drop_table("message_fields")
    op.drop_column("messages", "inline_parts")
    op.drop_column("messages", "addresses")
