"""What counts as calendar data, and the plan for each calendar part of a message.

`ics.py` turns the plan into bytes; this module only looks. Calendar data is any `text/calendar`
(any method), `application/ics` (and the legacy `text/x-vcalendar`, `application/x-ics`), or a part
whose file name (Content-Disposition `filename` or Content-Type `name`, RFC 2231/2047 decoded)
ends in .ics, .ical, .ifb or .vcs. Parts under multipart/signed or multipart/encrypted are never
planned for (changing them would break the signature).

`plan` decides per part: STRIP removes every calendar part; ATTACH keeps each distinct calendar
content once (the same invitation often comes as an alternative and as an attachment), preferring
a copy that is already a plain attachment outside multipart/alternative.
"""

from __future__ import annotations

import binascii
import contextlib
import enum
import hashlib
import quopri
from collections.abc import Iterator
from dataclasses import dataclass

from mxrelay.mime.parse import Entity, field_value
from mxrelay.model import IcsAction

CALENDAR_TYPES = frozenset(
    {"text/calendar", "application/ics", "text/x-vcalendar", "application/x-ics"}
)
CALENDAR_EXTENSIONS = (".ics", ".ical", ".ifb", ".vcs")
PROTECTED_TYPES = frozenset({"multipart/signed", "multipart/encrypted"})


def is_calendar(entity: Entity) -> bool:
    """Whether a part carries calendar data (see the module docstring)."""
    if entity.is_multipart or entity.content_type.startswith(("message/", "multipart/")):
        return False
    if entity.content_type in CALENDAR_TYPES:
        return True
    return any(name.lower().endswith(CALENDAR_EXTENSIONS) for name in entity.filenames)


@dataclass(frozen=True, slots=True)
class Leaf:
    entity: Entity
    path: str
    in_alternative: bool


def calendar_leaves(
    entity: Entity, path: str, in_alternative: bool, notes: list[str]
) -> Iterator[Leaf]:
    """Calendar leaves of one message (not of messages embedded in it), in document order."""
    if entity.content_type in PROTECTED_TYPES:
        if any(True for _ in calendar_leaves_anywhere(entity)):
            notes.append(f"calendar data under {entity.content_type} left unchanged")
        return
    if entity.is_multipart:
        inside = entity.content_type == "multipart/alternative"
        for index, child in enumerate(entity.children, 1):
            yield from calendar_leaves(child, join_path(path, index), inside, notes)
    elif is_calendar(entity):
        yield Leaf(entity, path, in_alternative)


def calendar_leaves_anywhere(entity: Entity) -> Iterator[Entity]:
    if is_calendar(entity):
        yield entity
    for child in entity.children:
        yield from calendar_leaves_anywhere(child)


def join_path(path: str, index: int) -> str:
    return f"{path}.{index}" if path else str(index)


def is_canonical(entity: Entity) -> bool:
    """Already a plain calendar attachment: nothing for ATTACH to do."""
    name = entity.filename or ""
    return (
        entity.content_type == "application/ics"
        and entity.disposition == "attachment"
        and name.lower().endswith(CALENDAR_EXTENSIONS)
    )


def content_key(data: bytes, entity: Entity) -> bytes:
    """The decoded content of a part, line ends normalized, to recognise duplicates."""
    body = data[entity.body_start : entity.end]
    encodings = entity.fields_named("content-transfer-encoding")
    encoding = field_value(data, encodings[0]).lower() if encodings else ""
    if encoding == "base64":
        with contextlib.suppress(binascii.Error):
            body = binascii.a2b_base64(body)
    elif encoding == "quoted-printable":
        body = quopri.decodestring(body)
    return hashlib.sha256(body.replace(b"\r\n", b"\n").strip()).digest()


class Decision(enum.Enum):
    REMOVE = "remove"
    DUPLICATE = "duplicate"
    RETYPE = "retype"
    MOVE = "move"
    KEEP = "keep"


def plan(data: bytes, leaves: list[Leaf], action: IcsAction) -> dict[int, Decision]:
    if action is IcsAction.STRIP:
        return {id(leaf.entity): Decision.REMOVE for leaf in leaves}
    groups: dict[bytes, list[Leaf]] = {}
    for leaf in leaves:
        groups.setdefault(content_key(data, leaf.entity), []).append(leaf)
    decisions: dict[int, Decision] = {}
    for group in groups.values():
        keeper = min(
            group,
            key=lambda leaf: (
                leaf.in_alternative,
                not is_canonical(leaf.entity),
                leaf.entity.disposition != "attachment",
            ),
        )
        for leaf in group:
            if leaf is not keeper:
                decisions[id(leaf.entity)] = Decision.DUPLICATE
            elif leaf.in_alternative:
                decisions[id(leaf.entity)] = Decision.MOVE
            elif is_canonical(leaf.entity):
                decisions[id(leaf.entity)] = Decision.KEEP
            else:
                decisions[id(leaf.entity)] = Decision.RETYPE
    return decisions
