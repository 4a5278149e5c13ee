"""Message tags, with Mailpit's rules: a tag name is cleaned (`clean_tag`), and tags are
case-insensitive (the first spelling is kept: tagging with `urgent` a store that has `Urgent`
uses `Urgent`), listed in case-insensitive order.

A tag is a row of `tags` (`key` is its name lower-cased, unique: names are ASCII, so `lower()`
agrees on both databases); `message_tags` says which messages carry it. A tag that no message
carries any more is not listed (retention deletes messages without looking at their tags), and is
removed when this module next touches it or prunes after a deletion.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.sql.expression import Executable

from mxrelay.store import schema
from mxrelay.store.backend import Database, Dialect
from mxrelay.store.bulk import insert_many, stored_as_is

_INVALID = re.compile(r"[^a-zA-Z0-9\- _.]")
_SPACES = re.compile(r"\s+")

TAGS_PER_MESSAGE = 100
"""Tags one message can be given in one request or `X-Tags` header (the rest are left out)."""
DELETE_BATCH = 5000
"""References removed per transaction when a tag is deleted (SQLite's writers wait meanwhile)."""
MESSAGES_PER_QUERY = 500
ROWS_PER_WRITE = 4000
"""Message tags one transaction of `set_tags` adds or removes at most (SQLite's writers wait
meanwhile): replacing 100 tags of 10,000 messages with 100 others in one transaction held the
writer for seconds."""


class TagError(ValueError):
    """A tag change Mailpit refuses, with Mailpit's words (`tag not found: x`)."""


def clean_tag(name: str) -> str:
    """Mailpit's `CleanTag`: characters other than ASCII letters, digits, `-`, `_`, `.` and space
    become spaces, runs of spaces one, none at the ends."""
    return _SPACES.sub(" ", _INVALID.sub(" ", name)).strip()


def unique_tags(names: Iterable[str]) -> list[str]:
    """Cleaned, valid (non-empty, within the column), without case-insensitive repeats (the
    first spelling wins), sorted as Mailpit sorts them; at most `TAGS_PER_MESSAGE`."""
    kept: dict[str, str] = {}
    for raw in names:
        tag = clean_tag(raw[: schema.TAG_LENGTH * 4])
        if tag and len(tag) <= schema.TAG_LENGTH and tag.lower() not in kept:
            kept[tag.lower()] = tag
            if len(kept) >= TAGS_PER_MESSAGE:
                break
    return sorted(kept.values())


def header_tags(value: str) -> list[str]:
    """The tags an `X-Tags` header names (comma-separated)."""
    return unique_tags(value.split(","))


# --- inside a transaction ---------------------------------------------------------------------


def _insert_ignoring(conn: Connection) -> Executable:
    """INSERT INTO tags ... ON CONFLICT (key) DO NOTHING, in the connection's dialect (two
    replicas may create one tag at once)."""
    t = schema.tags
    if conn.dialect.name == Dialect.POSTGRESQL:
        return postgresql.insert(t).on_conflict_do_nothing(index_elements=[t.c.key])
    return sqlite.insert(t).on_conflict_do_nothing(index_elements=[t.c.key])


def ensure_tags(conn: Connection, names: Iterable[str]) -> dict[str, tuple[int, str]]:
    """The tags of these (clean) names, created where missing: lower-cased name -> (id, name as
    stored, which may be spelt differently)."""
    wanted: dict[str, str] = {}
    for name in names:
        wanted.setdefault(name.lower(), name)  # the first spelling, as the first to ask had it
    if not wanted:
        return {}
    t = schema.tags
    rows = [{"name": name, "key": key} for key, name in wanted.items()]
    conn.execute(_insert_ignoring(conn), rows)
    found = conn.execute(select(t.c.key, t.c.id, t.c.name).where(t.c.key.in_(list(wanted))))
    return {key: (int(ident), str(name)) for key, ident, name in found}


def tag_messages(conn: Connection, tagged: Mapping[str, Sequence[str]]) -> None:
    """Give new messages their tags (message id -> clean tag names): ingest's `X-Tags`."""
    tags = ensure_tags(conn, (name for names in tagged.values() for name in names))
    rows = [
        {"message_id": message_id, "tag_id": tags[key][0]}
        for message_id, names in tagged.items()
        for key in dict.fromkeys(name.lower() for name in names)
    ]
    if rows:
        conn.execute(insert(schema.message_tags), rows)


_TAGS_OF = (
    select(schema.message_tags.c.message_id, schema.tags.c.name)
    .join(schema.tags, schema.tags.c.id == schema.message_tags.c.tag_id)
    .where(schema.message_tags.c.message_id.in_(bindparam("ids", expanding=True)))
    .order_by(schema.message_tags.c.message_id, schema.tags.c.key)
)
"""Built once: building the statement for every call cost more than running it (the live
events read the tags of every new message)."""


def tags_of(conn: Connection, message_ids: Sequence[str]) -> dict[str, list[str]]:
    """The tags of each of these messages (those with none are absent), in Mailpit's order."""
    found: dict[str, list[str]] = {}
    for start in range(0, len(message_ids), MESSAGES_PER_QUERY):
        chunk = list(message_ids[start : start + MESSAGES_PER_QUERY])
        rows = conn.execute(_TAGS_OF, {"ids": chunk})
        for message_id, name in rows:
            found.setdefault(message_id, []).append(name)
    return found


def all_tags(conn: Connection) -> list[str]:
    """Every tag some message carries, in Mailpit's order (case-insensitive)."""
    t, mt = schema.tags, schema.message_tags
    used = exists().where(mt.c.tag_id == t.c.id)
    return [
        str(name) for name in conn.execute(select(t.c.name).where(used).order_by(t.c.key)).scalars()
    ]


def prune_unused(conn: Connection, tag_ids: Iterable[int] | None = None) -> None:
    """Remove tags no message carries: these, or (None) all of them."""
    t, mt = schema.tags, schema.message_tags
    statement = delete(t).where(~exists().where(mt.c.tag_id == t.c.id))
    if tag_ids is not None:
        ids = list(set(tag_ids))
        if not ids:
            return
        statement = statement.where(t.c.id.in_(ids))
    conn.execute(statement)


def message_tag_ids(conn: Connection, message_ids: Sequence[str]) -> set[int]:
    mt = schema.message_tags
    rows = conn.execute(select(mt.c.tag_id).where(mt.c.message_id.in_(list(message_ids))))
    return {int(row[0]) for row in rows}


# --- operations --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagCount:
    name: str
    messages: int


async def list_tags(db: Database) -> list[str]:
    return await db.read(all_tags)


async def tag_counts(db: Database) -> list[TagCount]:
    """Each tag in use and how many messages carry it (Mailpit's `/info` `Tags`)."""
    t, mt = schema.tags, schema.message_tags
    statement = (
        select(t.c.name, func.count())
        .join(mt, mt.c.tag_id == t.c.id)
        .group_by(t.c.id, t.c.name, t.c.key)
        .order_by(t.c.key)
    )
    rows = await db.read(lambda conn: list(conn.execute(statement)))
    return [TagCount(str(name), int(count)) for name, count in rows]


async def set_tags(
    db: Database, message_ids: Sequence[str], names: Sequence[str]
) -> dict[str, list[str]]:
    """Replace the tags of these messages with `names` (cleaned; an empty list clears them), as
    Mailpit's `PUT /api/v1/tags`. Unknown messages are left out; the answer maps each message
    changed to its tags now.

    A few messages per transaction (`_set_some`: at most `ROWS_PER_WRITE` rows changed), each
    ensuring the tags it gives, so that on SQLite the relay's own commits (accepted mail) never
    wait long behind it; the tags left unused are pruned last."""
    ids = [ident for ident in dict.fromkeys(message_ids) if stored_as_is(ident)]
    wanted = unique_tags(names)
    changed: dict[str, list[str]] = {}
    given: set[int] = set()
    start, window = 0, first_window(len(wanted))
    while start < len(ids):
        done, some, tag_ids = await db.write(_set_some, ids[start : start + window], wanted)
        changed.update(some)
        given |= tag_ids
        start += done
        window = next_window(done)
    if given:
        await db.write(prune_unused, given)
    return changed


def first_window(tag_count: int) -> int:
    """Message ids the first write of `set_tags` looks at: as many as could each gain
    `tag_count` tags within `ROWS_PER_WRITE`. Pure."""
    return max(1, min(MESSAGES_PER_QUERY, ROWS_PER_WRITE // max(tag_count, 1)))


def next_window(done: int) -> int:
    """Message ids the next write looks at: twice as many as the last one did, so that reading
    the tags messages hold costs about what is changed, however many each holds. Pure."""
    return max(1, min(MESSAGES_PER_QUERY, 2 * done))


def rows_changed(current: set[int], wanted: set[int]) -> int:
    """The `message_tags` rows replacing a message's tags `current` with `wanted` changes. Pure."""
    return len(current ^ wanted)


def _set_some(
    conn: Connection, message_ids: list[str], names: list[str]
) -> tuple[int, dict[str, list[str]], set[int]]:
    """Replace the tags of the first of `message_ids`, as many as change at most
    `ROWS_PER_WRITE` rows (one at least); how many ids were done, the messages changed with
    their tags now, and the ids of the tags given."""
    m, mt = schema.messages, schema.message_tags
    tags = ensure_tags(conn, names)
    wanted = {tags[name.lower()][0] for name in names}
    spelt = sorted((tags[name.lower()][1] for name in names), key=str.lower)
    present = set(conn.execute(select(m.c.id).where(m.c.id.in_(message_ids))).scalars())
    held: dict[str, set[int]] = {ident: set() for ident in present}
    for message_id, tag_id in conn.execute(
        select(mt.c.message_id, mt.c.tag_id).where(mt.c.message_id.in_(list(present)))
    ):
        held[message_id].add(int(tag_id))
    done, rows = 0, 0
    taken: list[str] = []
    for ident in message_ids:
        cost = rows_changed(held[ident], wanted) if ident in present else 0
        if taken and rows + cost > ROWS_PER_WRITE:
            break
        done += 1
        if ident in present:
            rows += cost
            taken.append(ident)
    if taken:
        dropped = {tag_id for ident in taken for tag_id in held[ident] - wanted}
        if dropped:
            conn.execute(
                delete(mt).where(mt.c.message_id.in_(taken), mt.c.tag_id.in_(list(dropped)))
            )
        additions = [
            {"message_id": ident, "tag_id": tag_id}
            for ident in taken
            for tag_id in sorted(wanted - held[ident])
        ]
        insert_many(conn, mt, additions)
        prune_unused(conn, dropped)
    return done, {ident: list(spelt) for ident in taken}, wanted


async def rename_tag(db: Database, current: str, new_name: str) -> None:
    """Mailpit's `RenameTag`: `new_name` is cleaned; TagError with Mailpit's words when it is
    not a valid tag, when no tag is `current` (case-insensitively), or when another is
    `new_name` already."""
    await db.write(_rename, current, new_name)


def _rename(conn: Connection, current: str, new_name: str) -> None:
    t = schema.tags
    to = clean_tag(new_name)
    if not to or len(to) > schema.TAG_LENGTH:
        raise TagError(f"invalid tag name: {to}")
    if current == to:
        return
    prune_unused(conn)
    found = _find(conn, current)
    if found is None:
        raise TagError(f"tag not found: {current}")
    taken = conn.execute(select(t.c.id).where(t.c.key == to.lower(), t.c.id != found)).first()
    if taken is not None:
        raise TagError(f"tag already exists: {to}")
    conn.execute(update(t).where(t.c.id == found).values(name=to, key=to.lower()))


def _find(conn: Connection, name: str) -> int | None:
    """The id of the tag `name` (case-insensitively), or None; a name that cleaning would change
    (a NUL from a request's path, say) is no tag's and is not looked up."""
    if clean_tag(name) != name:
        return None
    t = schema.tags
    row = conn.execute(select(t.c.id).where(t.c.key == name.lower())).first()
    return None if row is None else int(row[0])


async def delete_tag(db: Database, name: str) -> None:
    """Mailpit's `DeleteTag`: the tag leaves every message (in batches), then goes; TagError
    `tag not found: x` when there is none of that name (case-insensitively)."""
    t, mt = schema.tags, schema.message_tags

    def find(conn: Connection) -> int | None:
        prune_unused(conn)
        return _find(conn, name)

    tag_id = await db.write(find)
    if tag_id is None:
        raise TagError(f"tag not found: {name}")

    def remove_some(conn: Connection) -> int:
        some = select(mt.c.message_id).where(mt.c.tag_id == tag_id).limit(DELETE_BATCH)
        result = conn.execute(delete(mt).where(mt.c.tag_id == tag_id, mt.c.message_id.in_(some)))
        removed = int(result.rowcount or 0)
        if removed < DELETE_BATCH:
            conn.execute(delete(t).where(t.c.id == tag_id))
        return removed

    while await db.write(remove_some) >= DELETE_BATCH:
        pass
