"""iCalendar stripping: remove calendar parts from a message, or keep them as a plain attachment.

Microsoft Graph routed messages carrying `text/calendar` by the ICS ATTENDEE lines instead of the
envelope, and Exchange turns such parts into meeting requests (graph-delivery.md). For recipients
in scope (`scope.py`) this module rewrites the message bytes:

- `IcsAction.STRIP` removes every calendar part. A multipart that loses some parts keeps the rest
  (a multipart left with one part stays a multipart: valid MIME, and no byte of the survivor
  moves); a multipart that loses all its parts is removed from its parent; a message whose only
  content was calendar data gets a short `text/plain` body saying the invitation was removed.
- `IcsAction.ATTACH` keeps the data as a plain `application/ics` attachment (`Content-Disposition:
  attachment`, file name kept when it already has a calendar extension, else `invite.ics`). A
  calendar part inside a multipart/alternative is moved out of it (an attachment is not an
  alternative rendering) into the nearest multipart/mixed, which is created around the message
  when there is none. Calendar parts with the same decoded content (nodemailer and Google send the
  invitation both as an alternative and as an attachment) are kept once.

What counts as calendar data, and which part goes or stays, is `calendar.py`'s business; this
module turns that plan into splices. `message/rfc822` attachments are left alone unless
`descend_messages` is set. Content under multipart/signed or multipart/encrypted is never changed
(that would break the signature); the report notes it.

The transform is pure and exact: parts and headers it does not change keep their bytes, CRLF and LF
input both work, 8-bit and binary parts pass untouched. A message whose structure cannot be
located exactly passes through unchanged, and the report says why. Applying it twice changes
nothing the second time.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field

from mxrelay.mime.calendar import (
    CALENDAR_EXTENSIONS,
    PROTECTED_TYPES,
    Decision,
    calendar_leaves,
    is_calendar,
    join_path,
    plan,
)
from mxrelay.mime.parse import (
    DEFAULT_LIMITS,
    Entity,
    MimeLimits,
    MimeStructureError,
    find,
    parse_message,
)
from mxrelay.mime.splice import (
    Splice,
    apply_splices,
    field_bytes,
    header_block_splice,
    header_lines,
    rebuild_headers,
    separator_and_body,
)
from mxrelay.model import IcsAction

__all__ = [
    "ATTACHMENT_NAME",
    "REMOVED_NOTICE",
    "ChangedPart",
    "IcsReport",
    "IcsResult",
    "PartChange",
    "is_calendar",
    "transform_calendar",
]

ATTACHMENT_NAME = "invite.ics"
REMOVED_NOTICE = (
    "This message contained a calendar invitation, which the mail relay removed before delivery."
)


class PartChange(enum.StrEnum):
    REMOVED = "removed"
    DUPLICATE_REMOVED = "duplicate_removed"
    RETYPED = "retyped"
    MOVED = "moved"
    """Re-typed and moved out of a multipart/alternative into a multipart/mixed."""


@dataclass(frozen=True, slots=True)
class ChangedPart:
    """One calendar part the transform changed. `path` numbers parts as IMAP does (`1.3`)."""

    path: str
    content_type: str
    filename: str | None
    method: str | None
    size: int
    change: PartChange

    def describe(self) -> str:
        what = self.content_type
        if self.method:
            what += f" method={self.method}"
        if self.filename:
            what += f" name={self.filename!r}"
        return f"{self.change.value} part {self.path or 'body'} ({what}, {self.size} bytes)"


@dataclass(frozen=True, slots=True)
class IcsReport:
    """What the calendar transform did to one message variant."""

    action: IcsAction
    parts: tuple[ChangedPart, ...] = ()
    body_replaced: bool = False
    """The message held only calendar data and got the short text/plain notice instead."""
    skipped: str | None = None
    """Why the message passed through unchanged although calendar parts may be in it."""
    notes: tuple[str, ...] = ()
    descended: bool = False
    """Attached messages (message/rfc822) were looked into."""

    @property
    def changed(self) -> bool:
        return bool(self.parts)

    def describe(self) -> str:
        """One line for the transaction log and the message record: what was removed or
        re-typed, or why nothing was, and the notes (calendar data left as it was)."""
        if self.skipped:
            return f"ics {self.action.value}: message left unchanged: {self.skipped}"
        notes = "".join(f"; {note}" for note in self.notes)
        if not self.parts:
            return f"ics {self.action.value}: " + (
                f"nothing changed{notes}" if notes else "no calendar data"
            )
        text = "; ".join(part.describe() for part in self.parts)
        if self.body_replaced:
            text += "; body replaced by a notice"
        return f"ics {self.action.value}: {text}{notes}"


@dataclass(frozen=True, slots=True)
class IcsResult:
    data: bytes
    report: IcsReport


def transform_calendar(
    data: bytes,
    action: IcsAction,
    *,
    limits: MimeLimits = DEFAULT_LIMITS,
    descend_messages: bool = False,
) -> IcsResult:
    """Strip or re-attach the calendar parts of `data`; see the module docstring."""
    deep = descend_messages
    try:
        root = parse_message(data, limits=limits, descend_messages=descend_messages)
    except MimeStructureError as exc:
        return IcsResult(data, IcsReport(action, skipped=f"broken MIME: {exc}", descended=deep))
    editor = _Editor(data, action)
    editor.message(root, "")
    if not editor.changed:
        return IcsResult(data, IcsReport(action, notes=tuple(editor.notes), descended=deep))
    report = IcsReport(
        action,
        parts=tuple(editor.changed),
        body_replaced=editor.body_replaced,
        notes=tuple(editor.notes),
        descended=deep,
    )
    return IcsResult(apply_splices(data, editor.splices), report)


# --------------------------------------------------------------------------------------------
# Editing: turn the plan into splices on the original bytes
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    dropped: bool = False
    carries: list[bytes] = field(default_factory=list)


class _Editor:
    def __init__(self, data: bytes, action: IcsAction) -> None:
        self.data = data
        self.action = action
        self.splices: list[Splice] = []
        self.changed: list[ChangedPart] = []
        self.notes: list[str] = []
        self.body_replaced = False
        self.decisions: dict[int, Decision] = {}
        self.paths: dict[int, str] = {}
        self.boundaries: set[bytes] = set()
        """Boundaries of the multiparts this edit creates: nested ones (in an attached message
        and around it) must differ."""

    def new_boundary(self) -> bytes:
        boundary = _new_boundary(self.data, self.boundaries)
        self.boundaries.add(boundary)
        return boundary

    def message(self, root: Entity, path: str) -> None:
        """Edit one message (the top level, or one embedded in a message/rfc822 part)."""
        leaves = list(calendar_leaves(root, path, False, self.notes))
        self.paths.update({id(leaf.entity): leaf.path for leaf in leaves})
        self.decisions.update(plan(self.data, leaves, self.action))
        outcome = self.visit(root, path)
        if outcome.dropped and outcome.carries:
            self.replace_with_mixed(root, outcome.carries)
        elif outcome.dropped:
            self.replace_with_notice(root)
        elif outcome.carries:
            self.wrap_in_mixed(root, outcome.carries)

    def visit(self, entity: Entity, path: str) -> _Outcome:
        decision = self.decisions.get(id(entity))
        if decision is not None:
            return self.leaf(entity, decision)
        if entity.embedded is not None:
            self.message(entity.embedded, path)
            return _Outcome()
        if not entity.is_multipart or entity.content_type in PROTECTED_TYPES:
            return _Outcome()
        outcomes = [
            self.visit(child, join_path(path, index))
            for index, child in enumerate(entity.children, 1)
        ]
        carries = [carry for outcome in outcomes for carry in outcome.carries]
        mixed = entity.content_type == "multipart/mixed"
        if all(outcome.dropped for outcome in outcomes) and not (mixed and carries):
            return _Outcome(dropped=True, carries=carries)
        stops = [*entity.delimiters[1:], entity.close]
        for opened, following, outcome in zip(entity.delimiters, stops, outcomes, strict=True):
            if outcome.dropped and following is not None:
                self.splices.append(Splice(opened.start, following.start))
        if mixed and carries and entity.close is not None and entity.boundary is not None:
            delimiter = b"--" + entity.boundary + entity.newline
            insert = b"".join(delimiter + carry + entity.newline for carry in carries)
            self.splices.append(Splice(entity.close.start, entity.close.start, insert))
            carries = []
        return _Outcome(carries=carries)

    def leaf(self, entity: Entity, decision: Decision) -> _Outcome:
        path = self.paths[id(entity)]
        if decision is Decision.KEEP:
            return _Outcome()
        change = {
            Decision.REMOVE: PartChange.REMOVED,
            Decision.DUPLICATE: PartChange.DUPLICATE_REMOVED,
            Decision.RETYPE: PartChange.RETYPED,
            Decision.MOVE: PartChange.MOVED,
        }[decision]
        self.changed.append(
            ChangedPart(
                path=path,
                content_type=entity.content_type,
                filename=entity.filename,
                method=entity.method,
                size=entity.end - entity.start,
                change=change,
            )
        )
        if decision is Decision.RETYPE:
            self.splices.append(
                header_block_splice(self.data, entity, _TYPE_FIELDS, self.attachment_fields(entity))
            )
            return _Outcome()
        if decision is Decision.MOVE:
            headers = rebuild_headers(
                self.data, entity, _TYPE_FIELDS, self.attachment_fields(entity)
            )
            return _Outcome(dropped=True, carries=[headers + separator_and_body(self.data, entity)])
        return _Outcome(dropped=True)

    def attachment_fields(self, entity: Entity) -> list[bytes]:
        name = entity.filename
        if not name or not name.lower().endswith(CALENDAR_EXTENSIONS) or not _quotable(name):
            name = ATTACHMENT_NAME
        return header_lines(
            entity.newline,
            f'Content-Type: application/ics; name="{name}"',
            f'Content-Disposition: attachment; filename="{name}"',
        )

    def replace_with_notice(self, root: Entity) -> None:
        """Strip left nothing: the message gets a short text/plain body instead."""
        self.body_replaced = True
        nl = root.newline
        headers = rebuild_headers(
            self.data,
            root,
            _BODY_FIELDS,
            header_lines(nl, "Content-Type: text/plain; charset=us-ascii", _SEVEN_BIT),
        )
        body = nl + REMOVED_NOTICE.encode("ascii") + nl
        self.splices.append(Splice(root.start, root.end, headers + body))

    def replace_with_mixed(self, root: Entity, carries: list[bytes]) -> None:
        """Every part was a calendar alternative: the message becomes the attachments alone."""
        nl = root.newline
        boundary = self.new_boundary()
        headers = rebuild_headers(self.data, root, _BODY_FIELDS, [_mixed_field(boundary, nl)])
        delimiter = b"--" + boundary + nl
        body = nl + b"".join(delimiter + carry + nl for carry in carries)
        self.splices.append(
            Splice(root.start, root.end, headers + body + b"--" + boundary + b"--" + nl)
        )

    def wrap_in_mixed(self, root: Entity, carries: list[bytes]) -> None:
        """Moved attachments need a multipart/mixed and there is none: put one around the root.

        The root's Content-Type and Content-Transfer-Encoding fields move, byte for byte, into the
        first part; everything else of the root stays where it was.
        """
        nl = root.newline
        boundary = self.new_boundary()
        self.splices.append(
            header_block_splice(self.data, root, _MOVED_FIELDS, [_mixed_field(boundary, nl)])
        )
        moved = b"".join(
            field_bytes(self.data, f, nl) for f in root.fields if f.key in _MOVED_FIELDS
        )
        opening = b"--" + boundary + nl + moved + nl
        self.splices.append(Splice(root.body_start, root.body_start, opening))
        delimiter = nl + b"--" + boundary + nl
        closing = b"".join(delimiter + carry for carry in carries)
        closing += nl + b"--" + boundary + b"--" + nl
        self.splices.append(Splice(root.end, root.end, closing))


_TYPE_FIELDS = ("content-type", "content-disposition")
_MOVED_FIELDS = ("content-type", "content-transfer-encoding")
_BODY_FIELDS = ("content-type", "content-transfer-encoding", "content-disposition")
_SEVEN_BIT = "Content-Transfer-Encoding: 7bit"


def _mixed_field(boundary: bytes, newline: bytes) -> bytes:
    return b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + newline


def _new_boundary(data: bytes, taken: Collection[bytes] = ()) -> bytes:
    """A boundary derived from the message (so the transform stays deterministic) that does not
    occur in it and is none of `taken`."""
    digest = hashlib.sha256(data).hexdigest()
    for attempt in range(1000):
        boundary = f"=_mxrelay_{digest[:24]}_{attempt}".encode("ascii")
        if boundary not in taken and find(data, boundary) == -1:
            return boundary
    raise AssertionError("no free boundary")  # pragma: no cover - 1000 hash-derived collisions


def _quotable(name: str) -> bool:
    """A file name that can go into a quoted-string parameter as it is (ASCII, no quotes)."""
    return name.isascii() and name.isprintable() and not any(c in name for c in '"\\')
