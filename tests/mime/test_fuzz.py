"""Fuzzing the transforms over raw bytes: random data and damaged corpus messages.

The suite runs a few examples; `make fuzz` sets MXRELAY_FUZZ_EXAMPLES=200000. Properties: no
exception, the message never grows by more than a small constant (strip) or a constant per changed
part (attach), output is stable under a second application, and header reconciliation adds no
more than the envelope it was given.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxrelay.mime.headers import reconcile_headers
from mxrelay.mime.ics import IcsAction, transform_calendar
from tests.support.mime_trees import corpus_files

EXAMPLES = int(os.environ.get("MXRELAY_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STRIP_GROWTH = 256
"""At most a notice body and two header fields replace what was removed."""
ATTACH_GROWTH_PER_PART = 256

# The suite's 120 s per-test limit is for the default run; a long `make fuzz` run gets time in
# proportion to its examples (a few milliseconds each on the corpus seeds).
pytestmark = pytest.mark.timeout(max(120, EXAMPLES // 50))

SEEDS = [path.read_bytes() for path in corpus_files()]
_MIME_TOKENS = [
    b"\r\n",
    b"\n",
    b"--",
    b"\r\n\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n",
    b"Content-Type: text/calendar\r\n",
    b"Content-Disposition: attachment; filename=a.ics\r\n",
    b"--x\r\n",
    b"--x--\r\n",
    b"\xff\x00",
    b" ",
]


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    """A corpus message with bytes cut, inserted or overwritten, or truncated."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["cut", "insert", "token", "truncate"]))
        if how == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "token":
            data[at:at] = draw(st.sampled_from(_MIME_TOKENS))
        else:
            del data[at:]
    return bytes(data)


raw_messages = st.one_of(
    st.binary(max_size=2048),
    st.lists(st.sampled_from(_MIME_TOKENS) | st.binary(max_size=8), max_size=40).map(b"".join),
    damaged(),
)


@FUZZ
@given(raw_messages)
def test_fuzz_calendar_transform(data: bytes) -> None:
    stripped = transform_calendar(data, IcsAction.STRIP)
    assert len(stripped.data) <= len(data) + STRIP_GROWTH
    assert transform_calendar(stripped.data, IcsAction.STRIP).data == stripped.data
    attached = transform_calendar(data, IcsAction.ATTACH)
    limit = len(data) + ATTACH_GROWTH_PER_PART * (len(attached.report.parts) + 1)
    assert len(attached.data) <= limit
    if not stripped.report.changed:
        assert stripped.data == data


@FUZZ
@given(
    raw_messages,
    st.lists(
        st.sampled_from(["a@example.com", "B@Example.NET", "ü@bücher.example"]),
        min_size=1,
        max_size=3,
    ),
)
def test_fuzz_header_reconciliation(data: bytes, recipients: list[str]) -> None:
    result = reconcile_headers(data, recipients)
    added = sum(len(r.encode()) + 16 for r in recipients)
    assert len(result.data) <= len(data) + added + 8
    assert reconcile_headers(result.data, recipients).data == result.data
