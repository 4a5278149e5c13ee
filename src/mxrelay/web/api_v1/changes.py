"""What the message-list routes changed, for whoever tells clients about it (the live events).

`ApiContext.on_change` is the one place the routes report a change, after it is committed; it
does nothing unless the events are wired to it. `mailpit_events` turns a change into the frames
Mailpit's websocket sends for it (`{"Type", "Data"}`): `delete` per message (or `prune` for many,
`truncate` for everything), `update` with `Read` or with `Tags` per message, `prune` after a tag
is renamed or deleted. Mailpit also sends its `stats` frame after each; that one is the events'
own (it reads the counts).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mxrelay.store.backend import Database
from mxrelay.store.changes import ChangeKind, announce_all

MANY = 200
"""Messages beyond which Mailpit sends one `prune` instead of a `delete` for each."""


@dataclass(frozen=True, slots=True)
class MessagesDeleted:
    ids: tuple[str, ...]
    everything: bool = False
    """All messages were asked to go (Mailpit's `truncate`)."""
    count: int = 0


@dataclass(frozen=True, slots=True)
class ReadChanged:
    ids: tuple[str, ...]
    """The messages to tell of: every ID a request named, as Mailpit tells of each whether or not
    its flag changed (an unknown one too), or the matches of a search whose flag changed."""
    read: bool
    everything: bool = False
    """Every message (Mailpit then sends no `update` per message)."""


@dataclass(frozen=True, slots=True)
class TagsChanged:
    tags: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Message id -> its tags now."""


@dataclass(frozen=True, slots=True)
class TagsPruned:
    """A tag was renamed or deleted: every list shows it differently now."""


Change = MessagesDeleted | ReadChanged | TagsChanged | TagsPruned


def ignore_change(change: Change) -> None:
    """The default `on_change`: nobody is listening."""


async def announce_change(db: Database | None, change: Change) -> None:
    """Write the frames of `change` to the store's change outbox, where every replica's event
    poller reads them, in one transaction."""
    frames = mailpit_events(change)
    if db is not None and frames:
        await announce_all(db, [(ChangeKind(kind), data) for kind, data in frames])


def mailpit_events(change: Change) -> list[tuple[str, Any]]:
    """The `(Type, Data)` frames Mailpit's websocket sends for this change."""
    if isinstance(change, MessagesDeleted):
        if change.everything:
            return [("truncate", None)]
        if max(change.count, len(change.ids)) > MANY:
            return [("prune", None)]
        return [("delete", {"ID": ident}) for ident in change.ids]
    if isinstance(change, ReadChanged):
        if change.everything:
            return []
        return [("update", {"ID": ident, "Read": change.read}) for ident in change.ids]
    if isinstance(change, TagsChanged):
        return [
            ("update", {"ID": ident, "Tags": list(tags)}) for ident, tags in change.tags.items()
        ]
    return [("prune", None)]
