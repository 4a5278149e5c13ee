"""The console benchmark's server-time part on a small store of the message-log generator (the
acceptance part needs browsers and minutes: `python -m bench console`)."""

from __future__ import annotations

import pytest

from bench import console


async def test_a_small_run(capsys: pytest.CaptureFixture[str]) -> None:
    await console.measure(300, 3, None)
    printed = capsys.readouterr().out
    for label in ("list, first page", "list, a page half-way", "one message, first tab"):
        assert label in printed
    assert "MISSED" not in printed


def test_the_payloads_are_the_generators_mail() -> None:
    sent = console.payloads(20)
    assert len(sent) == 20
    assert all(data.startswith(b"From: ") and recipients for _, recipients, data in sent)
