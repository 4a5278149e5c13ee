"""The store's settings: the database (`store_url` checks the URL as the store opens it),
SQLite durability and reader cache, group commit, and the retention of bodies, of the message log
and of the audit log.

Read by `store/`.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from mxrelay.config.values import (
    Duration,
    SettingsGroup,
    Size,
    duration_setting,
    int_setting,
    setting,
    size_setting,
)

STORE_BACKENDS = ("sqlite", "postgresql", "postgres")


def store_url(text: str) -> URL:
    """`MXRELAY_DATABASE_URL` parsed, or ValueError with the problem in words (never the URL, which
    may hold a password). The settings check it at load time; the store opens what it returns."""
    try:
        url = make_url(text)
    except (ArgumentError, ValueError):
        raise ValueError("is not a database URL") from None
    backend = url.get_backend_name()
    if backend not in STORE_BACKENDS:
        raise ValueError(f"names a database this relay does not support ({backend})")
    if backend == "sqlite" and (not url.database or url.database == ":memory:"):
        raise ValueError("names no SQLite file (sqlite:///path/to/file.db)")
    return url


class StoreSettings(SettingsGroup):
    database_url: str = setting(
        "sqlite:///./data/mxrelay.db",
        env="MXRELAY_DATABASE_URL",
        form="sqlite:///path or postgresql://user@host/db",
        secret=False,
        help="Store and queue.",
    )
    synchronous: Literal["full", "normal"] = setting(
        "full",
        env="MXRELAY_STORE_SYNCHRONOUS",
        form="full or normal",
        help="SQLite: fsync the log at every commit (full), or only at checkpoints (normal: "
        "faster, but a power cut may lose the last commits). PostgreSQL uses its own settings.",
    )
    sqlite_read_cache: Size = size_setting(
        "64MiB",
        env="MXRELAY_STORE_SQLITE_READ_CACHE",
        least="2MiB",
        most="4GiB",
        help="SQLite: page cache of each reader connection (one per reader thread, four in each "
        "process), at most; it grows only with what is read. Searches of a large message log "
        "read tens of megabytes of index; pages not cached are read again from the file.",
    )
    commit_window: Duration = duration_setting(
        "1ms",
        env="MXRELAY_STORE_COMMIT_WINDOW",
        least="0s",
        most="1s",
        note="0s = commit as soon as the previous commit ends",
        help="How long a commit waits for other sessions' messages to share its fsync.",
    )
    commit_batch_limit: int = int_setting(
        256,
        env="MXRELAY_STORE_COMMIT_BATCH_LIMIT",
        least=1,
        most=10_000,
        help="Most writes (messages, delivery results) committed together in one transaction.",
    )
    body_retention: Duration = duration_setting(
        "30d",
        env="MXRELAY_STORE_BODY_RETENTION",
        least="1h",
        most="3650d",
        help="Age after which message bodies are pruned (never while the message is queued).",
    )
    body_max_size: Size = setting(
        "5GiB",
        env="MXRELAY_STORE_BODY_MAX_SIZE",
        form="a size such as 5GiB",
        ge=0,
        help="Total size of stored (compressed) bodies; past it the oldest are pruned (0 = no cap).",
    )
    log_retention: Duration = duration_setting(
        "180d",
        env="MXRELAY_STORE_LOG_RETENTION",
        least="1h",
        most="3650d",
        help="Age after which message metadata, delivery attempts and refusals are pruned.",
    )
    audit_retention: Duration = duration_setting(
        "730d",
        env="MXRELAY_STORE_AUDIT_RETENTION",
        least="1d",
        most="3650d",
        help="Age after which audit log entries (who deleted, released, sent, retried or tagged "
        "what through the API) are pruned.",
    )
    prune_interval: Duration = duration_setting(
        "1m",
        env="MXRELAY_STORE_PRUNE_INTERVAL",
        least="1s",
        most="1d",
        help="Time between pruning runs (each run works through bounded batches).",
    )
    prune_batch_limit: int = int_setting(
        1000,
        env="MXRELAY_STORE_PRUNE_BATCH_LIMIT",
        least=1,
        most=100_000,
        help="Rows deleted per pruning transaction, so pruning never holds the store for long.",
    )
