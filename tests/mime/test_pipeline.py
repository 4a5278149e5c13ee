"""The transform stage: variants per recipient scope and the off-loop helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from mxrelay.config import load_settings
from mxrelay.mime.headers import HeaderPolicy, reconcile_headers
from mxrelay.mime.ics import transform_calendar
from mxrelay.mime.pipeline import (
    INLINE_ADDRESS_CHARACTERS,
    INLINE_DASHES,
    INLINE_LINES,
    OFFLOAD_THRESHOLD,
    IcsPolicy,
    Variant,
    address_characters,
    apply_transforms,
    parse_in_thread,
    reconcile_headers_async,
    split_variants,
    split_variants_async,
)
from mxrelay.model import IcsAction, IcsScope
from tests.support.mime_trees import CORPUS, leaves, parse

INVITE = (CORPUS / "nodemailer-calcom-request.eml").read_bytes()
PLAIN = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: s\r\n\r\nno calendar here\r\n"


def _policy(scope: str, action: str = "strip") -> IcsPolicy:
    env = {"MXRELAY_ICS_STRIP": scope, "MXRELAY_ICS_ACTION": action}
    return IcsPolicy.from_settings(load_settings(env).mime)


def test_split_between_listed_and_unlisted_recipients() -> None:
    policy = _policy("@graph.example")
    recipients = ["a@other.example", "b@graph.example", "c@other.example", "d@GRAPH.example"]
    stripped, original = split_variants(INVITE, recipients, policy)
    assert stripped.recipients == ("b@graph.example", "d@GRAPH.example")
    assert stripped.in_scope
    assert stripped.transformed
    assert stripped.data == transform_calendar(INVITE, IcsAction.STRIP).data
    assert not any(leaf.calendar for leaf in leaves(parse(stripped.data)))
    assert original.recipients == ("a@other.example", "c@other.example")
    assert original.data is INVITE
    assert not original.in_scope
    assert not original.transformed


@pytest.mark.parametrize(
    ("scope", "data", "in_scope", "transformed"),
    [
        ("all", INVITE, True, True),
        ("off", INVITE, False, False),
        ("@nobody.example", INVITE, False, False),
        ("all", PLAIN, True, False),
    ],
)
def test_one_variant_when_there_is_nothing_to_split(
    scope: str, data: bytes, in_scope: bool, transformed: bool
) -> None:
    (variant,) = split_variants(data, ["a@x.example", "b@y.example"], _policy(scope))
    assert variant.recipients == ("a@x.example", "b@y.example")
    assert variant.in_scope is in_scope
    assert variant.transformed is transformed
    assert (variant.data == data) is not transformed


def test_broken_mime_stays_whole() -> None:
    broken = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/calendar\r\n\r\nX"
    variants = split_variants(broken, ["a@x.example", "b@y.example"], _policy("a@x.example"))
    (variant,) = variants
    assert variant.data == broken
    assert variant.report.skipped is not None


def test_policy_from_settings() -> None:
    policy = _policy("Boss@Example.com", "attach")
    assert policy.action is IcsAction.ATTACH
    assert policy.scope == IcsScope.from_setting(("boss@example.com",))
    with pytest.raises(ValueError, match="cannot be combined"):
        _policy("off,@x.example")


class _CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor, counting the work handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def executor() -> Iterator[_CountingExecutor]:
    pool = _CountingExecutor()
    yield pool
    pool.shutdown(wait=True)


async def test_large_messages_are_transformed_off_the_loop(executor: _CountingExecutor) -> None:
    asyncio.get_running_loop().set_default_executor(executor)
    policy = _policy("all")
    recipients = ["a@x.example"]
    small = await split_variants_async(INVITE, recipients, policy, offload_above=len(INVITE) + 1)
    assert executor.submitted == 0
    large = await split_variants_async(INVITE, recipients, policy, offload_above=len(INVITE))
    assert executor.submitted == 1
    assert small == large == split_variants(INVITE, recipients, policy)
    headers = await reconcile_headers_async(INVITE, recipients, HeaderPolicy.STRIP)
    assert executor.submitted == 2
    assert headers == reconcile_headers(INVITE, recipients)


async def test_the_graph_header_step_always_runs_off_the_loop(executor: _CountingExecutor) -> None:
    # Each entry the pattern does not read costs the stdlib parser up to ~20 us a character,
    # whatever the message's size, lines or boundaries.
    asyncio.get_running_loop().set_default_executor(executor)
    assert not parse_in_thread(PLAIN)
    result = await reconcile_headers_async(PLAIN, ["b@example.net"], HeaderPolicy.REJECT)
    assert executor.submitted == 1
    assert result == reconcile_headers(PLAIN, ["b@example.net"], HeaderPolicy.REJECT)


@pytest.mark.parametrize("action", ["strip", "attach"])
def test_variants_can_be_rebuilt_from_transform_names(action: str) -> None:
    variants = split_variants(
        INVITE, ["a@x.example", "b@y.example"], _policy("a@x.example", action)
    )
    assert [v.transforms for v in variants] == [(f"ics:{action}",), ()]
    for variant in variants:
        assert apply_transforms(INVITE, variant.transforms) == variant.data
    deep = Variant(
        ("a@x.example",),
        INVITE,
        transform_calendar(INVITE, IcsAction.STRIP, descend_messages=True).report,
        True,
    )
    assert deep.transforms == ("ics:strip-deep",)
    with pytest.raises(ValueError, match="unknown message transform"):
        apply_transforms(INVITE, ["rot13"])


def test_what_is_parsed_in_a_thread() -> None:
    assert not parse_in_thread(b"Subject: x\r\n\r\n" + b"a line of text\r\n" * 100)
    assert parse_in_thread(b"x" * OFFLOAD_THRESHOLD)
    assert parse_in_thread(b"A: b\r\n" * (INLINE_LINES + 1))  # small, but one loop per line
    assert parse_in_thread(b"--x" * (INLINE_DASHES + 1))  # small, but one loop per boundary


def _addressed(entries: list[str]) -> bytes:
    value = ",\r\n ".join(entries).encode()
    return b"From: app@contoso.example\r\nTo: " + value + b"\r\nSubject: s\r\n\r\nbody\r\n"


def test_address_fields_for_the_stdlib_parser_are_parsed_in_a_thread() -> None:
    # Entries of comments (or quoted strings, or words) cost the stdlib parser ~20 us a
    # character: 16 of 2 KiB in each of four fields took 2.9 s of the accept-time summary.
    comments = _addressed(["(a)" * 680])
    assert len(comments) < 4096
    assert comments.count(b"\n") < 10
    assert b"--" not in comments
    assert address_characters(comments) > INLINE_ADDRESS_CHARACTERS
    assert parse_in_thread(comments)
    # The forms read by pattern cost no parser time, however many there are (within the lines).
    simple = _addressed([f'"User, {n}" <user{n}@example.net>' for n in range(100)])
    assert address_characters(simple) == 0
    assert not parse_in_thread(simple)
    dotted = _addressed(["John Q. Public <john@example.net>"])  # one short odd entry: inline
    assert address_characters(dotted) == 0
    assert not parse_in_thread(dotted)
    odd = _addressed(["John Q. Public <john@example.net>"] * 10)
    assert address_characters(odd) > INLINE_ADDRESS_CHARACTERS
    assert parse_in_thread(odd)


def test_parameters_the_stdlib_cannot_read_are_split_like_any_other() -> None:
    data = INVITE.replace(
        b"Content-Type: text/calendar",
        b"Content-Type: text/calendar; x*=a; x*0=b",  # the stdlib: TypeError
    )
    assert data != INVITE
    stripped, original = split_variants(
        data, ["a@x.example", "b@y.example"], _policy("a@x.example")
    )
    assert stripped.transformed
    assert not any(leaf.calendar for leaf in leaves(parse(stripped.data)))
    assert original.data is data
