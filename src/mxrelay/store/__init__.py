"""The store: message log, refusals, delivery attempts and the durable queue (SQLite/PostgreSQL)."""
