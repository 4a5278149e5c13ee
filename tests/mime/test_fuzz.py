"""Fuzzing the transforms over raw bytes: random data and damaged corpus messages.

The suite runs a few examples; `make fuzz` sets MXRELAY_FUZZ_EXAMPLES=200000. Properties: no
exception, the message never grows by more than a small constant (strip) or a constant per changed
part (attach), output is stable under a second application, and header reconciliation adds no
more than the envelope it was given.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mxrelay.mime.headers import reconcile_headers
from mxrelay.mime.ics import transform_calendar
from mxrelay.model import IcsAction
from tests.support.fuzzing import EXAMPLES, FUZZ, LARGE_EXAMPLES, raw_messages

STRIP_GROWTH = 256
"""At most a notice body and two header fields replace what was removed."""
ATTACH_GROWTH_PER_PART = 256

# The suite's 120 s per-test limit is for the default run; a long `make fuzz` run gets time in
# proportion to its examples (a few milliseconds each on the corpus seeds).
pytestmark = [pytest.mark.timeout(max(120, EXAMPLES // 50)), LARGE_EXAMPLES]


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
