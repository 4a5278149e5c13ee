"""The engine benchmark at a small size: both engines really take smtp-source's messages."""

from __future__ import annotations

import re
import shutil

import pytest

from bench import smtp_engine


@pytest.mark.skipif(shutil.which("smtp-source") is None, reason="needs Postfix's smtp-source")
async def test_both_engines_accept_smtp_source_load_and_the_table_has_a_ratio() -> None:
    table = await smtp_engine.compare(messages=30, sessions=3, runs=2, warm_up=3)
    lines = table.splitlines()
    assert lines[0].startswith("smtp engine: 30 messages of 2048 bytes")
    assert re.fullmatch(r"aiosmtpd, handler answers 250( +\d+\.\d){3}", lines[2])
    assert re.fullmatch(r"mxrelay SmtpServer \+ RelayPolicy( +\d+\.\d){3}", lines[3])
    assert re.fullmatch(r"ratio mxrelay / aiosmtpd: \d+\.\d\d", lines[4])
