"""Reading a message marks it read, as in Mailpit, and tells the live clients so."""

from __future__ import annotations

from mxrelay.store import flags
from mxrelay.store.backend import Database
from mxrelay.web.api_v1.changes import ReadChanged, announce_change


async def mark_read(db: Database, ident: str) -> None:
    """Set the read flag of message `ident` as `PUT /api/v1/messages` sets it (`flags.mark`) and
    announce it as that route does (an `update` frame); nothing when it was read already (reading
    a message again announces nothing). Not waited onto the disk: a crash that loses it only
    shows the message unread again. The API's message and view routes and the console's
    message page all read through here."""
    changed = await flags.mark(db, [ident], True, durable=False)
    await announce_change(db, ReadChanged(changed.ids, True))
