"""The transform stage: split a message into per-recipient variants, off the event loop if large.

`split_variants` applies the calendar transform (`ics.py`) for the recipients in scope
(`scope.py`): when only some recipients are in scope the message is split, the transformed copy for
them and the original for the others; each `Variant` carries its recipients, bytes and report.
A message the transform leaves alone (no calendar data, broken MIME, no recipient in scope) stays
one variant with every recipient. Passthrough sends one upstream transaction per variant; the
store keeps the variants' recipient lists and rebuilds their bytes at each attempt.

`reconcile_headers` (`headers.py`) is the Graph transport's last step, on each variant's bytes.

Both are pure and CPU-bound. `split_variants_async` runs the split in a worker thread when
`parse_in_thread` says parsing may take more than a few milliseconds (a 20 MB message, or a small
one built to make the scanner loop: thousands of lines or boundaries, or long address fields for
the stdlib's RFC 5322 parser), and inline otherwise, where a thread hop would cost more than the
work. `reconcile_headers_async` always runs in a worker thread: every To/Cc/Bcc entry the relay's
own pattern does not read goes to the stdlib parser, at up to ~20 us a character.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from mxrelay.mime.addresses import parser_characters
from mxrelay.mime.headers import HeaderPolicy, HeaderResult, reconcile_headers
from mxrelay.mime.ics import IcsReport, transform_calendar
from mxrelay.mime.parse import DEFAULT_LIMITS, FieldFinder, MimeLimits, header_region
from mxrelay.model import IcsAction, IcsScope

if TYPE_CHECKING:
    from mxrelay.config import MimeSettings

OFFLOAD_THRESHOLD = 256 * 1024
"""Messages at least this large are transformed in a worker thread (see bench/mime.py)."""

INLINE_LINES = 512
INLINE_DASHES = 128
"""Messages with more lines or more `--` than this are parsed in a worker thread whatever their
size. The Python-level loops of the parsers (`parse.py`, the summary, `content.py`) run once per
header line, boundary candidate or part; everything else they do is bounded C code. At these
counts the worst message costs a few milliseconds inline."""

INLINE_ADDRESS_CHARACTERS = 256
"""Messages whose address fields (From, To, Cc, Bcc, Reply-To) would hand the stdlib's RFC 5322
parser more characters than this (`addresses.parser_characters`: the forms the relay reads by
pattern do not count) are parsed in a worker thread too: the summary kept at accept time reads
them with it, at up to ~20 us a character (runs of comments, quoted strings or words). At this
count the worst summary takes about 4 ms."""

_ADDRESS_FIELDS = FieldFinder(("from", "to", "cc", "bcc", "reply-to"))

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class IcsPolicy:
    """Everything the calendar stage needs to know, parsed once at start-up."""

    scope: IcsScope
    action: IcsAction = IcsAction.STRIP
    descend_messages: bool = False
    """Also transform calendar parts inside attached messages (message/rfc822)."""
    limits: MimeLimits = DEFAULT_LIMITS

    @classmethod
    def from_settings(cls, settings: MimeSettings) -> IcsPolicy:
        """From `Settings.mime`; raises ValueError for a meaningless `MXRELAY_ICS_STRIP`."""
        return cls(IcsScope.from_setting(settings.ics_strip), IcsAction(settings.ics_action))


@dataclass(frozen=True, slots=True)
class Variant:
    """One copy of a message and the recipients it goes to."""

    recipients: tuple[str, ...]
    data: bytes
    report: IcsReport
    in_scope: bool
    """The transform was applied for (some of) these recipients; the report says what changed.
    A variant that stayed whole because nothing changed is in scope if any recipient was."""

    @property
    def transformed(self) -> bool:
        return self.report.changed

    @property
    def transforms(self) -> tuple[str, ...]:
        """Names of the transforms that turn the original message into `data`, for a store that
        keeps the original once and rebuilds each variant with `apply_transforms`."""
        if not self.report.changed:
            return ()
        return (transform_name(self.report.action, self.report.descended),)


class UnknownTransform(ValueError):
    """A variant names a transform this version cannot apply."""


def transform_name(action: IcsAction, descend_messages: bool = False) -> str:
    """`ics:strip`, `ics:attach`, with `-deep` when attached messages were transformed too: the
    names the store keeps with each variant."""
    return f"ics:{action.value}" + ("-deep" if descend_messages else "")


_KNOWN_TRANSFORMS = {
    transform_name(action, deep): (action, deep) for action in IcsAction for deep in (False, True)
}


def apply_transforms(
    data: bytes, transforms: Sequence[str], *, limits: MimeLimits = DEFAULT_LIMITS
) -> bytes:
    """Rebuild a variant from the original bytes and its transform names (pure, deterministic).

    Raises UnknownTransform for a name this version does not know.
    """
    for name in transforms:
        if name not in _KNOWN_TRANSFORMS:
            raise UnknownTransform(f"unknown message transform {name!r}")
        action, deep = _KNOWN_TRANSFORMS[name]
        data = transform_calendar(data, action, limits=limits, descend_messages=deep).data
    return data


def split_variants(
    data: bytes, recipients: Sequence[str], policy: IcsPolicy
) -> tuple[Variant, ...]:
    """The variants of a message for its accepted recipients: the transformed one first.

    Recipients keep their order within a variant. When nothing changes there is one variant.
    """
    everyone = tuple(recipients)
    matched = [policy.scope.matches(r) for r in everyone]
    listed = tuple(r for r, hit in zip(everyone, matched, strict=True) if hit)
    if not listed:
        return (Variant(everyone, data, IcsReport(policy.action), in_scope=False),)
    result = transform_calendar(
        data, policy.action, limits=policy.limits, descend_messages=policy.descend_messages
    )
    if not result.report.changed:
        return (Variant(everyone, data, result.report, in_scope=True),)
    others = tuple(r for r, hit in zip(everyone, matched, strict=True) if not hit)
    variants = [Variant(listed, result.data, result.report, in_scope=True)]
    if others:
        variants.append(Variant(others, data, IcsReport(policy.action), in_scope=False))
    return tuple(variants)


async def split_variants_async(
    data: bytes,
    recipients: Sequence[str],
    policy: IcsPolicy,
    *,
    offload_above: int = OFFLOAD_THRESHOLD,
) -> tuple[Variant, ...]:
    """`split_variants`, in a worker thread when `parse_in_thread(data, offload_above)`."""
    return await _run(data, offload_above, split_variants, data, tuple(recipients), policy)


async def reconcile_headers_async(
    data: bytes, recipients: Sequence[str], policy: HeaderPolicy = HeaderPolicy.STRIP
) -> HeaderResult:
    """`reconcile_headers`, always in a worker thread (see the module docstring)."""
    return await asyncio.to_thread(reconcile_headers, data, tuple(recipients), policy)


def parse_in_thread(data: bytes, threshold: int = OFFLOAD_THRESHOLD) -> bool:
    """Whether parsing `data` may take long enough to stall the event loop (see INLINE_LINES
    and INLINE_ADDRESS_CHARACTERS)."""
    return (
        len(data) >= threshold
        or data.count(b"\n") > INLINE_LINES
        or data.count(b"--") > INLINE_DASHES
        or address_characters(data) > INLINE_ADDRESS_CHARACTERS
    )


def address_characters(data: bytes) -> int:
    """`parser_characters` of the message's own address fields, found in C as the summary finds
    them (`store.ingest`); cheap when they are short."""
    end, _ = header_region(data)
    found = _ADDRESS_FIELDS.values(data, end, per_name=INLINE_LINES + 1)
    values = [value for values in found.values() for value in values]
    if sum(len(value) for value in values) <= INLINE_ADDRESS_CHARACTERS:
        return 0  # not even the worst text costs more than a few milliseconds
    return parser_characters(values)


async def _run(data: bytes, threshold: int, fn: Callable[..., _T], *args: object) -> _T:
    if parse_in_thread(data, threshold):
        return await asyncio.to_thread(fn, *args)
    return fn(*args)
