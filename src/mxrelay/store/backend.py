"""The store's backend contract: `Database`, the dialects, where a store lives, and the errors.

A `Database` runs work in transactions, handed in as plain functions of a SQLAlchemy `Connection`.
Everything above the backends (message log, queue, retention, search) receives a `Database` and
never builds an engine. The backends are `sqlite.py` and `postgres.py`; `open.py` picks one from
`MXRELAY_DATABASE_URL`. The named queries of `sql/*.sql` are read here, once per dialect.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import TextClause, bindparam, text
from sqlalchemy.engine import URL

T = TypeVar("T")


class Dialect(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class StoreError(Exception):
    """The store cannot be used (unreachable, locked, read-only, full, not migrated)."""


class StoreLocked(StoreError):
    """Another process holds the SQLite database."""


class SchemaOutdated(StoreError):
    """The database has not been upgraded to this version's schema."""


class BadDatabaseUrl(StoreError):
    """`MXRELAY_DATABASE_URL` is not a URL of a store this version can open (a configuration
    error: the settings check it before anything starts)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"MXRELAY_DATABASE_URL {problem}")
        self.problem = problem
        """What is wrong, as a phrase after the value ("is not a database URL")."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the store lives: the dialect, the async driver URL, and (SQLite) the file."""

    dialect: Dialect
    url: URL
    path: Path | None = None


def load_queries(dialect: Dialect) -> dict[str, str]:
    """Named queries of `dialect`: those of `sql/common.sql`, then those of `sql/<dialect>.sql`
    (the ones that differ between dialects)."""
    sql = resources.files("mxrelay.store").joinpath("sql")
    queries = _named_queries(sql.joinpath("common.sql").read_text())
    queries.update(_named_queries(sql.joinpath(f"{dialect.value}.sql").read_text()))
    return queries


def _named_queries(text: str) -> dict[str, str]:
    """The queries of one file, each under a `-- name: <name>` line."""
    queries: dict[str, str] = {}
    name: str | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("-- name:"):
            if name is not None:
                queries[name] = "\n".join(lines).strip()
            name, lines = line.removeprefix("-- name:").strip(), []
        elif name is not None and not line.startswith("--"):
            lines.append(line)
    if name is not None:
        queries[name] = "\n".join(lines).strip()
    return queries


_LIST_PARAMETER = re.compile(r"\bIN\s+:(\w+)", re.IGNORECASE)


def statement(sql: str) -> TextClause:
    """A named query as a statement. A parameter written `IN :name` takes a list: it expands to
    one placeholder per item (`IN (?, ?, ?)`)."""
    lists = dict.fromkeys(_LIST_PARAMETER.findall(sql))
    return text(sql).bindparams(*(bindparam(name, expanding=True) for name in lists))


class IndexWriter(Protocol):
    """Writes rows of the search index behind the commit of their messages (`indexing.py`)."""

    async def flush(self) -> None:
        """Until the rows of every message committed so far are written."""
        ...


class Database(abc.ABC):
    """An open store. Work is handed in as plain functions of a SQLAlchemy `Connection`:

    `await db.write(fn, *args)` runs `fn(conn, *args)` in one write transaction and returns its
    result once the transaction is committed (made durable included); `await db.read(fn, *args)`
    runs it in a read transaction. `durable=False` marks a write whose loss in a crash only
    repeats work (a claim, a lease renewal, a delivery result that sends a message again): it is
    committed without waiting for the disk, and becomes durable with the next durable commit.
    """

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dialect = target.dialect
        self.child_fds: tuple[int, ...] = ()
        """Descriptors a child process of the relay inherits to count as part of it (the SQLite
        lock's), set by `open_store`."""
        self.statements: dict[str, TextClause] = {
            name: statement(sql) for name, sql in load_queries(target.dialect).items()
        }
        """The named queries (`load_queries`), built once."""
        self.index_writer: IndexWriter | None = None
        """Set while the relay writes the search index behind the commit (`indexing.py`)."""

    async def indexed(self) -> None:
        """Until the search index has every message committed so far: what a reader of the
        index (a search, a deletion) awaits first, so that it sees every message answered 250."""
        if self.index_writer is not None:
            await self.index_writer.flush()

    @abc.abstractmethod
    async def write(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T: ...

    async def write_batch(
        self,
        fn: Callable[..., T],
        *args: Any,
        durable: bool = True,
        alone: bool = False,
        one_statement: bool = False,
    ) -> tuple[T, Awaitable[None] | None]:
        """`write` for the group committer's batches: `fn`'s result once the transaction is
        committed, and, if that commit is not on disk yet, an awaitable that completes once it
        is (or raises if it cannot be). A backend that makes a commit durable apart from writing
        it overrides this (`sqlite.py`); by default it is `write`. `alone`: nothing else waits
        to be written or made durable, so the writer may as well wait for the disk at once.
        `one_statement`: `fn` issues exactly one statement, which a server that commits each
        statement outside a transaction as its own may run so (`postgres.py`)."""
        return await self.write(fn, *args, durable=durable), None

    @abc.abstractmethod
    async def read(self, fn: Callable[..., T], *args: Any) -> T: ...

    @contextlib.asynccontextmanager
    async def migration_lock(self) -> AsyncIterator[None]:
        """Held while this process migrates the schema; by default nothing to do (SQLite: the
        file's lock already keeps other relays out)."""
        yield

    @abc.abstractmethod
    async def dispose(self) -> None: ...


def describe_error(exc: BaseException, limit: int = 300) -> str:
    """The driver's own words, first line only (never SQL text or parameters, which may carry
    addresses), at most `limit` characters."""
    orig = getattr(exc, "orig", None)
    base = orig if isinstance(orig, BaseException) else exc
    text = str(base).splitlines()[0] if str(base) else ""
    return f"{type(base).__name__}: {text}"[:limit] if text else type(base).__name__
