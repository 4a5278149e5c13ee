"""Tags with Mailpit's rules, on SQLite and PostgreSQL: cleaning, case-insensitive identity (the
first spelling is kept), replacing a message's tags, renaming and deleting with Mailpit's errors,
`X-Tags` at ingest, and tags no message carries not being listed."""

from __future__ import annotations

from typing import Any

import pytest

from mxrelay.store import tags
from mxrelay.store.backend import Database
from mxrelay.store.deletion import delete_messages
from mxrelay.store.listing import list_page
from mxrelay.store.search import parse_search
from tests.store.helpers import T0, accept, record, transaction


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Urgent", "Urgent"),
        ("  two   words ", "two words"),
        ("a/b\\c!d", "a b c d"),
        ("dots.and-dashes_ok", "dots.and-dashes_ok"),
        ("tab\there", "tab here"),
        ("émoji 🎉", "moji"),
        ("", ""),
    ],
)
def test_clean_tag(raw: str, clean: str) -> None:
    assert tags.clean_tag(raw) == clean


def test_unique_tags() -> None:
    assert tags.unique_tags(["b", "A", "a", " b ", "", "!!", "x" * 256]) == ["A", "b"]
    assert tags.header_tags("Invoices, urgent,,URGENT , x/y") == ["Invoices", "urgent", "x y"]
    assert len(tags.unique_tags(f"t{n}" for n in range(500))) == tags.TAGS_PER_MESSAGE


def tagged_message(header: str = "", *, minute: int = 0) -> bytes:
    extra = f"X-Tags: {header}\r\n" if header else ""
    return (
        f"From: a@example.net\r\nTo: b@example.org\r\n{extra}Subject: m{minute}\r\n\r\nBody\r\n"
    ).encode()


async def store(db: Database, *headers: str) -> list[str]:
    records = [
        record(transaction(data=tagged_message(h, minute=n), received_at=T0.replace(minute=n)))
        for n, h in enumerate(headers)
    ]
    await accept(db, *records)
    return [r.id for r in records]


async def test_x_tags_at_ingest_and_case_insensitive_identity(db: Database) -> None:
    first, second, third = await store(db, "Invoices, urgent", "invoices", "")
    assert await tags.list_tags(db) == ["Invoices", "urgent"]
    page = await list_page(db)
    assert {m.id: m.tags for m in page.messages} == {
        first: ("Invoices", "urgent"),
        second: ("Invoices",),  # the spelling the store already had
        third: (),
    }
    assert page.tags == ("Invoices", "urgent")
    counts = await tags.tag_counts(db)
    assert [(c.name, c.messages) for c in counts] == [("Invoices", 2), ("urgent", 1)]


async def test_set_tags_replaces_and_prunes(db: Database) -> None:
    first, second = await store(db, "old", "")
    changed = await tags.set_tags(db, [first, second, "01UNKNOWN"], ["New", "b", "new", "!"])
    assert changed == {first: ["b", "New"], second: ["b", "New"]}
    assert await tags.list_tags(db) == ["b", "New"]  # `old` went with its last message
    assert await tags.set_tags(db, [first], []) == {first: []}
    assert [m.tags for m in (await list_page(db)).messages] == [("b", "New"), ()]
    assert await tags.set_tags(db, ["01UNKNOWN"], ["ghost"]) == {}
    assert await tags.list_tags(db) == ["b", "New"]


async def test_rename_with_mailpit_errors(db: Database) -> None:
    first, second = await store(db, "alpha", "beta")
    with pytest.raises(tags.TagError, match=r"^invalid tag name: $"):
        await tags.rename_tag(db, "alpha", "!!!")
    with pytest.raises(tags.TagError, match=r"^tag not found: gamma$"):
        await tags.rename_tag(db, "gamma", "delta")
    with pytest.raises(tags.TagError, match=r"^tag already exists: BETA$"):
        await tags.rename_tag(db, "alpha", "BETA")
    await tags.rename_tag(db, "ALPHA", "Alpha")  # the same tag, spelt anew
    await tags.rename_tag(db, "Alpha", "Alpha")  # nothing to do
    await tags.rename_tag(db, "beta", "Gamma  Ray/x")
    assert await tags.list_tags(db) == ["Alpha", "Gamma Ray x"]
    found = await list_page(db, parse_search('tag:"gamma ray x"'))
    assert [m.id for m in found.messages] == [second]
    assert [m.id for m in (await list_page(db, parse_search("tag:alpha"))).messages] == [first]


async def test_delete_tag_keeps_messages(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tags, "DELETE_BATCH", 2)
    ids = await store(db, "bulk", "bulk, keep", "bulk", "bulk", "bulk")
    with pytest.raises(tags.TagError, match=r"^tag not found: nope$"):
        await tags.delete_tag(db, "nope")
    await tags.delete_tag(db, "BULK")
    assert await tags.list_tags(db) == ["keep"]
    page = await list_page(db)
    assert page.mailbox.total == 5
    assert {m.id: m.tags for m in page.messages}[ids[1]] == ("keep",)


async def test_tags_of_deleted_messages_are_not_listed(db: Database) -> None:
    first, _ = await store(db, "solo", "shared")
    await tags.set_tags(db, [first], ["solo", "shared"])
    await delete_messages(db, [first], now=T0.timestamp())
    assert await tags.list_tags(db) == ["shared"]


async def test_a_name_or_id_with_a_nul_is_no_tag_or_message(db: Database) -> None:
    """A NUL from a request (`DELETE /api/v1/tags/a%00b`, `"IDs": ["\\u0000"]`) names nothing,
    and is not looked up: PostgreSQL refuses a NUL even as a parameter."""
    [first] = await store(db, "alpha")
    assert await tags.set_tags(db, [first, "\x00"], ["alpha", "beta"]) == {first: ["alpha", "beta"]}
    with pytest.raises(tags.TagError, match=r"^tag not found: alpha\x00$"):
        await tags.rename_tag(db, "alpha\x00", "gamma")
    with pytest.raises(tags.TagError, match=r"^tag not found: a\x00b$"):
        await tags.delete_tag(db, "a\x00b")
    assert await tags.list_tags(db) == ["alpha", "beta"]


async def test_set_tags_changes_a_bounded_number_of_rows_per_transaction(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each transaction adds or removes at most ROWS_PER_WRITE message tags (SQLite's writers
    wait meanwhile): here one message's (one tag out, two in: three rows) per transaction."""
    monkeypatch.setattr(tags, "ROWS_PER_WRITE", 5)
    ids = await store(db, *["old"] * 6)
    retagged: list[int] = []
    write = db.write

    async def counted(*args: Any, **kwargs: Any) -> Any:
        result = await write(*args, **kwargs)
        found = await list_page(db, parse_search("tag:new"))
        retagged.append(found.matching.total)
        return result

    monkeypatch.setattr(db, "write", counted)
    changed = await tags.set_tags(db, [*ids, "01UNKNOWN"], ["new", "more"])
    assert changed == {ident: ["more", "new"] for ident in ids}
    steps = [later - earlier for earlier, later in zip([0, *retagged], retagged, strict=False)]
    assert max(steps) == 1  # never more than one message's rows in a transaction
    assert retagged[-1] == 6
    assert await tags.list_tags(db) == ["more", "new"]  # `old` went with its last message
