"""Reading a message marks it read, as in Mailpit, and tells the live clients so; unless another
site's page asked for it.

A browser sends the relay's stored login with what another page loads from it: an image of
`/api/v1/message/latest` or a frame of the console's message page there would mark messages read
in the user's name. The origin check (`web/origins.py`) lets such a GET through, as a followed
link is one, so the read is left unmarked here instead. Clients (no `Sec-Fetch-Site`) and the
relay's own pages are unaffected.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from mxrelay.store import flags
from mxrelay.store.backend import Database
from mxrelay.web.api_v1.changes import ReadChanged, announce_change
from mxrelay.web.origins import from_another_site


async def mark_read(request: HTTPConnection, db: Database, ident: str) -> None:
    """Set the read flag of message `ident` as `PUT /api/v1/messages` sets it (`flags.mark`) and
    announce it as that route does (an `update` frame); nothing when it was read already (reading
    a message again announces nothing) or when `request` came from another site's page. Not
    waited onto the disk: a crash that loses it only shows the message unread again. The API's
    message and view routes and the console's message page all read through here."""
    if from_another_site(request.headers.get("sec-fetch-site")):
        return
    changed = await flags.mark(db, [ident], True, durable=False)
    await announce_change(db, ReadChanged(changed.ids, True))
