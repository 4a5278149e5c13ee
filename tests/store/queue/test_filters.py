"""The operator's filters on the queue, on SQLite and PostgreSQL."""

from __future__ import annotations

from mxrelay.model import QueueState
from mxrelay.store.backend import Database
from mxrelay.store.queue.admin import QueueAdmin
from mxrelay.store.queue.filters import QueueFilter
from tests.store.helpers import T0, accept, record, transaction

NOW = T0.timestamp()


async def test_list_filters(db: Database) -> None:
    admin = QueueAdmin(db)
    old = transaction(mail_from="app@example.net", recipients=("x@example.org",))
    new = transaction(
        mail_from="other@example.com",
        recipients=("y@example.org",),
        received_at=T0.replace(hour=13),
    )
    first, second = record(old), record(new)
    await accept(db, first, second)
    later = NOW + 7200

    async def keys(**kwargs: object) -> list[str]:
        rows = await admin.list_entries(QueueFilter(**kwargs), now=later)  # type: ignore[arg-type]
        return [row.mail_from for row in rows]

    assert await keys() == ["app@example.net", "other@example.com"]
    assert await keys(sender="APP@") == ["app@example.net"]
    assert await keys(recipient="y@example") == ["other@example.com"]
    assert await keys(older_than=5000.0) == ["app@example.net"]
    assert await keys(newer_than=5000.0) == ["other@example.com"]
    assert await keys(states=(QueueState.DEAD,)) == []
    assert await keys(message_ids=(second.id,)) == ["other@example.com"]
    assert await keys(sender="app@", recipient="y@example") == []  # combined with AND


async def test_sender_and_recipient_filters_take_wildcards_literally(db: Database) -> None:
    """`%` and `_` are characters to find, as in the message-log search, not LIKE wildcards."""
    admin = QueueAdmin(db)
    plain = transaction(mail_from="app@example.net", recipients=("ab@example.org",))
    odd = transaction(
        mail_from="a_p%p@example.net",
        recipients=("a_b@example.org",),
        received_at=T0.replace(hour=13),
    )
    await accept(db, record(plain), record(odd))

    async def senders(**kwargs: str) -> list[str]:
        rows = await admin.list_entries(QueueFilter(**kwargs), now=NOW + 7200)  # type: ignore[arg-type]
        return [row.mail_from for row in rows]

    assert await senders(sender="%") == ["a_p%p@example.net"]
    assert await senders(sender="a_p") == ["a_p%p@example.net"]
    assert await senders(recipient="a_b") == ["a_p%p@example.net"]
    assert await senders(recipient="_") == ["a_p%p@example.net"]
