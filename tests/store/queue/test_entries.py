"""Queue entries as values: the states an operator may name, and the columns an entry is read from."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Connection

from mxrelay.model import QueueState
from mxrelay.store.backend import Database
from mxrelay.store.queue.entries import ENTRY_COLUMNS
from tests.store.helpers import T0, accept, record

NOW = T0.timestamp()


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("queued", QueueState.QUEUED),
        ("Deferred", QueueState.DEFERRED),
        ("delivering", QueueState.ACTIVE),
        ("leased", QueueState.ACTIVE),
        ("failed", QueueState.DEAD),
        ("DEAD", QueueState.DEAD),
    ],
)
def test_an_operator_names_a_state_in_its_words_or_ours(name: str, state: QueueState) -> None:
    assert QueueState.parse(name) is state


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="sending"):
        QueueState.parse("sending")


async def test_the_statements_that_read_entries_name_their_columns_in_order(db: Database) -> None:
    """`entry_from_row` reads rows by position: `claim` (one per dialect) and `entry_by_key`
    return the columns of ENTRY_COLUMNS, in that order."""
    rec = record()
    await accept(db, rec)

    def columns(conn: Connection, name: str, params: dict[str, object]) -> tuple[str, ...]:
        return tuple(conn.execute(db.statements[name], params).keys())

    params = {"message_id": rec.id, "variant": 0}
    assert await db.read(columns, "entry_by_key", params) == ENTRY_COLUMNS
    claim = {"owner": "w", "limit": 1, "now": NOW, "expires": NOW + 60}
    assert await db.write(columns, "claim", claim) == ENTRY_COLUMNS
