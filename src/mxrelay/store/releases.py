"""Which stored message a released copy came from (`POST /api/v1/message/{ID}/release`).

The copy enters the pipeline as any message does and is stored under an id of its own; once it
is stored, `link_release` records the original's id on it (`messages.released_from`), which the
delivery record shows (`/api/v1/message/{ID}/deliveries`). The column goes with the copy's row
when retention prunes it.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from mxrelay.store import schema
from mxrelay.store.backend import Database


async def link_release(db: Database, message_id: str, released_from: str) -> bool:
    """Record that `message_id` is a copy of `released_from`; whether the copy was found."""
    return await db.write(_link, message_id, released_from)


def _link(conn: Connection, message_id: str, released_from: str) -> bool:
    m = schema.messages
    result = conn.execute(
        update(m).where(m.c.id == message_id).values(released_from=released_from[:26])
    )
    return bool(getattr(result, "rowcount", 0))


async def released_from(db: Database, message_id: str) -> str | None:
    """The id of the message `message_id` was released from, if it is a released copy."""
    m = schema.messages

    def run(conn: Connection) -> str | None:
        found = conn.execute(select(m.c.released_from).where(m.c.id == message_id)).scalar()
        return None if found is None else str(found)

    return await db.read(run)
