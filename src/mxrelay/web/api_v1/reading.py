"""Reading a message marks it read, as in Mailpit, and tells the live clients so."""

from __future__ import annotations

from mxrelay.store.backend import Database
from mxrelay.store.changes import ChangeKind, announce
from mxrelay.store.flags import set_read


async def mark_read(db: Database, ident: str) -> None:
    """Set the read flag of message `ident`; an `update` event only when it changed (reading a
    message again announces nothing)."""
    if await set_read(db, [ident], True):
        await announce(db, ChangeKind.UPDATE, {"ID": ident, "Read": True})
