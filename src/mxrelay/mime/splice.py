"""Byte splicing: the only way the transforms produce output.

A transform describes its result as a list of `Splice` values (replace `data[start:end]` with
`insert`) on the original bytes; `apply_splices` builds the new message in one pass, so every byte
that no splice covers comes out exactly as it went in. Header blocks are rebuilt field by field
from the original field bytes (`rebuild_headers`), never re-folded or re-encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mxrelay.mime.parse import Entity, HeaderField


@dataclass(frozen=True, slots=True)
class Splice:
    """Replace `data[start:end]` with `insert` (an insertion when `start == end`)."""

    start: int
    end: int
    insert: bytes = b""


def apply_splices(data: bytes, splices: Iterable[Splice]) -> bytes:
    """Apply non-overlapping splices. Insertions at an offset go before a replacement that starts
    there; splices with the same position keep their given order."""
    ordered = sorted(splices, key=lambda s: (s.start, s.end > s.start))
    view = memoryview(data)  # unchanged stretches are copied once, by the join, not sliced first
    out: list[bytes | memoryview] = []
    pos = 0
    for splice in ordered:
        if splice.start < pos:
            raise ValueError(f"overlapping splices at {splice.start}")
        out.append(view[pos : splice.start])
        out.append(splice.insert)
        pos = splice.end
    out.append(view[pos:])
    return b"".join(out)


def field_bytes(data: bytes, field: HeaderField, newline: bytes) -> bytes:
    """A field's original bytes, with a line end added only if the field had none (last line)."""
    raw = data[field.start : field.end]
    return raw if raw.endswith(b"\n") else raw + newline


def header_lines(newline: bytes, *lines: str) -> list[bytes]:
    return [line.encode("ascii") + newline for line in lines]


def rebuild_headers(
    data: bytes,
    entity: Entity,
    drop: Sequence[str],
    new_fields: Sequence[bytes],
) -> bytes:
    """The entity's header block without the fields named in `drop` (lower-case keys), with
    `new_fields` where the first dropped field was (or at the end). Kept fields keep their bytes."""
    out: list[bytes] = []
    placed = False
    for field in entity.fields:
        if field.key in drop:
            if not placed:
                out.extend(new_fields)
                placed = True
            continue
        out.append(field_bytes(data, field, entity.newline))
    if not placed:
        out.extend(new_fields)
    return b"".join(out)


def header_block_splice(
    data: bytes, entity: Entity, drop: Sequence[str], new_fields: Sequence[bytes]
) -> Splice:
    """Replace the entity's header fields (not the blank line after them)."""
    return Splice(entity.start, entity.headers_end, rebuild_headers(data, entity, drop, new_fields))


def separator_and_body(data: bytes, entity: Entity) -> bytes:
    """The blank line and body of an entity, adding the blank line if the entity had none."""
    if entity.headers_end == entity.body_start:
        return entity.newline + data[entity.body_start : entity.end]
    return data[entity.headers_end : entity.end]
